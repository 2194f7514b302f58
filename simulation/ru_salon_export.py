"""A salon chain's CRM export, Russian style: the stand-in for a real CRM's export button.

Writes `<exports>/<business_id>/Клиенты.csv` and `Записи_<YYYY>.csv` the way such exports
come: Windows-1251, `;`, CRLF, Russian headers, dates as DD.MM.YYYY or ISO, amounts as
"1 500,00" (space or no-break space between thousands), statuses Завершён/Отменён/Не
пришёл/Запланирован, consent да/нет, naive Moscow local times, no customer ids (the CRM
keys clients by phone). `ingestion/crm/field_maps/ru_salon.yaml` reads it.

Returns what a correct load must produce (UTC instants, E.164 phones, decimals), computed
here from the values written, independently of the loader.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import random
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

MOSCOW = dt.timedelta(hours=3)  # Europe/Moscow: UTC+3 all year since 2014
STATUSES = {
    "completed": "Завершён",
    "cancelled": "Отменён",
    "no_show": "Не пришёл",
    "scheduled": "Запланирован",
}
SERVICES = ("Стрижка женская", "Окрашивание", "Маникюр", "Укладка")
LOCATIONS = ("Тверская", "Арбат")
FIRST = ("Анна", "Мария", "Елена", "Ольга", "Наталья", "Ирина", "Татьяна", "Светлана")
LAST = ("Иванова", "Смирнова", "Кузнецова", "Попова", "Соколова", "Лебедева", "Козлова")


@dataclass(frozen=True)
class Customer:
    phone_typed: str
    phone_e164: str
    full_name: str
    birthday: dt.date | None
    gender: str
    consent: bool
    created_at_utc: dt.datetime
    updated_at_utc: dt.datetime


@dataclass(frozen=True)
class Appointment:
    appointment_id: str
    phone_e164: str
    location: str
    service: str
    status: str
    scheduled_at_utc: dt.datetime
    amount: Decimal | None
    created_at_utc: dt.datetime
    updated_at_utc: dt.datetime


@dataclass(frozen=True)
class SalonExport:
    business_id: str
    folder: Path
    customers: list[Customer]
    appointments: list[Appointment]


def _phone(i: int, rng: random.Random) -> tuple[str, str]:
    digits = f"916{i:07d}"
    e164 = "+7" + digits
    spelling = rng.choice(
        [
            f"+7 ({digits[:3]}) {digits[3:6]}-{digits[6:8]}-{digits[8:]}",
            f"8 {digits[:3]} {digits[3:6]} {digits[6:8]} {digits[8:]}",
            f"8{digits}",
        ]
    )
    return spelling, e164


def _local(utc: dt.datetime, fmt: str) -> str:
    return (utc + MOSCOW).strftime(fmt)


def _money(amount: Decimal, rng: random.Random) -> str:
    whole, frac = f"{amount:.2f}".split(".")
    sep = rng.choice([" ", "\u00a0"])
    grouped = f"{int(whole):,}".replace(",", sep)
    return f"{grouped},{frac}"


def _write(path: Path, header: list[str], rows: list[list[str]]) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=";", lineterminator="\r\n")
    writer.writerow(header)
    writer.writerows(rows)
    # cp1251 has no NBSP-free guarantee for every char; these names and NBSP encode.
    path.write_bytes(buffer.getvalue().encode("cp1251"))


def write_salon_export(
    exports_dir: Path, *, business_id: str = "salon_leto", customers: int = 30, seed: int = 1
) -> SalonExport:
    """Write the export of `customers` clients, each with at least one completed visit."""
    rng = random.Random(seed)
    folder = exports_dir / business_id
    folder.mkdir(parents=True, exist_ok=True)
    base = dt.datetime(2025, 1, 10, 7, 0)  # 10:00 Moscow
    people: list[Customer] = []
    visits: list[Appointment] = []
    customer_rows: list[list[str]] = []
    appointment_rows: list[list[str]] = []
    number = 1000
    for i in range(customers):
        typed, e164 = _phone(i, rng)
        created = base + dt.timedelta(days=i, minutes=15 * (i % 4))
        updated = created + dt.timedelta(days=200, seconds=i)
        birthday = dt.date(1980 + i % 20, 1 + i % 12, 1 + i % 28) if i % 5 else None
        gender = "f" if i % 4 else "m"
        consent = bool(i % 3)
        person = Customer(
            typed, e164, f"{rng.choice(LAST)} {rng.choice(FIRST)}", birthday, gender,
            consent, created, updated,
        )  # fmt: skip
        people.append(person)
        birthday_text = (
            "" if birthday is None
            else birthday.isoformat() if i % 2 else birthday.strftime("%d.%m.%Y")
        )  # fmt: skip
        customer_rows.append(
            [
                typed, person.full_name, birthday_text, {"f": "Ж", "m": "М"}[gender],
                "да" if consent else "нет",
                _local(created, "%d.%m.%Y %H:%M") if i % 2 else _local(created, "%d.%m.%Y"),
                _local(updated, "%d.%m.%Y %H:%M:%S"),
            ]
        )  # fmt: skip
        if not i % 2:  # a date without a time is midnight Moscow
            people[-1] = person = Customer(
                **{**person.__dict__, "created_at_utc": (created + MOSCOW).replace(
                    hour=0, minute=0) - MOSCOW}
            )  # fmt: skip
        statuses = ["completed"] * (1 + i % 3) + [["cancelled", "no_show", "scheduled"][i % 3]]
        for k, status in enumerate(statuses):
            number += 1
            # Winter and summer visits: 10:00, 13:30 … Moscow local.
            start = base + dt.timedelta(days=30 * k + 5 * i + (180 if k % 2 else 0), hours=k)
            amount = (
                Decimal(rng.choice([900, 1500, 2750, 12400])) + Decimal(rng.choice([0, 50])) / 100
                if status == "completed"
                else None
            )
            created_a = start - dt.timedelta(days=3)
            updated_a = start + dt.timedelta(hours=2, seconds=k)
            visit = Appointment(
                str(number), e164, rng.choice(LOCATIONS), rng.choice(SERVICES), status,
                start, amount, created_a, updated_a,
            )  # fmt: skip
            visits.append(visit)
            appointment_rows.append(
                [
                    str(number), typed, visit.service, visit.location, STATUSES[status],
                    _local(start, "%d.%m.%Y %H:%M"),
                    "" if amount is None else _money(amount, rng),
                    _local(created_a, "%d.%m.%Y %H:%M"),
                    # ISO-8601 local time, as some CRMs write their change stamps.
                    _local(updated_a, "%Y-%m-%dT%H:%M:%S")
                    if k % 2 else _local(updated_a, "%d.%m.%Y %H:%M:%S"),
                ]
            )  # fmt: skip
    _write(
        folder / "Клиенты.csv",
        ["Телефон", "ФИО", "Дата рождения", "Пол", "Согласие на рассылку", "Дата регистрации",
         "Изменён"],
        customer_rows,
    )  # fmt: skip
    _write(
        folder / "Записи_2025.csv",
        ["Номер записи", "Телефон клиента", "Услуга", "Филиал", "Статус", "Дата и время",
         "Сумма", "Создана", "Изменена"],
        appointment_rows,
    )  # fmt: skip
    return SalonExport(business_id, folder, people, visits)
