"""The planner on a real embedded ClickHouse: consent, quiet hours, caps, holdout, keys."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from activation.contracts import idempotency_key
from activation.planner import SEND_PLAN, PlannerError, iter_accruals, plan, plan_accruals
from activation.trigger_specs import load_triggers

from .conftest import Fixtures, trigger, utc


def decisions(
    client, run_id: str, business_id: str = "B1"
) -> dict[tuple[str, str], tuple[str, str]]:
    """(trigger, customer_id) → (decision, reason) of one run at one business."""
    rows = client.query(
        f"SELECT trigger, customer_id, decision, reason FROM {SEND_PLAN} "
        "WHERE run_id = {r:String} AND business_id = {b:String}",
        parameters={"r": run_id, "b": business_id},
    ).result_rows
    return {(t, c): (d, r) for t, c, d, r in rows}


def offer_trigger(**kw):
    base = {
        "name": "segment_offer",
        "kind": "segment_offer",
        "params": {"offers": {"loyal": "10% off", "at_risk": "20% off"}},
        "template": {"name": "seg", "text": "{first_name}, {offer}"},
        "send_at_local": None,
        "priority": 20,
    }
    return trigger(**(base | kw))


def test_opt_out_and_consent_are_honoured(client, fx: Fixtures) -> None:
    fx.customer("B1", "ok")
    fx.customer("B1", "stop", opted_out=True, opted_out_at=utc(2026, 3, 1))  # inbound STOP
    fx.customer("B1", "tg_block", opted_out=True, contactable=False)  # Telegram block
    fx.customer("B1", "no_consent", consent_marketing=False)
    fx.customer("B1", "not_contactable", contactable=False)
    for c in ("ok", "stop", "tg_block", "no_consent", "not_contactable", "ghost"):
        fx.rfm("B1", c, "loyal")
    fx.flush()
    result = plan(client, [offer_trigger()], now=utc(2026, 3, 10, 12))
    got = decisions(client, result.run_id)
    assert got[("segment_offer", "ok")] == ("planned", "")
    assert got[("segment_offer", "stop")] == ("excluded", "opted_out")
    assert got[("segment_offer", "tg_block")] == ("excluded", "opted_out")
    assert got[("segment_offer", "no_consent")] == ("excluded", "no_consent")
    assert got[("segment_offer", "not_contactable")] == ("excluded", "not_contactable")
    assert got[("segment_offer", "ghost")] == ("excluded", "unknown_customer")
    assert [m.customer_id for m in result.messages()] == ["ok"]
    # a service trigger without the marketing-consent requirement still honours STOP
    service = offer_trigger(requires_marketing_consent=False)
    got = decisions(client, plan(client, [service], now=utc(2026, 3, 10, 12)).run_id)
    assert got[("segment_offer", "no_consent")] == ("planned", "")
    assert got[("segment_offer", "stop")] == ("excluded", "opted_out")
    assert got[("segment_offer", "tg_block")] == ("excluded", "opted_out")


@pytest.mark.parametrize(
    ("tz", "now", "expected_send"),
    [
        # 22:30 CET on the eve of the spring change → 09:00 CEST = 07:00 UTC
        ("Europe/Berlin", utc(2026, 3, 28, 21, 30), utc(2026, 3, 29, 7, 0)),
        # 22:00 CEST on the eve of the autumn change → 09:00 CET = 08:00 UTC
        ("Europe/Berlin", utc(2026, 10, 24, 20, 0), utc(2026, 10, 25, 8, 0)),
        # 01:00 local (UTC+5), already the next local day → 09:00 same local day
        ("Asia/Almaty", utc(2026, 3, 28, 20, 0), utc(2026, 3, 29, 4, 0)),
        # 07:00 EDT on a normal day → 09:00 EDT = 13:00 UTC
        ("America/New_York", utc(2026, 6, 1, 11, 0), utc(2026, 6, 1, 13, 0)),
        # outside quiet hours: sent now
        ("Europe/Berlin", utc(2026, 3, 29, 12, 0), utc(2026, 3, 29, 12, 0)),
    ],
)
def test_quiet_hours_in_local_time_across_zones_and_dst(
    client, fx: Fixtures, tz: str, now: datetime, expected_send: datetime
) -> None:
    fx.customer("B1", "c1", timezone=tz)
    fx.rfm("B1", "c1", "loyal")
    fx.flush()
    spec = offer_trigger(quiet_hours={"start": "21:00", "end": "09:00"})
    [msg] = plan(client, [spec], now=now).messages()
    assert msg.send_at.replace(tzinfo=UTC) == expected_send
    local = msg.send_at.replace(tzinfo=UTC).astimezone(ZoneInfo(tz))
    assert 9 <= local.hour < 21


def test_birthday_in_local_morning_on_dst_change_day(client, fx: Fixtures) -> None:
    # birthday on the spring-forward day: 10:00 local is 08:00 UTC (CEST), not 09:00
    fx.customer("B1", "c1", birthday=date(1990, 3, 29))
    fx.customer("B2", "c2", birthday=date(1990, 10, 25), timezone="Europe/Berlin")
    fx.customer("B3", "c3", birthday=date(1992, 2, 29), timezone="Asia/Almaty")
    fx.flush()
    spec = trigger(params={"days_before": 0}, send_at_local="10:00")
    by_customer = {
        m.customer_id: m for m in plan(client, [spec], now=utc(2026, 3, 28, 12)).messages()
    }
    assert by_customer["c1"].send_at.replace(tzinfo=UTC) == utc(2026, 3, 29, 8)
    assert by_customer["c1"].text == "Анна, happy birthday 29.03!"
    assert "c3" not in by_customer  # Feb 29 birthday falls on Feb 28 in 2027 – not due
    [m2] = plan(client, [spec], now=utc(2026, 10, 24, 12)).messages()
    assert m2.send_at.replace(tzinfo=UTC) == utc(2026, 10, 25, 9)  # 10:00 CET
    [m3] = plan(client, [spec], now=utc(2027, 2, 27, 12)).messages()
    assert m3.customer_id == "c3" and m3.send_at.replace(tzinfo=UTC) == utc(2027, 2, 28, 5)


def test_appointment_reminders_with_local_time_and_dropped_when_passed(
    client, fx: Fixtures
) -> None:
    fx.customer("B1", "early")
    fx.customer("B1", "noon")
    # 07:00 CEST: the 2h reminder would fall at 05:00, moved to 08:00 → after the start
    fx.appointment("B1", "a-early", "early", utc(2026, 3, 30, 5, 0))
    fx.appointment("B1", "a-noon", "noon", utc(2026, 3, 30, 10, 0))  # 12:00 CEST
    fx.appointment("B1", "a-cancel", "noon", utc(2026, 3, 30, 11, 0), status="cancelled")
    fx.flush()
    specs = [s for s in load_triggers() if s.kind == "appointment_reminder"]
    result = plan(client, specs, now=utc(2026, 3, 29, 20, 0), horizon=timedelta(hours=16))
    got = decisions(client, result.run_id)
    assert got[("appointment_reminder_2h", "early")] == ("excluded", "occasion_passed")
    assert got[("appointment_reminder_2h", "noon")] == ("planned", "")
    msgs = {(m.trigger, m.customer_id): m for m in result.messages()}
    noon = msgs[("appointment_reminder_2h", "noon")]
    assert noon.text == "Анна, ждём вас сегодня в 12:00."
    assert noon.send_at.replace(tzinfo=UTC) == utc(2026, 3, 30, 8, 0)
    assert noon.expires_at.replace(tzinfo=UTC) == utc(2026, 3, 30, 9, 30)
    assert all("a-cancel" not in k for k in got)
    # an appointment already past is never planned
    later = plan(client, specs, now=utc(2026, 3, 30, 9, 45))
    assert not any(m.customer_id == "noon" for m in later.messages())


def test_frequency_cap_counts_sends_and_plans_across_triggers(client, fx: Fixtures) -> None:
    now = utc(2026, 3, 10, 12)
    for c in ("fresh", "sent_twice", "logged", "old"):
        fx.customer("B1", c)
        fx.rfm("B1", c, "loyal")
    for i, (c, at) in enumerate(
        [
            ("sent_twice", now - timedelta(days=1)),
            ("sent_twice", now - timedelta(days=3)),
            ("old", now - timedelta(days=20)),
            ("old", now - timedelta(days=30)),
        ]
    ):
        fx.add(
            "marts.fct_message_sends",
            message_id=f"m{i}",
            business_id="B1",
            customer_id=c,
            phone_e164="",
            trigger="birthday_greeting",
            campaign_id=None,
            channel="whatsapp",
            holdout=False,
            planned_at=at,
            offer_id=None,
            provider_message_id=None,
            replied_at=None,
            read_at=None,
            delivered_at=None,
            failed_at=None,
            sent_at=at,
            opted_out_at=None,
        )
    for i in range(2):  # planned by an earlier run, not sent yet, in the outbox log
        fx.add(
            "activation.message_log",
            idempotency_key=f"k{i}",
            campaign_id="x",
            trigger="winback_offer",
            business_id="B1",
            customer_id="logged",
            channel="sms",
            state="planned",
            holdout=False,
            send_at=now + timedelta(hours=i + 1),
        )
    fx.flush()
    spec = offer_trigger(frequency_cap={"max_messages": 2, "per_days": 7})
    got = decisions(client, plan(client, [spec], now=now).run_id)
    assert got[("segment_offer", "fresh")] == ("planned", "")
    assert got[("segment_offer", "old")] == ("planned", "")
    assert got[("segment_offer", "sent_twice")] == ("excluded", "frequency_cap")
    assert got[("segment_offer", "logged")] == ("excluded", "frequency_cap")


def test_cap_within_one_run_across_triggers_on_different_days(client, fx: Fixtures) -> None:
    fx.customer("B1", "c1", birthday=date(1990, 3, 11))
    fx.rfm("B1", "c1", "loyal")
    fx.flush()
    now = utc(2026, 3, 10, 12)  # offer today 13:00 local, birthday tomorrow 10:00 local
    cap = {"max_messages": 1, "per_days": 7}
    specs = [
        offer_trigger(frequency_cap=cap),
        trigger(frequency_cap=cap, params={"days_before": 0}),
    ]
    got = decisions(client, plan(client, specs, now=now, horizon=timedelta(hours=36)).run_id)
    assert got[("segment_offer", "c1")] == ("planned", "")
    assert got[("birthday_greeting", "c1")] == ("excluded", "frequency_cap")
    loose = [offer_trigger(), trigger(params={"days_before": 0})]
    got = decisions(client, plan(client, loose, now=now, horizon=timedelta(hours=36)).run_id)
    assert got[("birthday_greeting", "c1")] == ("planned", "")


def test_priority_highest_wins_same_day(client, fx: Fixtures) -> None:
    fx.customer("B1", "c1", birthday=date(1990, 3, 10))
    fx.rfm("B1", "c1", "loyal")
    fx.customer("B2", "c1")  # the same person at another business is independent
    fx.rfm("B2", "c1", "loyal")
    fx.flush()
    specs = [offer_trigger(priority=20), trigger(priority=60, params={"days_before": 0})]
    now = utc(2026, 3, 10, 8)
    got = decisions(client, plan(client, specs, now=now).run_id, business_id="B1")
    assert got[("birthday_greeting", "c1")] == ("planned", "")
    assert got[("segment_offer", "c1")] == ("excluded", "priority:birthday_greeting")
    rows = client.query(
        f"SELECT business_id, decision FROM {SEND_PLAN} WHERE trigger = 'segment_offer' "
        "ORDER BY business_id"
    ).result_rows
    assert rows == [("B1", "excluded"), ("B2", "planned")]
    flipped = [offer_trigger(priority=90), trigger(priority=60, params={"days_before": 0})]
    got = decisions(client, plan(client, flipped, now=now).run_id, business_id="B1")
    assert got[("birthday_greeting", "c1")] == ("excluded", "priority:segment_offer")


def test_holdout_is_deterministic_and_never_planned(client, fx: Fixtures) -> None:
    for i in range(400):
        fx.customer("B1", f"c{i:03d}")
        fx.rfm("B1", f"c{i:03d}", "loyal")
    fx.flush()
    spec = offer_trigger(holdout_pct=30)
    now = utc(2026, 3, 10, 12)
    first, second = plan(client, [spec], now=now), plan(client, [spec], now=now)
    held1, held2 = set(first.holdout["customer_id"]), set(second.holdout["customer_id"])
    assert held1 == held2
    assert 0.2 < len(held1) / 400 < 0.4
    planned = {m.customer_id for m in first.messages()}
    assert planned.isdisjoint(held1) and len(planned) + len(held1) == 400
    assert not any(m.holdout for m in first.messages())
    assert all(m.holdout for m in first.holdout_messages())
    # the group depends on the campaign: a new month reshuffles it, an hour later does not
    later = plan(client, [spec], now=now + timedelta(hours=5))
    assert set(later.holdout["customer_id"]) == held1
    next_month = plan(client, [spec], now=utc(2026, 4, 10, 12))
    assert set(next_month.holdout["customer_id"]) != held1


def test_idempotency_keys_stable_and_second_plan_never_duplicates(client, fx: Fixtures) -> None:
    fx.customer("B1", "c1", birthday=date(1990, 3, 12))
    fx.customer("B1", "c2")
    fx.appointment("B1", "a1", "c2", utc(2026, 3, 11, 12))
    fx.flush()
    specs = [trigger(params={"days_before": 2})] + [
        s for s in load_triggers() if s.name == "appointment_reminder_24h"
    ]
    now = utc(2026, 3, 10, 6)
    first = plan(client, specs, now=now).messages()
    again = plan(client, specs, now=now + timedelta(hours=3)).messages()
    assert sorted(m.idempotency_key for m in first) == sorted(m.idempotency_key for m in again)
    by_trigger = {m.trigger: m for m in first}
    assert by_trigger["birthday_greeting"].idempotency_key == idempotency_key(
        "birthday_greeting", "B1", "c1", "birthday:2026"
    )
    assert by_trigger["appointment_reminder_24h"].idempotency_key == idempotency_key(
        "appointment_reminder_24h", "B1", "c2", "appointment:a1:24h"
    )
    # once the outbox holds them, the same occasions are never planned again
    client.insert(
        "activation.message_log",
        [
            [
                m.idempotency_key,
                m.campaign_id,
                m.trigger,
                m.business_id,
                m.customer_id,
                m.channel.value,
                "sent",
                False,
                m.send_at,
            ]
            for m in first
        ],
        column_names=[
            "idempotency_key",
            "campaign_id",
            "trigger",
            "business_id",
            "customer_id",
            "channel",
            "state",
            "holdout",
            "send_at",
        ],
    )
    third = plan(client, specs, now=now + timedelta(hours=6))
    assert third.messages() == []
    got = decisions(client, third.run_id)
    assert got[("birthday_greeting", "c1")] == ("excluded", "already_planned")


def test_channel_preference_by_what_customer_receives(client, fx: Fixtures) -> None:
    fx.customer("B1", "tg", phone_e164="+79990000001")
    fx.customer("B1", "plain", phone_e164="+79990000002")
    fx.customer("B1", "nophone", phone_e164="")
    for c in ("tg", "plain", "nophone"):
        fx.rfm("B1", c, "loyal")
    fx.add(
        "marts.fct_message_sends",
        message_id="m1",
        business_id="B1",
        customer_id="tg",
        phone_e164="+79990000001",
        trigger="x",
        campaign_id=None,
        channel="telegram",
        holdout=False,
        planned_at=utc(2026, 1, 1),
        offer_id=None,
        provider_message_id="5551234:77",
    )
    fx.flush()
    spec = offer_trigger(channels=["telegram", "sms"])
    result = plan(client, [spec], now=utc(2026, 3, 10, 12))
    msgs = {m.customer_id: m for m in result.messages()}
    assert (msgs["tg"].channel, msgs["tg"].recipient) == ("telegram", "5551234")
    assert (msgs["plain"].channel, msgs["plain"].recipient) == ("sms", "+79990000002")
    assert decisions(client, result.run_id)[("segment_offer", "nophone")] == (
        "excluded",
        "no_channel",
    )


def _offer(fx: Fixtures, offer_id: str, **kw) -> None:
    row = {
        "offer_id": offer_id,
        "publisher_business_id": "PUB",
        "title": "Маникюр",
        "distributor_business_ids": ["D1"],
        "reward_per_client": Decimal("300.00"),
        "discount_pct": Decimal("15"),
        "cashback_pct": Decimal("5"),
        "currency": "RUB",
        "capacity": None,
        "audience_min_age": None,
        "audience_max_age": None,
        "audience_gender": None,
        "valid_from": date(2026, 3, 1),
        "valid_to": date(2026, 3, 31),
    }
    fx.add("marts.dim_partner_offers", **(row | kw))


def test_partner_offer_audience_capacity_and_validity(client, fx: Fixtures) -> None:
    fx.customer("D1", "f30", gender="f", birthday=date(1996, 1, 1))
    fx.customer("D1", "m30", gender="m", birthday=date(1996, 1, 1))
    fx.customer("D1", "f60", gender="f", birthday=date(1966, 1, 1))
    fx.customer("D1", "f_nobday", gender="f", birthday=None)
    fx.customer("D1", "f_pub", gender="f", birthday=date(1995, 1, 1))
    fx.customer("PUB", "f_pub", gender="f", visits=2)  # already the publisher's client
    for i in range(6):
        fx.customer("D1", f"x{i}", gender="f", birthday=date(1990, 1, 1))
        fx.customer("D2", f"y{i}")
    fx.customer("D3", "z0")
    fx.customer("D3", "f_pub", gender="f")
    fx.customer("D4", "w0")
    _offer(fx, "O-aud", audience_gender="f", audience_min_age=25, audience_max_age=40)
    _offer(fx, "O-cap", capacity=12, distributor_business_ids=["D2", "D3"])
    _offer(fx, "O-full", capacity=5, distributor_business_ids=["D3", "D4"])
    _offer(fx, "O-old", valid_to=date(2026, 3, 5))
    _offer(fx, "O-future", valid_from=date(2026, 4, 1), valid_to=date(2026, 4, 30))
    for offer, rewarded in (("O-cap", 10), ("O-full", 5)):
        fx.add(
            "marts.partner_offer_conversion",
            offer_id=offer,
            publisher_business_id="PUB",
            distributor_business_id="D9",
            currency="RUB",
            exposed=50,
            redeemed=rewarded,
            new_customers=rewarded,
            conversion_rate=0.1,
            rewarded_customers=rewarded,
            reward_owed=Decimal(0),
            discount_given=Decimal(0),
            cashback_accrued=Decimal(0),
        )
    fx.flush()
    spec = trigger(
        name="partner_offer",
        kind="partner_offer",
        params={"sends_per_remaining_slot": 1.5, "exclude_publisher_customers": True},
        template={"name": "po", "text": "{offer_title} -{discount_pct}% до {valid_to}"},
        send_at_local=None,
        frequency_cap={"max_messages": 50, "per_days": 7},
    )
    result = plan(client, [spec], now=utc(2026, 3, 10, 12))
    rows = client.query(
        f"SELECT offer_id, customer_id, decision, reason FROM {SEND_PLAN} "
        "WHERE run_id = {r:String}",
        parameters={"r": result.run_id},
    ).result_rows
    by_offer: dict[str, dict[str, tuple[str, str]]] = {}
    for offer, cust, decision, reason in rows:
        by_offer.setdefault(offer, {})[cust] = (decision, reason)
    # audience: women 25–40 with a known birthday, not yet the publisher's clients
    assert set(by_offer["O-aud"]) == {"f30", *(f"x{i}" for i in range(6))}
    # capacity is per offer across distributors: 12 − 10 rewarded = 2 remaining × 1.5 → 3
    cap = by_offer["O-cap"]
    assert set(cap) == {*(f"y{i}" for i in range(6)), "z0"}  # not f_pub: publisher's client
    assert sum(d == "planned" for d, _ in cap.values()) == 3
    assert {r for d, r in cap.values() if d == "excluded"} == {"offer_capacity"}
    assert set(by_offer["O-full"]) == {"z0", "w0"}
    assert by_offer["O-full"]["w0"] == ("excluded", "offer_capacity")  # 5 − 5 = 0 left
    assert by_offer["O-full"]["z0"] == ("excluded", "priority:partner_offer")  # O-cap won
    assert "O-old" not in by_offer and "O-future" not in by_offer
    msg = next(m for m in result.messages() if m.offer_id == "O-aud")
    assert msg.text == "Маникюр -15% до 31.03.2026"
    assert msg.idempotency_key == idempotency_key(
        "partner_offer", "D1", msg.customer_id, "offer:O-aud"
    )


def test_winback_needs_scores_and_uses_the_latest_band(client, fx: Fixtures) -> None:
    for c in ("mid", "high", "lost"):
        fx.customer("B1", c)
    fx.rfm("B1", "mid", "at_risk", recency_days=95)
    fx.rfm("B1", "high", "cant_lose_them")
    fx.rfm("B1", "lost", "lost")
    fx.flush()
    winback = next(s for s in load_triggers() if s.kind == "winback")
    now = utc(2026, 3, 10, 12)
    client.command("DROP TABLE IF EXISTS ml.revisit_scores")
    skipped = plan(client, [winback], now=now)
    assert "ml.revisit_scores" in skipped.skipped["winback_offer"]
    assert skipped.messages() == []
    from ml.contract import ensure_scores_table

    ensure_scores_table(client)
    scores = [
        ("mid", utc(2026, 3, 1), 0.9),
        ("mid", utc(2026, 3, 9), 0.3),  # latest is in band
        ("high", utc(2026, 3, 9), 0.8),
        ("lost", utc(2026, 3, 9), 0.3),
    ]
    client.insert(
        "ml.revisit_scores",
        [["B1", c, at, "v1", p, 5, []] for c, at, p in scores],
        column_names=[
            "business_id",
            "customer_id",
            "scored_at",
            "model_version",
            "p_revisit",
            "decile",
            "reason_codes",
        ],
    )
    result = plan(client, [winback.model_copy(update={"holdout_pct": 0})], now=now)
    [msg] = result.messages()
    assert msg.customer_id == "mid" and "95 дн." in msg.text
    assert msg.idempotency_key == idempotency_key("winback_offer", "B1", "mid", "winback:2026-W11")


def _ledger(fx: Fixtures, entry: str, cust: str, kind: str, amount: str, at: datetime) -> None:
    fx.add(
        "marts.cashback_ledger",
        entry_id=f"p1:{entry}",
        partner_id="p1",
        source_event_id=entry,
        event_type=kind,
        customer_id=cust,
        phone_e164="+79990000009",
        amount=Decimal(amount),
        currency="RUB",
        occurred_at=at,
        offer_id=None,
        loaded_at=at,
    )


def test_cashback_threshold_expiry_and_accrual_plan(client, fx: Fixtures) -> None:
    now = utc(2026, 3, 10, 12)
    for c in ("rich", "spent", "expiring"):
        fx.customer("B1", c, timezone="Europe/Moscow", last_visit_at=utc(2026, 3, 1))
    fx.customer("B2", "rich", timezone="Europe/Moscow", last_visit_at=utc(2025, 1, 1))
    _ledger(fx, "e1", "rich", "accrual", "300", now - timedelta(days=30))
    _ledger(fx, "e2", "rich", "accrual", "250", now - timedelta(days=2))  # crosses 500
    _ledger(fx, "e3", "spent", "accrual", "600", now - timedelta(days=3))
    _ledger(fx, "e4", "spent", "redemption", "-400", now - timedelta(days=1))
    _ledger(fx, "e5", "expiring", "accrual", "100", now - timedelta(days=175))
    _ledger(fx, "e6", "expiring", "accrual", "80", now - timedelta(days=172))
    _ledger(fx, "e7", "expiring", "redemption", "-30", now - timedelta(days=10))
    fx.flush()
    specs = [s for s in load_triggers() if s.kind.startswith("cashback")]
    specs = [s.model_copy(update={"holdout_pct": 0}) for s in specs]
    msgs = {(m.trigger, m.customer_id): m for m in plan(client, specs, now=now).messages()}
    rich = msgs[("cashback_threshold", "rich")]
    assert rich.business_id == "B1"  # sent by the business visited last
    assert "550.00 RUB" in rich.text
    assert ("cashback_threshold", "spent") not in msgs  # balance back below the threshold
    exp = msgs[("cashback_expiry", "expiring")]
    # 100 + 80 accrued within the window, 30 spent first-in-first-out → 150 expiring
    assert exp.variables["expiring_amount"] == "150.00"
    assert exp.expires_at.replace(tzinfo=UTC) == now - timedelta(days=175) + timedelta(days=180)
    frame = plan_accruals(client)
    accruals = list(iter_accruals(frame))
    assert len(accruals) == 5
    a = next(x for x in accruals if x.source_event_id == "p1:e2")
    assert a.idempotency_key == idempotency_key("accrual", "p1", "rich", "accrual:p1:e2")
    assert a.amount == Decimal("250.00") and a.business_id == "p1"


def test_missing_dim_customers_is_a_clear_error(client) -> None:
    client.command("DROP TABLE marts.dim_customers")
    with pytest.raises(PlannerError, match=r"marts\.dim_customers"):
        plan(client, [trigger()], now=utc(2026, 3, 10))


def test_validity_window_and_disabled_triggers_are_skipped(client, fx: Fixtures) -> None:
    fx.customer("B1", "c1")
    fx.rfm("B1", "c1", "loyal")
    fx.flush()
    specs = [
        offer_trigger(validity={"valid_from": "2026-04-01"}),
        offer_trigger(name="other", enabled=False),
    ]
    result = plan(client, specs, now=utc(2026, 3, 10, 12))
    assert result.messages() == []
    assert "validity" in result.skipped["segment_offer"]
    assert result.skipped["other"] == "disabled"


def test_naive_now_is_rejected(client) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        plan(client, [trigger()], now=datetime(2026, 3, 10))
