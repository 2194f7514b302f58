"""The code location's definitions, one package per domain.

Each of `ingestion`, `models` (dbt), `ml` and `activation` holds that domain's assets,
jobs, schedules, sensors and checks and exposes them as one `defs` (a `Definitions`);
`orchestration.definitions` merges them with the shared resources and the executor.

Asset keys are never retyped: dbt models are looked up in the dbt manifest
(`models.assets.model_key`, `exposure_keys`), the other domains import the keys and
asset definitions of the domain that owns them, and the activation planning jobs and
schedules come from the trigger specs (`activation/triggers/*.yaml`).
"""
