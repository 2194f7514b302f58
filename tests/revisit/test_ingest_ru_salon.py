"""Issue #15: a Russian-style salon export (cp1251, `;`, CRLF, decimal comma, mixed dates,
Russian statuses, да/нет, Moscow local times) loads by configuration alone — a field map
in the data directory and `revisit ingest files` — and its 30 customers reach
marts.customer_rfm, with every raw field as the export meant it (times in UTC)."""

from __future__ import annotations

import datetime as dt
import shutil
from decimal import Decimal

import warehouse
from ingestion.crm.mapping import EXAMPLE_FIELD_MAPS
from revisit.settings import Settings
from simulation.ru_salon_export import write_salon_export
from tests.conftest import run_cli

UTC = dt.UTC


def _utc(value: dt.datetime) -> dt.datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def test_russian_salon_export_loads_by_configuration_and_reaches_the_marts(
    settings: Settings,
) -> None:
    exports = settings.source_dir / "crm" / "exports"
    export = write_salon_export(exports, business_id="salon_leto")
    raw_bytes = (export.folder / "Записи_2025.csv").read_bytes()
    assert b"\r\n" in raw_bytes and b";" in raw_bytes and "Завершён".encode("cp1251") in raw_bytes
    settings.field_maps_dir.mkdir(parents=True)
    shutil.copy(EXAMPLE_FIELD_MAPS / "ru_salon.yaml", settings.field_maps_dir / "salon_leto.yaml")

    # A file-only business: no CRM API configured, the API step says so and is skipped.
    done = run_cli(["ingest", "crm"], settings)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "CRM API: not configured (REVISIT_CRM_API_URL unset), skipped" in done.stdout
    assert "loaded" in done.stdout and "failed" not in done.stdout

    with warehouse.connect(settings.warehouse_dsn) as client:
        (business,) = client.query(
            "SELECT business_id, name, kind, country, city, timezone, currency "
            "FROM raw.crm_businesses FINAL"
        ).result_rows
        customers = {
            r[2]: r
            for r in client.query(
                "SELECT business_id, source_customer_id, phone_e164, phone_raw, full_name, "
                "birthday, gender, consent_marketing, created_at, updated_at, customer_id "
                "FROM raw.crm_customers FINAL"
            ).result_rows
        }
        appointments = {
            r[1]: r
            for r in client.query(
                "SELECT business_id, appointment_id, source_customer_id, location_id, "
                "service_id, status, scheduled_at, amount, currency, created_at, updated_at, "
                "offer_id, is_deleted FROM raw.crm_appointments FINAL"
            ).result_rows
        }
        quarantined = client.command("SELECT count() FROM raw.quarantine")
    assert business == ("salon_leto", "Салон «Лето»", "salon", "RU", "Москва", "Europe/Moscow",
                        "RUB")  # fmt: skip
    assert quarantined == 0
    assert len(customers) == 30 and len(appointments) == len(export.appointments) == 90
    ids = {}
    for person in export.customers:
        row = customers[person.phone_e164]
        assert row[0] == "salon_leto"
        assert row[1] == row[10]  # the client id is the phone's customer id
        ids[person.phone_e164] = row[1]
        assert row[3:8] == (person.phone_typed, person.full_name, person.birthday,
                            person.gender, person.consent)  # fmt: skip
        assert _utc(row[8]) == person.created_at_utc.replace(tzinfo=UTC)
        assert _utc(row[9]) == person.updated_at_utc.replace(tzinfo=UTC)
    for visit in export.appointments:
        row = appointments[visit.appointment_id]
        assert row[0] == "salon_leto" and row[2] == ids[visit.phone_e164]
        assert row[3:6] == (visit.location, visit.service, visit.status)
        assert _utc(row[6]) == visit.scheduled_at_utc.replace(tzinfo=UTC)
        assert row[7] == visit.amount and row[8] == "RUB"
        assert _utc(row[9]) == visit.created_at_utc.replace(tzinfo=UTC)
        assert _utc(row[10]) == visit.updated_at_utc.replace(tzinfo=UTC)
        assert row[11] is None and row[12] is False
    # 10:00 Moscow is 07:00 UTC in winter and in summer (no DST since 2014).
    assert _utc(appointments["1001"][6]) == dt.datetime(2025, 1, 10, 7, 0, tzinfo=UTC)
    summer = appointments["1002"]
    assert _utc(summer[6]) == dt.datetime(2025, 8, 8, 8, 0, tzinfo=UTC)  # "08.08.2025 11:00"
    assert appointments["1003"][7] == Decimal("12400.50")  # "12 400,50"

    built = run_cli(
        ["dbt", "build", "--select", "+customer_rfm", "--vars", "{as_of_date: '2026-01-05'}"],
        settings,
    )
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    with warehouse.connect(settings.warehouse_dsn) as client:
        rfm = client.query(
            "SELECT customer_id, frequency FROM marts.customer_rfm WHERE business_id = 'salon_leto'"
        ).result_rows
    completed: dict[str, int] = {}
    for visit in export.appointments:
        if visit.status == "completed":
            completed[ids[visit.phone_e164]] = completed.get(ids[visit.phone_e164], 0) + 1
    # Every visit lies within the 365-day RFM window before the as-of date.
    assert dict(rfm) == completed and len(rfm) == 30
