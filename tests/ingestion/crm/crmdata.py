"""Small CRM records following SOURCES.md (shared by the CRM tests)."""

from __future__ import annotations

import json
from pathlib import Path

BUSINESSES = [
    {"id": "b1", "name": "Salon One", "kind": "salon", "country": "RU", "city": "Moscow",
     "timezone": "Europe/Moscow", "currency": "RUB", "updated_at": "2024-05-01T00:00:00Z"},
    {"id": "b2", "name": "Barber Two", "kind": "barbershop", "country": "KZ", "city": "Almaty",
     "timezone": "Asia/Almaty", "currency": "KZT", "updated_at": "2024-05-01T00:00:00Z"},
]  # fmt: skip
LOCATIONS = [
    {"id": "l1", "business_id": "b1", "name": "Main", "city": "Moscow", "address": "Tverskaya 1",
     "timezone": "Europe/Moscow", "updated_at": "2024-05-01T00:00:00Z"},
]  # fmt: skip
SERVICES = [
    {"id": "s1", "business_id": "b1", "name": "Haircut", "category": "hair", "price": "1500.00",
     "currency": "RUB", "duration_min": 60, "updated_at": "2024-05-01T00:00:00Z"},
    {"id": "s2", "business_id": "b1", "name": "Bad", "category": "hair", "price": "abc",
     "currency": "RUB", "duration_min": 30, "updated_at": "2024-05-01T00:00:00Z"},
]  # fmt: skip


def customer(i: int, phone: str, business: str = "b1", updated: str = "2024-05-02T10:00:00Z"):
    return {"id": f"c{i}", "business_id": business, "phone": phone, "name": f"Client {i}",
            "birthday": "1990-03-0" + str(1 + i % 9) if i % 2 else None,
            "gender": "f" if i % 2 else "m", "marketing_consent": bool(i % 3),
            "created_at": "2024-01-01T00:00:00Z", "updated_at": updated}  # fmt: skip


def appointment(i: int, status: str = "completed", updated: str | None = None):
    updated = updated or f"2024-05-03T10:{i // 60:02d}:{i % 60:02d}Z"
    return {"id": f"a{i}", "business_id": "b1", "client_id": f"c{i % 5}", "location_id": "l1",
            "service_id": "s1", "status": status, "start_at": "2024-05-03T09:00:00Z",
            "amount": "1500.00" if status == "completed" else None, "currency": "RUB",
            "promo_offer_id": None, "created_at": "2024-05-01T00:00:00Z",
            "updated_at": updated}  # fmt: skip


CUSTOMERS = [
    customer(0, "+7 (916) 123-45-60"),
    customer(1, "8 916 123 45 61"),
    customer(2, "9161234562"),
    customer(3, "not a phone"),
    customer(4, "8 701 234 56 78", business="b2"),
]
APPOINTMENTS = [appointment(i) for i in range(25)] + [appointment(99, status="teleported")]


def write_jsonl(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
