"""The Dagster code location: wires ingestion, ml, activation and warehouse as assets."""
