"""End to end on a small generated ecosystem: `revisit demo`, then the marts checked
against an independent pandas recomputation from the raw tables.

The recomputations follow the definitions in the dbt YAML docs, not the SQL. The last
tests check the data-loss ledger on the same run: each source table's rows (its latest
raw versions plus the rows quarantined whole at load, counted here from the raw tables)
equal the rows reaching its mart plus the ledger's lost and merged rows for that mart;
then two CRM records of one business are planted with one phone spelled two ways: the
collision mart lists both, and the ledger counts the second as merged.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import numpy as np
import pandas as pd
import pytest

import warehouse
from revisit.settings import PROJECT_ROOT, Settings
from tests.conftest import VENV_BIN, run_cli
from warehouse.load import load_batch

pytestmark = pytest.mark.slow

CUSTOMERS = 1000


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Settings, dict]]:
    """One demo run on a fresh data directory, shared by the tests of this module."""
    data_dir = tmp_path_factory.mktemp("pipeline") / "data"
    saved = {k: os.environ.pop(k) for k in list(os.environ) if k.startswith("REVISIT_")}
    os.environ["REVISIT_DATA_DIR"] = str(data_dir)
    try:
        settings = Settings()
        result = run_cli(["demo", "--customers", str(CUSTOMERS)], settings, timeout=900)
        assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
        (data_dir.parent / "demo.log").write_text(result.stdout + result.stderr)
        # The summary shows the ledger, the collisions and the migration matrix.
        assert "Data-loss ledger" in result.stdout or "data loss: none" in result.stdout
        assert "phone collisions:" in result.stdout
        assert "segment migration" in result.stdout.lower()
        manifest = json.loads((settings.source_dir / "manifest.json").read_text())
        yield settings, manifest
    finally:
        os.environ.pop("REVISIT_DATA_DIR", None)
        os.environ.update(saved)


def frame(settings: Settings, sql: str) -> pd.DataFrame:
    with warehouse.connect(settings.warehouse_dsn) as client:
        return client.query_df(sql)


def raw_visits(settings: Settings) -> pd.DataFrame:
    """Completed visits from the raw CRM tables, latest version of every row."""
    customers = frame(
        settings,
        "SELECT business_id, source_customer_id, customer_id, updated_at, _version "
        "FROM raw.crm_customers",
    )
    customers = customers.sort_values("_version").drop_duplicates(
        ["business_id", "source_customer_id"], keep="last"
    )
    appointments = frame(
        settings,
        "SELECT business_id, appointment_id, source_customer_id, status, scheduled_at, "
        "amount, _version FROM raw.crm_appointments",
    )
    appointments = appointments.sort_values("_version").drop_duplicates(
        ["business_id", "appointment_id"], keep="last"
    )
    completed = appointments[(appointments.status == "completed") & appointments.amount.notna()]
    return completed.merge(customers[["business_id", "source_customer_id", "customer_id"]])


def test_demo_built_every_mart(pipeline: tuple[Settings, dict]) -> None:
    """`revisit demo` materialised every asset in process; the run is in the instance."""
    settings, _ = pipeline
    assert (settings.dagster_home / "dagster.yaml").exists()
    assert any((settings.dagster_home / "storage").iterdir())
    counts = frame(
        settings,
        "SELECT name, total_rows FROM system.tables WHERE database = 'marts' AND engine != 'View'",
    ).set_index("name")["total_rows"]
    for mart in ("dim_customers", "customer_rfm", "fct_visits", "message_funnel",
                 "cashback_ledger", "cashback_balances", "partner_offer_conversion"):  # fmt: skip
        assert counts[mart] > 0, mart
    # The uplift asset scored every customer with a visit for each trigger it learnt.
    uplift = frame(
        settings,
        "SELECT trigger, uniqExact(business_id, customer_id) AS n, min(p_sent) AS lo, "
        "max(p_sent) AS hi FROM ml.uplift_scores GROUP BY trigger",
    )
    customers = frame(settings, "SELECT uniqExact(business_id, customer_id) FROM marts.fct_visits")
    assert {"winback", "birthday"} <= set(uplift.trigger)
    assert (uplift.n == customers.iloc[0, 0]).all() and (uplift.lo >= 0).all()
    assert (uplift.hi <= 1).all()
    # Every raw CRM phone the generator spelled invalid is quarantined, none is guessed.
    bad = pd.read_csv(settings.source_dir / "truth" / "bad_rows.csv", dtype=str)
    bad_customers = bad[(bad.entity == "customers") & (bad.field == "phone")]
    quarantined = frame(
        settings,
        "SELECT row_ref, reason FROM raw.quarantine FINAL WHERE source_table = 'crm_customers' "
        "AND field = 'phone_e164'",
    )
    assert len(quarantined) == len(bad_customers) > 0
    # Each reason names this row's problem and value, on one line.
    assert all("\n" not in r and "(region " in r for r in quarantined.reason)
    assert set(quarantined.reason.str.extract(r"'(.*)'$")[0]) <= set(bad_customers.value)


def test_no_phone_or_name_from_the_sources_in_the_demo_log_or_the_dagster_event_log(
    pipeline: tuple[Settings, dict],
) -> None:
    """Everything shown (the demo's stdout and stderr, every Dagster event: logs, metadata
    previews, dry-run samples, check results) is masked: no phone number of the sources
    in any spelling (its last 10 digits inside a run of digits), no customer's full name."""
    from dagster._serdes import serialize_value

    from orchestration.instance import get_instance

    settings, _ = pipeline
    phones = frame(
        settings,
        "SELECT phone_e164 FROM raw.crm_customers WHERE phone_e164 != '' UNION DISTINCT "
        "SELECT phone_e164 FROM raw.partner_events WHERE phone_e164 != '' UNION DISTINCT "
        "SELECT phone_e164 FROM raw.message_sends WHERE phone_e164 != ''",
    ).phone_e164
    national = {p[-10:] for p in phones}
    names = set(
        frame(settings, "SELECT DISTINCT full_name FROM raw.crm_customers").full_name.dropna()
    )
    names = {n for n in names if len(n.split()) >= 2}
    assert len(national) > 500 and len(names) > 100
    texts = {"demo log": (settings.data_dir.parent / "demo.log").read_text()}
    instance = get_instance(settings)
    try:
        for run in instance.get_runs():
            records = instance.all_logs(run.run_id)
            assert records
            # Serialized JSON escapes non-ASCII: decode it, or no Cyrillic name could match.
            texts[f"run {run.run_id}"] = "\n".join(
                json.dumps(json.loads(serialize_value(r)), ensure_ascii=False) for r in records
            )
    finally:
        instance.dispose()
    assert len(texts) > 1  # the demo's run is in the instance
    leaks = []
    for where, text in texts.items():
        for match in re.finditer(r"\+?\d[\d ()-]{8,}\d", text):
            digits = re.sub(r"\D", "", match.group())
            if any(digits[i : i + 10] in national for i in range(len(digits) - 9)):
                leaks.append((where, match.group()))
        leaks += [(where, name) for name in names if name in text]
    assert leaks == []


def test_customer_rfm_matches_pandas(pipeline: tuple[Settings, dict]) -> None:
    settings, manifest = pipeline
    as_of = date.fromisoformat(manifest["as_of"])
    visits = raw_visits(settings)
    visits = visits[visits.scheduled_at < pd.Timestamp(as_of + timedelta(days=1))]
    visits["day"] = visits.scheduled_at.dt.date
    in_window = visits[visits.day > as_of - timedelta(days=365)]
    per = visits.groupby(["business_id", "customer_id"]).agg(last_day=("day", "max"))
    per["recency_days"] = per.last_day.map(lambda d: (as_of - d).days)
    window = in_window.groupby(["business_id", "customer_id"]).agg(
        frequency=("amount", "size"), monetary=("amount", "sum")
    )
    per = per.join(window).fillna({"frequency": 0, "monetary": Decimal(0)}).reset_index()

    def score(values: pd.Series, higher_is_better: bool) -> pd.Series:
        # 1 + floor(3 × (customers strictly worse) / n), per business.
        v = values.astype(float).to_numpy()
        worse = np.array([(v < x).sum() if higher_is_better else (v > x).sum() for x in v])
        return pd.Series(1 + (3 * worse) // len(v), index=values.index)

    by_business = per.groupby("business_id")
    per["r_score"] = by_business.recency_days.transform(lambda s: score(s, False))
    per["f_score"] = by_business.frequency.transform(lambda s: score(s, True))
    per["m_score"] = by_business.monetary.transform(lambda s: score(s, True))

    mart = frame(
        settings,
        "SELECT business_id, customer_id, recency_days, frequency, monetary, "
        "r_score, f_score, m_score FROM marts.customer_rfm",
    )
    merged = per.merge(mart, on=["business_id", "customer_id"], suffixes=("", "_mart"))
    assert len(merged) == len(per) == len(mart) > 500
    for column in ("recency_days", "frequency", "r_score", "f_score", "m_score"):
        assert (merged[column].astype(int) == merged[f"{column}_mart"].astype(int)).all(), column
    assert (merged.monetary.map(Decimal) == merged.monetary_mart.map(Decimal)).all()


def test_cashback_balances_match_pandas(pipeline: tuple[Settings, dict]) -> None:
    settings, _ = pipeline
    events = frame(
        settings,
        "SELECT partner_id, event_id, event_type, customer_id, amount, currency, _version "
        "FROM raw.partner_events",
    )
    events = events.sort_values("_version").drop_duplicates(["partner_id", "event_id"], keep="last")
    money = events[events.event_type.isin(["accrual", "reversal", "redemption"])].copy()
    sign = np.where(money.event_type == "accrual", 1, -1)
    money["signed"] = [Decimal(int(s)) * abs(a) for s, a in zip(sign, money.amount, strict=True)]
    expected = money.groupby(["customer_id", "currency"]).signed.sum().rename("balance")
    mart = frame(settings, "SELECT customer_id, currency, balance FROM marts.cashback_balances")
    mart = mart.set_index(["customer_id", "currency"]).balance
    assert len(expected) == len(mart) > 0
    joined = pd.concat([expected, mart.rename("mart")], axis=1)
    assert (joined.balance.map(Decimal) == joined.mart.map(Decimal)).all()


def test_message_funnel_matches_pandas(pipeline: tuple[Settings, dict]) -> None:
    settings, _ = pipeline
    sends = frame(
        settings,
        "SELECT message_id, business_id, customer_id, trigger, campaign_id, channel, holdout, "
        "planned_at, provider_message_id, _version FROM raw.message_sends",
    )
    sends = sends.sort_values("_version").drop_duplicates("message_id", keep="last")
    events = frame(
        settings,
        "SELECT provider, event_id, event_type, provider_message_id, message_id, status, "
        "recipient, occurred_at, _version FROM raw.messenger_events",
    )
    events = events.sort_values("_version").drop_duplicates(["provider", "event_id"], keep="last")
    events = events[events.event_type.isin(["status", "inbound"])]
    # An event finds its message by our id, else by the provider's (Telegram: chat:message);
    # an id in `message_id` that names no send is tried as the provider's (SMS gateways
    # report theirs there).
    by_provider = (
        sends.dropna(subset=["provider_message_id"]).set_index("provider_message_id").message_id
    )
    provider_key = pd.Series(
        np.where(
            events.provider == "telegram",
            events.recipient.astype(str) + ":" + events.provider_message_id.astype(str),
            events.provider_message_id.astype(str),
        ),
        index=events.index,
    ).where(events.provider_message_id.notna(), events.message_id)
    ours = events.message_id.isin(sends.message_id)
    events["resolved"] = events.message_id.where(ours, provider_key.map(by_provider))
    events = events.dropna(subset=["resolved"])
    first = events.pivot_table(
        index="resolved", columns="status", values="occurred_at", aggfunc="min"
    )
    sends = sends.set_index("message_id")
    reached = {
        stage: first.reindex(columns=statuses).notna().any(axis=1).reindex(sends.index)
        .fillna(False)
        for stage, statuses in {
            "delivered": ["delivered", "read", "replied", "clicked"],
            "read": ["read", "replied", "clicked"],
            "replied": ["replied", "clicked"],
        }.items()
    }  # fmt: skip
    is_sent = ~sends.holdout & (sends.provider_message_id.notna() | sends.index.isin(first.index))

    visits = raw_visits(settings)[["business_id", "customer_id", "scheduled_at"]]
    pairs = sends.reset_index().merge(visits, on=["business_id", "customer_id"], how="left")
    delta = pairs.scheduled_at - pairs.planned_at
    pairs["in30"] = (delta > pd.Timedelta(0)) & (delta <= pd.Timedelta(days=30))
    revisit30 = pairs.groupby("message_id").in30.any().reindex(sends.index)

    sends["send_date"] = sends.planned_at.dt.date
    sends["campaign_id"] = sends.campaign_id.fillna("")
    sends["recipient"] = ~sends.holdout
    sends["sent"] = is_sent
    for stage, flags in reached.items():
        sends[stage] = flags & is_sent
    sends["revisited_30d"] = revisit30 & ~sends.holdout
    sends["holdout_revisited_30d"] = revisit30 & sends.holdout
    keys = ["business_id", "trigger", "campaign_id", "channel", "send_date"]
    expected = sends.groupby(keys)[
        ["recipient", "sent", "delivered", "read", "replied", "revisited_30d",
         "holdout_revisited_30d", "holdout"]
    ].sum().rename(columns={"recipient": "recipients", "holdout": "holdout_size"})  # fmt: skip

    mart = frame(
        settings,
        "SELECT business_id, trigger, campaign_id, channel, send_date, recipients, sent, "
        "delivered, read, replied, revisited_30d, holdout_revisited_30d, holdout_size "
        "FROM marts.message_funnel",
    )
    mart["send_date"] = pd.to_datetime(mart.send_date).dt.date
    mart = mart.set_index(keys).sort_index()
    expected = expected.sort_index()
    assert len(mart) == len(expected) > 0
    assert expected.delivered.sum() > 0 and expected.holdout_revisited_30d.sum() > 0
    for column in expected.columns:
        assert (expected[column].astype(int) == mart[column].astype(int)).all(), column


def test_rerun_changes_nothing(pipeline: tuple[Settings, dict]) -> None:
    """A second run on the same sources (webhooks replayed again, as providers retry)
    changes no table: every source row exists once and the marts rebuild the same."""
    settings, _ = pipeline
    sql = (
        "SELECT (SELECT count() FROM raw.crm_appointments FINAL), (SELECT count() FROM "
        "raw.messenger_events FINAL), (SELECT count() FROM raw.partner_events FINAL), "
        "(SELECT sum(balance) FROM marts.cashback_balances), "
        "(SELECT count() FROM marts.fct_visits)"
    )
    before = frame(settings, sql).iloc[0].tolist()
    result = run_cli(["demo", "--customers", str(CUSTOMERS)], settings, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    assert frame(settings, sql).iloc[0].tolist() == before


def test_export_segments_for_marketers(pipeline: tuple[Settings, dict], tmp_path) -> None:
    """One folder per business, named after it; a Russian business's CSV in Russian,
    phones kept as text by pandas' default read_csv (tests/warehouse/
    test_exports_marketer.py covers the details)."""
    from warehouse.exports import folder_names

    settings, _ = pipeline
    out = tmp_path / "csv"
    result = run_cli(["export", "segments", "--out", str(out)], settings)
    assert result.returncode == 0, result.stderr
    businesses = frame(settings, "SELECT business_id, name, country FROM marts.dim_businesses")
    folders = folder_names(zip(businesses.business_id, businesses.name, strict=True))
    with_customers = frame(settings, "SELECT DISTINCT business_id FROM marts.customer_rfm")
    assert sorted(p.name for p in out.iterdir()) == sorted(
        folders[b] for b in with_customers.business_id
    )
    business = businesses[businesses.country == "RU"].business_id.min()
    members = out / folders[business] / "members.csv"
    assert members.read_bytes().startswith(b"\xef\xbb\xbf")  # BOM: Excel reads it as UTF-8
    table = pd.read_csv(members)
    assert {"Телефон", "Имя", "Сегмент", "Рекомендуемое действие", "RFM-ячейка",
            "Дней с последнего визита", "Визитов", "Потрачено"} <= set(table.columns)  # fmt: skip
    assert table["Телефон"].str.startswith("+7").all()
    assert table["Имя"].str.contains("[А-Яа-я]", regex=True).any()  # Cyrillic intact
    assert table["Сегмент"].str.contains("[А-Яа-я]", regex=True).all()
    sizes = pd.read_csv(members.with_name("segment_sizes.csv"))
    assert sizes["Клиентов"].sum() == len(table)
    xlsx = tmp_path / "xlsx"
    result = run_cli(
        ["export", "segments", "--business", business, "--format", "xlsx", "--out", str(xlsx)],
        settings,
    )
    assert result.returncode == 0, result.stderr
    sheets = pd.read_excel(xlsx / folders[business] / "segments.xlsx", sheet_name=None)
    assert set(sheets) == {"Сегменты", "Клиенты"}
    assert len(sheets["Клиенты"]) == len(table)


def test_marketer_report_after_the_demo(pipeline: tuple[Settings, dict], tmp_path) -> None:
    """The demo's `exports/marketer_report` asset wrote every business's report; `revisit
    report` renders one in English, with data in every section but the ones the small
    ecosystem may lack, and it opens cleanly in Chromium at desktop and phone width
    (tests/report_checks.py; tests/warehouse/test_report.py covers a new business)."""
    from tests.report_checks import check_html, check_xlsx, pdf_pages
    from warehouse.exports import folder_names

    settings, _ = pipeline
    businesses = frame(settings, "SELECT business_id, name FROM marts.dim_businesses")
    folders = folder_names(zip(businesses.business_id, businesses.name, strict=True))
    written = settings.exports_dir / "reports"
    assert sorted(p.name for p in written.iterdir()) == sorted(folders.values())
    assert all(len(list((written / f).glob("report-*.*"))) == 3 for f in folders.values())

    business = businesses.business_id.min()
    result = run_cli(
        ["report", "--business", business, "--lang", "en", "--out", str(tmp_path)], settings
    )
    assert result.returncode == 0, result.stderr
    html, pdf, xlsx = sorted((tmp_path / folders[business]).glob("report-*.*"))
    probe = check_html(html)
    filled = {s["id"] for s in probe["desktop"]["sections"] if not s["empty"]}
    assert {"grid", "segments", "trend", "migration", "campaigns", "score"} <= filled
    charted = {s["id"] for s in probe["desktop"]["sections"] if s["charts"]}
    assert check_xlsx(xlsx, charted)[0] == "Summary"
    assert pdf_pages(pdf) >= 9


def test_live_accruals_reach_the_ledger_exactly_once(pipeline: tuple[Settings, dict]) -> None:
    """cashback_accruals + deliveries, live, twice, against the ledger stand-in: one
    effect per ledger accrual entry, and the reconciliation check passes."""
    from simulation.providers import TOKENS, run_standins

    settings, _ = pipeline
    config = {
        "ops": {
            "cashback_accruals": {"config": {"dry_run": False}},
            "deliveries": {"config": {"dry_run": False}},
        }
    }
    with run_standins(providers=("ledger",)) as cluster:
        env = {k: v for k, v in os.environ.items() if not k.startswith("REVISIT_")}
        env.update(
            REVISIT_DATA_DIR=str(settings.data_dir),
            REVISIT_LEDGER_BASE_URL=cluster.urls["ledger"],
            REVISIT_LEDGER_TOKEN=TOKENS["ledger"],
        )
        for _ in range(2):
            done = subprocess.run(
                [str(VENV_BIN / "dagster"), "asset", "materialize", "-m",
                 "orchestration.definitions", "--select",
                 "activation/cashback_accruals,activation/deliveries",
                 "--config-json", json.dumps(config)],
                cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=600,
            )  # fmt: skip
            assert done.returncode == 0, done.stderr[-3000:]
            assert "accruals_reconciled" in done.stderr
        effects = cluster.admin("ledger").effects()
    accruals = frame(
        settings, "SELECT count() AS n FROM marts.cashback_ledger WHERE event_type = 'accrual'"
    ).n[0]
    assert len(effects) == accruals > 0
    assert set(effects.values()) == {1}
    log = frame(
        settings, "SELECT state, count() AS n FROM activation.accrual_log FINAL GROUP BY state"
    )
    assert dict(zip(log.state, log.n, strict=True)) == {"sent": accruals}


# --- the data-loss ledger (they run last: one plants a CRM record) ----------------------

# source table → (the mart its rows reach, how many rows of the mart stand for them)
PRIMARY = {
    "crm_customers": ("dim_customers", "SELECT count() FROM marts.dim_customers"),
    "crm_appointments": ("fct_appointments", "SELECT count() FROM marts.fct_appointments"),
    "message_sends": ("fct_message_sends", "SELECT count() FROM marts.fct_message_sends"),
    # Money events reach the cashback ledger; the feed's other events (target actions)
    # are no cashback and reach no mart by design, so they count as arrived.
    "partner_events": (
        "cashback_ledger",
        "SELECT (SELECT count() FROM marts.cashback_ledger) + (SELECT count() FROM "
        "staging.stg_partners__events WHERE event_type NOT IN "
        "('accrual', 'reversal', 'redemption'))",
    ),
}


@pytest.fixture(scope="module")
def demo(pipeline: tuple[Settings, dict]) -> Settings:
    return pipeline[0]


def received(client: warehouse.Client, table: str) -> int:
    """Rows the source table received: latest raw versions + distinct rows quarantined
    whole (a reason not ending "row kept"), counted from raw, not through the models."""
    raw = int(client.command(f"SELECT count() FROM raw.{table} FINAL"))
    quarantined = client.query_df(
        "SELECT source_kind, _source, row_ref, reason, raw_row FROM raw.quarantine FINAL "
        "WHERE source_table = {t:String}",
        parameters={"t": table},
    )
    if quarantined.empty:
        return raw
    whole = quarantined.groupby(["source_kind", "_source", "row_ref"]).reason.apply(
        lambda reasons: not reasons.str.endswith("value dropped, row kept").all()
    )
    return raw + int(whole.sum())


def check_ledger_explains_every_row(settings: Settings) -> dict[str, tuple[int, int, int]]:
    """Assert the equation per source table; return (received, reached, ledger) each."""
    figures = {}
    with warehouse.connect(settings.warehouse_dsn) as client:
        ledger = client.query_df("SELECT * FROM marts.data_loss")
        for table, (mart, reached_sql) in PRIMARY.items():
            total = received(client, table)
            reached = int(client.command(reached_sql))
            mine = ledger[
                (ledger.source_table == table)
                & (ledger.mart == mart)
                & ledger.outcome.isin(["lost", "merged"])
            ]
            explained = int(mine["rows"].sum())
            assert total == reached + explained, (table, total, reached, mine.to_dict("records"))
            if len(ledger[ledger.source_table == table]):
                assert set(ledger[ledger.source_table == table].source_rows) == {total}, table
            figures[table] = (total, reached, explained)
    return figures


def test_the_ledger_explains_every_missing_row(demo: Settings) -> None:
    figures = check_ledger_explains_every_row(demo)
    # The generator plants invalid phones: their customers and appointments are lost,
    # and the ledger says why.
    assert figures["crm_customers"][2] > 0 and figures["crm_appointments"][2] > 0
    with warehouse.connect(demo.warehouse_dsn) as client:
        reasons = set(
            client.query_df("SELECT reason FROM marts.data_loss WHERE outcome = 'lost'").reason
        )
    assert "customer quarantined at load" in reasons
    assert "quarantined at load: phone_e164" in reasons
    # Every SMS delivery report reaches the funnel (the gateway's id in `message_id`).
    with warehouse.connect(demo.warehouse_dsn) as client:
        missed = client.command(
            "SELECT sum(rows) FROM marts.data_loss WHERE source_table = 'messenger_events' "
            "AND stage = 'int_message_sends'"
        )
    assert int(missed or 0) == 0


def test_a_phone_collision_is_listed_and_counted_as_merged(demo: Settings) -> None:
    with warehouse.connect(demo.warehouse_dsn) as client:
        business, customer_id, phone = client.query(
            "SELECT business_id, customer_id, phone_e164 FROM raw.crm_customers FINAL "
            "ORDER BY business_id, source_customer_id LIMIT 1"
        ).result_rows[0]
        now = datetime(2026, 1, 1, tzinfo=UTC)
        twin = pd.DataFrame(
            {
                "business_id": [business],
                "source_customer_id": ["planted-twin"],
                "customer_id": [customer_id],
                "phone_e164": [phone],
                "phone_raw": ["8 " + phone[2:]],
                "full_name": ["Planted Twin"],
                "birthday": [None],
                "gender": [""],
                "consent_marketing": [False],
                "created_at": [now],
                "updated_at": [now],
            }
        )
        load_batch(client, "crm_customers", twin, batch_id="planted-twin", source="test")
    result = run_cli(
        ["dbt", "build", "--select", "stg_crm__customers", "dim_customers",
         "crm_phone_collisions", "data_loss"],
        demo,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    with warehouse.connect(demo.warehouse_dsn) as client:
        collisions = client.query_df(
            "SELECT * FROM marts.crm_phone_collisions WHERE business_id = {b:String} "
            "AND customer_id = {c:String}",
            parameters={"b": business, "c": customer_id},
        )
    assert "planted-twin" in set(collisions.source_customer_id)
    assert len(collisions) >= 2 and set(collisions.records) == {len(collisions)}
    assert collisions.describes_customer.sum() == 1
    figures = check_ledger_explains_every_row(demo)
    assert figures["crm_customers"][2] >= 1


def test_the_loss_checks_fail_when_a_source_loses_more_than_its_share(demo: Settings) -> None:
    # The demo plants about 1% bad rows: below the default shares, above these.
    strict = '{"data_loss_warn_share": 0.0001, "data_loss_error_share": 0.001}'
    result = run_cli(["dbt", "test", "--select", "data_loss", "--vars", strict], demo)
    output = result.stdout + result.stderr
    assert result.returncode != 0, output[-4000:]
    assert "Failure in test data_loss_below_error_share" in output, output[-4000:]
    assert "Warning in test data_loss_below_warn_share" in output, output[-4000:]
    default = run_cli(["dbt", "test", "--select", "data_loss"], demo)
    assert default.returncode == 0, (default.stdout + default.stderr)[-4000:]
