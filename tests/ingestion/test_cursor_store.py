"""The connector cursor store on SQLite and on a real PostgreSQL."""

from __future__ import annotations

from ingestion.crm import CursorStore


def test_cursors_are_set_overwritten_and_survive_a_reopen(state_dsn: str) -> None:
    store = CursorStore(state_dsn)
    try:
        assert store.get("crm", "appointments") is None
        store.set("crm", "appointments", "2024-05-03T10:01:39.000Z")
        store.set("crm", "clients", "2024-05-01T00:00:00.000Z")
        store.set("crm", "appointments", "2024-05-04T08:00:00.000Z")  # moves forward
    finally:
        store.close()
    reopened = CursorStore(state_dsn)  # tables exist: created once, not again
    try:
        assert reopened.get("crm", "appointments") == "2024-05-04T08:00:00.000Z"
        assert reopened.get("crm", "clients") == "2024-05-01T00:00:00.000Z"
        assert reopened.get("other", "appointments") is None
    finally:
        reopened.close()
