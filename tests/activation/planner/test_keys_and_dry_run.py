"""SQL and Python idempotency keys agree; the dry run reports everything and keeps nothing."""

from __future__ import annotations

import json
from datetime import date

from hypothesis import given, settings
from hypothesis import strategies as st

from activation.contracts import idempotency_key
from activation.dry_run import dry_run
from activation.planner import key_sql
from activation.trigger_specs import load_triggers

from .conftest import Fixtures, utc

text = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), min_size=0, max_size=30)


def _sql_keys(client, rows: list[tuple[str, str, str, str]]) -> list[str]:
    values = ", ".join(
        "(" + ", ".join("'" + v.replace("\\", "\\\\").replace("'", "\\'") + "'" for v in r) + ")"
        for r in rows
    )
    sql = (
        f"SELECT {key_sql('t', 'b', 'c', 'o')} FROM "
        f"(SELECT tupleElement(x, 1) AS t, tupleElement(x, 2) AS b, tupleElement(x, 3) AS c, "
        f"tupleElement(x, 4) AS o, n FROM (SELECT arrayJoin(arrayEnumerate([{values}])) AS n, "
        f"[{values}][n] AS x)) ORDER BY n"
    )
    return [r[0] for r in client.query(sql).result_rows]


def test_sql_and_python_keys_agree_on_fixed_cases(client) -> None:
    rows = [
        ("birthday_greeting", "B00001", "c1", "birthday:2026"),
        ("appointment_reminder_24h", "B1", "c2", "appointment:A-17:24h"),
        ("winback_offer", "Салон", "клиент ✓", "winback:2026-W47"),
        ("", "", "", ""),
        ("a\x1fb", "c", "d", "e"),  # the separator inside a value
    ]
    assert _sql_keys(client, rows) == [idempotency_key(*r) for r in rows]


@settings(max_examples=5, deadline=None)
@given(st.lists(st.tuples(text, text, text, text), min_size=1, max_size=20))
def test_sql_and_python_keys_agree_on_any_text(module_client, rows) -> None:
    assert _sql_keys(module_client, rows) == [idempotency_key(*r) for r in rows]


def test_dry_run_reports_counts_exclusions_and_samples(client, fx: Fixtures) -> None:
    for i in range(30):
        fx.customer("B1", f"c{i:02d}", birthday=date(1990, 3, 12), opted_out=i % 10 == 0)
        fx.rfm("B1", f"c{i:02d}", "loyal" if i % 2 else "at_risk")
    fx.customer("B1", "nocons", consent_marketing=False)
    fx.rfm("B1", "nocons", "loyal")
    fx.flush()
    client.command("DROP TABLE ml.revisit_scores")
    specs = load_triggers()
    report = dry_run(client, specs, utc(2026, 3, 9, 6))
    assert (
        "winback_offer" in report.skipped and "ml.revisit_scores" in report.skipped["winback_offer"]
    )
    by = {(c.key["trigger"], c.key["decision"]): c.n for c in report.by_trigger}
    assert by[("birthday_greeting", "excluded")] >= 3
    assert report.candidates == sum(c.n for c in report.by_trigger)
    reasons = {(e.trigger, e.reason): e for e in report.exclusions}
    assert reasons[("birthday_greeting", "opted_out")].n == 3
    assert reasons[("segment_offer", "no_consent")].samples[0]["customer_id"] == "nocons"
    assert {c.key["channel"] for c in report.by_channel} == {"whatsapp"}
    assert sum(c.n for c in report.by_segment) == sum(
        n for (t, d), n in by.items() if d == "planned"
    )
    # Samples are shown (CLI, logs, Dagster metadata): the customer's name is masked.
    assert any(
        s.text.startswith("‹name›, с наступающим днём рождения (12.03)") for s in report.samples
    )
    out = report.render()
    assert "Анна" not in out and "Анна" not in report.to_json()
    assert "birthday_greeting" in out and "opted_out" in out and "nothing was sent" in out
    assert json.loads(report.to_json())["candidates"] == report.candidates
    leftovers = client.query(
        "SELECT count() FROM system.tables WHERE database = 'activation' "
        "AND (name LIKE '\\_dry\\_run%' OR name = 'send_plan')"
    ).result_rows[0][0]
    assert leftovers == 0  # nothing kept: no scratch table, no send plan written
