"""CRM REST connector against the stand-in server on 127.0.0.1."""

from __future__ import annotations

import time

import httpx
import pytest

from ingestion.crm import CrmApiConfig, CursorStore, sync_crm_api
from ingestion.crm.api import CrmApiClient, CrmApiError
from ingestion.identity import customer_id
from revisit.settings import DEV_ID_KEY, Settings
from simulation.crm_api import Faults, serve_in_background
from tests.ingestion.crm.crmdata import APPOINTMENTS, appointment, write_jsonl


def _api(settings: Settings, base_url: str) -> CrmApiConfig:
    return settings.crm_api(base_url).model_copy(update={"token": "t"})


def count(client, table: str) -> int:
    return client.query(f"SELECT count() FROM raw.{table} FINAL").result_rows[0][0]


def test_standin_contract(src_dir) -> None:
    with (
        serve_in_background(src_dir, token="t") as srv,
        httpx.Client(base_url=srv.base_url) as http,
    ):
        assert http.get("/api/v1/customers").status_code == 401
        ok = {"Authorization": "Bearer t"}
        seen, cursor = [], None
        while True:
            params = {"limit": 7, **({"cursor": cursor} if cursor else {})}
            body = http.get("/api/v1/appointments", params=params, headers=ok).json()
            assert len(body["data"]) <= 7
            seen += body["data"]
            cursor = body["next_cursor"]
            if not cursor:
                break
        assert [r["id"] for r in seen] == [
            r["id"] for r in sorted(APPOINTMENTS, key=lambda r: (r["updated_at"], r["id"]))
        ]
        since = http.get(
            "/api/v1/appointments",
            params={"updated_since": "2030-01-01T00:00:00Z"},
            headers=ok,
        ).json()
        assert since == {"data": [], "next_cursor": None}


def test_sync_loads_normalises_and_quarantines(src_dir, settings, client) -> None:
    with serve_in_background(src_dir, token="t") as srv:
        results = sync_crm_api(
            client, _api(settings, srv.base_url), limit=10, id_key=settings.id_key
        )
    tables = [r.table for r in results]
    # Businesses load before customers (their country is the phone region).
    assert tables.index("crm_businesses") < tables.index("crm_customers")
    assert count(client, "crm_businesses") == 2
    assert count(client, "crm_services") == 1  # s2 has price "abc"
    assert count(client, "crm_appointments") == 25  # a99 has an unknown status
    phones = dict(
        client.query(
            "SELECT source_customer_id, phone_e164 FROM raw.crm_customers FINAL"
        ).result_rows
    )
    assert phones == {
        "c0": "+79161234560",
        "c1": "+79161234561",
        "c2": "+79161234562",
        "c4": "+77012345678",  # national number of a KZ business
    }
    ids = client.query(
        "SELECT customer_id, substring(lower(hex(HMAC('SHA256', phone_e164, {k:String}))), 1, 16) "
        "FROM raw.crm_customers FINAL",
        parameters={"k": DEV_ID_KEY.decode()},
    ).result_rows
    assert all(a == b for a, b in ids)
    assert ids[0][0] in set(
        customer_id(__import__("pandas").Series(list(phones.values())), DEV_ID_KEY)
    )
    q = client.query(
        "SELECT source_table, row_ref, field, reason FROM raw.quarantine ORDER BY row_ref"
    ).result_rows
    by_ref = {r[1]: r for r in q}
    assert by_ref["customers/c3"][2] == "phone_e164" and "unparseable" in by_ref["customers/c3"][3]
    assert by_ref["services/s2"][2] == "price" and "abc" in by_ref["services/s2"][3]
    assert by_ref["appointments/a99"][2] == "status"
    amounts = client.query(
        "SELECT toString(sum(amount)) FROM raw.crm_appointments FINAL"
    ).result_rows[0][0]
    assert amounts == "37500"  # 25 × 1500.00, exact decimals


def test_rerun_fetches_only_changes(src_dir, settings, client) -> None:
    with serve_in_background(src_dir, token="t") as srv:
        first = sync_crm_api(client, _api(settings, srv.base_url), limit=10, id_key=settings.id_key)
        assert sum(r.rows_loaded for r in first) > 0
        cursors = CursorStore(settings.state_dsn)
        assert cursors.get("crm", "appointments") == "2024-05-03T10:01:39.000Z"
        cursors.close()
        second = sync_crm_api(
            client, _api(settings, srv.base_url), limit=10, id_key=settings.id_key
        )
        # Only the boundary page (inclusive updated_since) comes back, and it is skipped.
        assert sum(r.rows_loaded for r in second) == 0
        requests_before = srv.faults.requests
    # An update arrives: a scheduled appointment becomes completed later.
    write_jsonl(
        src_dir / "crm" / "api" / "appointments.jsonl",
        [*APPOINTMENTS, appointment(3, status="cancelled", updated="2024-05-04T08:00:00Z")],
    )
    with serve_in_background(src_dir, token="t") as srv:
        third = sync_crm_api(
            client, _api(settings, srv.base_url), entities=("appointments",), id_key=settings.id_key
        )
    loaded = [r for r in third if not r.skipped]
    assert [r.rows_loaded for r in loaded] == [1]
    assert requests_before > 0
    status = client.query(
        "SELECT status FROM raw.crm_appointments FINAL WHERE appointment_id = 'a3'"
    ).result_rows
    assert status == [("cancelled",)]
    assert count(client, "crm_appointments") == 25


def test_retries_429_and_5xx_honouring_retry_after(src_dir) -> None:
    faults = Faults(script=["429", "503", "500"], retry_after_s=0.3)
    with (
        serve_in_background(src_dir, token="t", faults=faults) as srv,
        CrmApiClient(srv.base_url, "t") as api,
    ):
        start = time.monotonic()
        page = api.get_page("businesses", updated_since=None, cursor=None, limit=10)
        elapsed = time.monotonic() - start
    assert len(page["data"]) == 2
    assert faults.requests == 4
    assert elapsed >= 0.3  # waited at least the Retry-After


def test_timeouts_are_retried_and_auth_errors_are_not(src_dir) -> None:
    faults = Faults(script=["slow"], slow_s=1.0)
    with serve_in_background(src_dir, token="t", faults=faults) as srv:
        with CrmApiClient(srv.base_url, "t", timeout_s=0.3) as api:
            page = api.get_page("locations", updated_since=None, cursor=None, limit=10)
            assert len(page["data"]) == 1
        with CrmApiClient(srv.base_url, "wrong") as api, pytest.raises(CrmApiError, match="401"):
            api.get_page("locations", updated_since=None, cursor=None, limit=10)
    assert faults.requests >= 3


def test_gives_up_after_bounded_attempts(src_dir) -> None:
    faults = Faults(script=["503"] * 10)
    with (
        serve_in_background(src_dir, token="t", faults=faults) as srv,
        CrmApiClient(srv.base_url, "t", attempts=3) as api,
        pytest.raises(CrmApiError),
    ):
        api.get_page("locations", updated_since=None, cursor=None, limit=10)
    assert faults.requests == 3
