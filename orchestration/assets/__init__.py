"""Assets per domain: ingestion, dbt models, ml, activation."""
