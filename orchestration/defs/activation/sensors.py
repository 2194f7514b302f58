"""Activation sensors: failing deliveries, reported between runs.

Reads the outbox (the transactional state store), never the warehouse (in embedded mode
a run may hold it).
"""

import datetime as dt

from dagster import SensorEvaluationContext, SensorResult, SkipReason, sensor

from activation.run import failures, open_outbox
from orchestration.defs.activation.checks import failures_evaluation
from revisit.settings import get_settings


@sensor(minimum_interval_seconds=300)
def failing_deliveries(context: SensorEvaluationContext) -> SensorResult | SkipReason:
    """Reports outbox rows that failed or went dead since the last look as a failed
    `delivery_failures` check on activation/deliveries, with counts per provider and
    error code and a few examples."""
    since = dt.datetime.fromisoformat(context.cursor) if context.cursor else None
    now = dt.datetime.now(dt.UTC)
    with open_outbox(get_settings().state_dsn) as outbox:
        failed = failures(outbox, since=since)
    context.update_cursor(now.isoformat())
    if not failed:
        return SkipReason("no failing delivery")
    return SensorResult(asset_events=[failures_evaluation(failed)])


SENSORS = [failing_deliveries]
