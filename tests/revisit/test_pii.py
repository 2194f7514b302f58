"""Personal data kept out of what is shown, and customer ids migrated between keys.

- masking (warehouse.privacy): phones as `+7916***4567`, names, free text, previews;
- `revisit migrate customer-ids` on a warehouse whose ids are the pre-upgrade plain
  SHA-256 of the phone: every stored id becomes the keyed id a fresh load computes,
  CRM keys derived from the phone follow (and their appointments with them), a rerun
  changes nothing; refused while the activation outbox holds rows.

The full-run check (no phone from the sources in a `revisit demo` log or its Dagster
event log) is in tests/integration/test_pipeline.py, on that module's demo run.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from decimal import Decimal

import pandas as pd
import pytest
from typer.testing import CliRunner

import warehouse
from activation.activation_log import ensure_log_tables
from ingestion.identity import customer_id
from ingestion.rekey import migrate_customer_ids
from ml.contract import ensure_scores_table
from ml.uplift import ensure_uplift_table
from revisit.cli import app
from revisit.settings import Settings
from warehouse.load import load_batch, prepare_raw
from warehouse.privacy import mask_frame, mask_name, mask_phone, mask_text

ANNA, AIGERIM = "+79161234567", "+77012345678"
T0 = dt.datetime(2026, 3, 1, 10, tzinfo=dt.UTC)


def test_phones_show_the_first_and_last_four_digits() -> None:
    assert mask_phone(ANNA) == "+7916***4567"
    assert mask_phone("8 (916) 123-45-67") == "8916***4567"
    assert mask_phone("12345") == "***"
    assert mask_phone("") == "" and mask_phone(None) == ""
    assert mask_name("Анна Петрова") == "А*** П***"


def test_free_text_masks_every_spelling_and_leaves_dates_and_ids() -> None:
    text = (
        'Анна Петрова: +79161234567, 8 (916) 123-45-67, +7 701 234 56 78, "wa_id":"79161234567"'
        " at 2026-11-01 14:15:00.000 for 1500.00 RUB, wamid.HBgL000000143864 M0000043689"
    )
    masked = mask_text(text, ["Анна Петрова"])
    assert masked == (
        '‹name› ‹name›: +7916***4567, 8916***4567, +7701***5678, "wa_id":"7916***4567"'
        " at 2026-11-01 14:15:00.000 for 1500.00 RUB, wamid.HBgL000000143864 M0000043689"
    )
    assert mask_text(masked, ["Анна Петрова"]) == masked  # idempotent


def test_previews_mask_phone_name_and_payload_columns() -> None:
    frame = pd.DataFrame(
        {
            "business_id": ["b1"],
            "phone_e164": [ANNA],
            "phone_raw": ["8 916 123 45 67"],
            "full_name": ["Анна Петрова"],
            "raw_payload": ['{"phone": "+79161234567"}'],
            "name": ["Салон «Аврора»"],  # a business's name is no personal data
        }
    )
    shown = mask_frame(frame).iloc[0].to_dict()
    assert shown == {
        "business_id": "b1",
        "phone_e164": "+7916***4567",
        "phone_raw": "8916***4567",
        "full_name": "А*** П***",
        "raw_payload": '{"phone": "+7916***4567"}',
        "name": "Салон «Аврора»",
    }
    assert frame["phone_e164"][0] == ANNA  # a copy: the data itself is untouched


def _old_id(phone: str) -> str:
    """The id before keyed ids: the plain SHA-256 of the E.164 number."""
    return hashlib.sha256(phone.encode()).hexdigest()[:16]


def _customers() -> pd.DataFrame:
    rows = [
        # b1 keys clients by its own id; b2's CRM keys them by phone (derive: from_phone).
        ("b1", "c1", ANNA, "Анна Петрова"),
        ("b1", "c2", AIGERIM, "Aigerim S."),
        ("b2", _old_id(ANNA), ANNA, "Анна П."),
    ]
    return pd.DataFrame(
        [
            {"business_id": b, "source_customer_id": s, "customer_id": _old_id(p),
             "phone_e164": p, "phone_raw": p, "full_name": n, "birthday": None, "gender": "f",
             "consent_marketing": True, "created_at": T0, "updated_at": T0}
            for b, s, p, n in rows
        ]
    )  # fmt: skip


def _appointments() -> pd.DataFrame:
    return pd.DataFrame(
        [
            {"business_id": b, "appointment_id": a, "source_customer_id": s,
             "location_id": "l1", "service_id": "s1", "status": "completed",
             "scheduled_at": T0, "amount": Decimal("100.00"), "currency": "RUB",
             "offer_id": None, "created_at": T0, "updated_at": T0}
            for b, a, s in [("b1", "a1", "c1"), ("b2", "a2", _old_id(ANNA))]
        ]
    )  # fmt: skip


def _old_warehouse(settings: Settings) -> None:
    """Raw tables, an activation log and scores as an installation before keyed ids has."""
    with warehouse.connect(settings.warehouse_dsn) as client:
        prepare_raw(client)
        load_batch(client, "crm_customers", _customers(), batch_id="c", source="t")
        load_batch(client, "crm_appointments", _appointments(), batch_id="a", source="t")
        events = pd.DataFrame(
            [{"event_id": "e1", "partner_id": "p1", "event_type": "accrual",
              "phone_e164": ANNA, "customer_id": _old_id(ANNA), "amount": Decimal("5.00"),
              "currency": "RUB", "occurred_at": T0, "offer_id": None, "raw_payload": "{}"}]
        )  # fmt: skip
        load_batch(client, "partner_events", events, batch_id="e", source="t")
        sends = pd.DataFrame(
            [{"message_id": "m1", "business_id": "b1", "phone_e164": AIGERIM,
              "customer_id": _old_id(AIGERIM), "trigger": "winback", "campaign_id": None,
              "channel": "whatsapp", "holdout": False, "planned_at": T0, "offer_id": None,
              "provider_message_id": None}]
        )  # fmt: skip
        load_batch(client, "message_sends", sends, batch_id="s", source="t")
        ensure_log_tables(client)
        client.command(
            "INSERT INTO activation.message_log (idempotency_key, business_id, customer_id, "
            f"phone_e164) VALUES ('k1', 'b1', '{_old_id(ANNA)}', '{ANNA}')"
        )
        ensure_scores_table(client)
        client.command(
            "INSERT INTO ml.revisit_scores (business_id, customer_id) VALUES "
            f"('b1', '{_old_id(AIGERIM)}'), ('b9', 'never-seen-with-a-phone')"
        )
        ensure_uplift_table(client)
        client.command(
            "INSERT INTO ml.uplift_scores (business_id, customer_id, trigger) VALUES "
            f"('b1', '{_old_id(AIGERIM)}', 'winback')"
        )
        # The append-only histories dbt keeps (full_refresh=false), in their shape.
        client.command("CREATE DATABASE IF NOT EXISTS intermediate")
        client.command(
            "CREATE TABLE intermediate.int_customer_consent_history (business_id String, "
            "source_customer_id String, customer_id String, consent_marketing Bool, "
            "loaded_at DateTime64(3, 'UTC')) ENGINE = ReplacingMergeTree(loaded_at) "
            "ORDER BY (business_id, source_customer_id)"
        )
        client.command(
            "INSERT INTO intermediate.int_customer_consent_history VALUES "
            f"('b2', '{_old_id(ANNA)}', '{_old_id(ANNA)}', true, now64(3))"
        )
        client.command(
            "CREATE TABLE intermediate.int_appointment_versions (business_id String, "
            "appointment_id String, source_customer_id String, loaded_at DateTime64(3, 'UTC')) "
            "ENGINE = ReplacingMergeTree(loaded_at) ORDER BY (business_id, appointment_id)"
        )
        client.command(
            "INSERT INTO intermediate.int_appointment_versions VALUES "
            f"('b2', 'a2', '{_old_id(ANNA)}', now64(3))"
        )


def _ids(client: warehouse.Client) -> dict[str, list[tuple[str, ...]]]:
    def rows(sql: str) -> list[tuple[str, ...]]:
        return sorted(tuple(map(str, r)) for r in client.query(sql).result_rows)

    return {
        "customers": rows(
            "SELECT business_id, source_customer_id, customer_id, phone_e164 "
            "FROM raw.crm_customers FINAL"
        ),
        "appointments": rows(
            "SELECT business_id, source_customer_id FROM raw.crm_appointments FINAL"
        ),
        "events": rows("SELECT customer_id, phone_e164 FROM raw.partner_events FINAL"),
        "sends": rows("SELECT customer_id, phone_e164 FROM raw.message_sends FINAL"),
        "log": rows("SELECT customer_id, phone_e164 FROM activation.message_log FINAL"),
        "scores": rows("SELECT business_id, customer_id FROM ml.revisit_scores"),
        "uplift": rows("SELECT customer_id FROM ml.uplift_scores"),
        "consent_history": rows(
            "SELECT source_customer_id, customer_id FROM intermediate.int_customer_consent_history"
        ),
        "appointment_versions": rows(
            "SELECT source_customer_id FROM intermediate.int_appointment_versions"
        ),
    }


def test_migration_rewrites_old_ids_to_the_keyed_ones_and_is_idempotent(
    settings: Settings,
) -> None:
    _old_warehouse(settings)
    key = b"a-per-installation-key"
    new = dict(zip([ANNA, AIGERIM], customer_id(pd.Series([ANNA, AIGERIM]), key), strict=True))
    with warehouse.connect(settings.warehouse_dsn) as client:
        report = migrate_customer_ids(client, key)
        ids = _ids(client)
        again = migrate_customer_ids(client, key)
        assert _ids(client) == ids
    assert report.phones == 2
    assert again.total_changed == 0
    assert ids == {
        "customers": sorted([
            ("b1", "c1", new[ANNA], ANNA),
            ("b1", "c2", new[AIGERIM], AIGERIM),
            ("b2", new[ANNA], new[ANNA], ANNA),  # the phone-derived CRM key follows
        ]),
        "appointments": [("b1", "c1"), ("b2", new[ANNA])],  # …and its appointments
        "events": [(new[ANNA], ANNA)],
        "sends": [(new[AIGERIM], AIGERIM)],
        "log": [(new[ANNA], ANNA)],
        "scores": sorted([("b1", new[AIGERIM]), ("b9", "never-seen-with-a-phone")]),
        "uplift": [(new[AIGERIM],)],
        "consent_history": [(new[ANNA], new[ANNA])],  # no full refresh rebuilds these
        "appointment_versions": [(new[ANNA],)],
    }  # fmt: skip
    assert report.changed["raw.crm_customers.customer_id"] == 3
    assert report.changed["raw.crm_appointments.source_customer_id"] == 1


def test_migrate_command_refuses_while_the_outbox_holds_rows(settings: Settings) -> None:
    from activation.contracts import Channel, PlannedMessage
    from activation.outbox import Outbox

    _old_warehouse(settings)
    (settings.data_dir / "state").mkdir(parents=True, exist_ok=True)
    outbox = Outbox(settings.state_dsn)
    plan = PlannedMessage(
        idempotency_key="k1", campaign_id="winback-b1-2026-W10", trigger="winback",
        business_id="b1", customer_id=_old_id(ANNA), phone_e164=ANNA,
        channel=Channel.whatsapp, recipient=ANNA, template="winback_v1", text="hi",
        send_at=T0, expires_at=T0 + dt.timedelta(days=1),
    )  # fmt: skip
    outbox.enqueue([plan], now=T0)
    outbox.dispose()
    result = CliRunner().invoke(app, ["migrate", "customer-ids"])  # in process: the settings'
    assert result.exit_code == 1, result.output
    message = " ".join(result.output.split())
    assert "outbox holds 1 row(s)" in message and "double accrual" in message
    with warehouse.connect(settings.warehouse_dsn) as client:  # nothing was rewritten
        assert client.command("SELECT any(customer_id) FROM raw.message_sends") == _old_id(AIGERIM)


@pytest.mark.parametrize("phone", [ANNA, AIGERIM])
def test_old_ids_are_not_the_keyed_ids(phone: str) -> None:
    # What the migration exists for: ids under the key differ from the enumerable hash.
    assert customer_id(pd.Series([phone]), b"k")[0] != _old_id(phone)
