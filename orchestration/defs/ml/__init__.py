"""ML: the revisit model's features, training (with its check) and scores."""

from dagster import Definitions

from orchestration.defs.ml.assets import ASSETS

defs = Definitions(assets=ASSETS)
