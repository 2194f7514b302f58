"""dbt models: the `dbt_models` assets, the dbt CLI resource, `build_models`, nightly, and
the Great Expectations checks on the staging models."""

from dagster import Definitions

from orchestration.defs.models.assets import dbt_models, dbt_resource
from orchestration.defs.models.checks import CHECKS
from orchestration.defs.models.jobs import JOBS
from orchestration.defs.models.report import marketer_report
from orchestration.defs.models.schedules import SCHEDULES

defs = Definitions(
    assets=[dbt_models, marketer_report],
    asset_checks=CHECKS,
    jobs=JOBS,
    schedules=SCHEDULES,
    resources={"dbt": dbt_resource()},
)
