"""dbt models: the `dbt_models` assets, the dbt CLI resource, `build_models`, nightly."""

from dagster import Definitions

from orchestration.defs.models.assets import dbt_models, dbt_resource
from orchestration.defs.models.jobs import JOBS
from orchestration.defs.models.schedules import SCHEDULES

defs = Definitions(
    assets=[dbt_models], jobs=JOBS, schedules=SCHEDULES, resources={"dbt": dbt_resource()}
)
