"""Found by the crash harness (activation killed after planning and delivering, then
rerun): the rerun planned the messages the first run's priority rule had excluded, so a
customer got the lower-priority offer the same day as well. A message already planned
holds its day on a rerun too."""

from __future__ import annotations

from datetime import date

from activation.planner import SEND_PLAN, plan
from tests.activation.planner.conftest import (  # noqa: F401 — fixtures used by name
    Fixtures,
    client,
    fx,
    module_client,
    trigger,
    utc,
)
from tests.activation.planner.test_planner import decisions, offer_trigger


def test_a_rerun_on_the_same_day_does_not_plan_what_the_planned_winner_beat(
    client,  # noqa: F811 — the planner tests' fixtures, imported above
    fx: Fixtures,  # noqa: F811
) -> None:
    fx.customer("B1", "c1", birthday=date(1990, 3, 10))
    fx.rfm("B1", "c1", "loyal")
    fx.flush()
    specs = [offer_trigger(priority=20), trigger(priority=60, params={"days_before": 0})]
    now = utc(2026, 3, 10, 8)
    first = plan(client, specs, now=now)
    assert decisions(client, first.run_id)[("segment_offer", "c1")] == (
        "excluded", "priority:birthday_greeting",
    )  # fmt: skip
    # The first run's winner reached the outbox and its log (as delivery writes it).
    (winner,) = first.messages()
    fx.add(
        "activation.message_log", idempotency_key=winner.idempotency_key,
        campaign_id=winner.campaign_id, trigger=winner.trigger, business_id="B1",
        customer_id="c1", channel=winner.channel.value, state="planned", holdout=False,
        send_at=winner.send_at,
    )  # fmt: skip
    fx.flush()
    again = decisions(client, plan(client, specs, now=now).run_id)
    assert again[("birthday_greeting", "c1")] == ("excluded", "already_planned")
    assert again[("segment_offer", "c1")] == ("excluded", "priority:birthday_greeting")
    planned = client.query(
        f"SELECT count() FROM {SEND_PLAN} WHERE decision = 'planned'"
    ).result_rows[0][0]
    assert planned == 1
