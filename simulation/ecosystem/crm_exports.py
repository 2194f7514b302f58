"""CRM file drops: the few businesses not on the API deliver `crm/exports/<business id>/`
with customers.xlsx, appointments_<YYYYMM>.csv (UTF-8 BOM, `,`) and services.parquet.

The same records as the API would serve, in the forms a small business's export button
produces; the bytes are pinned (xlsx timestamps) so a seed gives the same files.
"""

from __future__ import annotations

import re
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from simulation.ecosystem import _lines
from simulation.ecosystem.appointments import CURRENCIES, STATUSES
from simulation.ecosystem.common import Manifest, bytes_to_arrow, money_str
from simulation.ecosystem.history import History

if TYPE_CHECKING:
    from simulation.ecosystem.crm import CrmView

_CUSTOMER_COLUMNS = (
    "id",
    "business_id",
    "phone",
    "name",
    "birthday",
    "gender",
    "marketing_consent",
    "created_at",
    "updated_at",
)


def write_exports(
    out_dir: Path,
    man: Manifest,
    h: History,
    view: CrmView,
    a: dict[str, Any],
    customer_ids: pa.Array,
    created: pa.Array,
) -> list[str]:
    """Every file-drop business's folder; returns their ids. `a` are the appointment
    records (appointments.draw_appointments), `customer_ids` and `created` rendered per
    relationship."""
    done = []
    for bi in list(view.export_set):
        bid = str(h.biz.at[bi, "id"])
        folder = out_dir / "crm" / "exports" / bid
        folder.mkdir(parents=True, exist_ok=True)
        done.append(bid)
        services = h.svcs[h.svcs["business_idx"] == bi]
        _write_services(folder / "services.parquet", services, view.timestamps)
        man.add(folder / "services.parquet", len(services))
        rows = np.flatnonzero(h.lat.business == bi)
        _write_customers(folder / "customers.xlsx", bid, rows, h, view, customer_ids, created)
        man.add(folder / "customers.xlsx", len(rows))
        _write_appointments(folder, man, bid, np.flatnonzero(a["business"] == bi), a, view)
    return done


def _write_services(path: Path, s: pd.DataFrame, ts: _lines.Timestamps) -> None:
    table = pa.table(
        {
            "id": s["id"].tolist(),
            "business_id": s["business_id"].tolist(),
            "name": s["name"].tolist(),
            "category": s["category"].tolist(),
            "price": [money_str(x) for x in s["price_minor"]],
            "currency": s["currency"].tolist(),
            "duration_min": s["duration_min"].astype("int32").tolist(),
            "updated_at": [f"{ts.dates[0].tobytes().decode()}T09:00:00Z"] * len(s),
        }
    )
    pq.write_table(table, path)


def _write_customers(
    path: Path,
    bid: str,
    rows: np.ndarray,
    h: History,
    view: CrmView,
    customer_ids: pa.Array,
    created: pa.Array,
) -> None:
    """The business's customers (relationships `rows`), one version each."""
    from openpyxl import Workbook

    wb = Workbook(write_only=True)
    ws = wb.create_sheet("customers")
    ws.append(list(_CUSTOMER_COLUMNS))
    for i in rows.tolist():
        ws.append(
            [
                customer_ids[i].as_py(),
                bid,
                view.phones[i].as_py(),
                view.names[i].as_py(),
                view.birthday[i].as_py() if view.birthday_known[i] else None,
                view.gender[i].as_py() if view.gender_known[i] else None,
                bool(h.lat.consent[i]),
                created[i].as_py(),
                created[i].as_py(),
            ]
        )
    wb.save(path)
    _pin_xlsx_timestamps(path)


def _write_appointments(
    folder: Path, man: Manifest, bid: str, ar: np.ndarray, a: dict[str, Any], view: CrmView
) -> None:
    """One CSV per start month (UTC) of the business's appointment records `ar`."""
    month = (a["start_s"][ar] // 86_400).astype("datetime64[D]").astype("datetime64[M]")
    for mth in np.unique(month):
        sel = ar[month == mth]
        path = folder / f"appointments_{str(mth).replace('-', '')}.csv"
        with path.open("wb") as fh:
            fh.write("\ufeff".encode())
            pacsv.write_csv(
                pa.table(_appointment_columns(bid, sel, a, view)),
                fh,
                pacsv.WriteOptions(quoting_style="needed"),
            )
        man.add(path, len(sel))


def _prefixed_ids(letter: str, numbers: np.ndarray, width: int) -> pa.Array:
    """`<letter><zero-padded numbers>` strings, e.g. A0000000042."""
    return bytes_to_arrow(
        np.concatenate(
            [np.full((len(numbers), 1), ord(letter), np.uint8), _lines.digits(numbers, width)], 1
        )
    )


def _appointment_columns(
    bid: str, sel: np.ndarray, a: dict[str, Any], view: CrmView
) -> dict[str, pa.Array]:
    """The CSV columns of appointment records `sel` (latest version; amounts of unpaid
    appointments and missing promo offers empty)."""
    ts = view.timestamps
    amounts = zip(a["amount"][sel].tolist(), a["amount_null"][sel].tolist(), strict=True)
    return {
        "id": _prefixed_ids("A", sel + 1, 10),
        "business_id": pa.array([bid] * len(sel)),
        "client_id": _prefixed_ids("C", a["rel"][sel] + 1, 9),
        "location_id": _prefixed_ids("L", a["loc"][sel] + 1, 6),
        "service_id": _prefixed_ids("S", a["svc"][sel] + 1, 7),
        "status": pa.array(np.array(STATUSES)[a["status"][sel]]),
        "start_at": bytes_to_arrow(ts.render(a["start_s"][sel])),
        "amount": pa.array([None if nl else money_str(x) for x, nl in amounts], pa.string()),
        "currency": pa.array(np.array(CURRENCIES)[a["currency_code"][sel]]),
        "promo_offer_id": pa.array(
            [None if p < 0 else f"O{p + 1:04d}" for p in a["promo"][sel].tolist()],
            pa.string(),
        ),
        "created_at": bytes_to_arrow(ts.render(a["created_s"][sel])),
        "updated_at": bytes_to_arrow(ts.render(a["updated_s"][sel])),
    }


def _pin_xlsx_timestamps(path: Path) -> None:
    """openpyxl stamps the creation time into docProps/core.xml; pin it (and the zip
    entry times) so the same seed gives the same bytes."""
    data = {}
    with zipfile.ZipFile(path) as z:
        for info in z.infolist():
            data[info.filename] = z.read(info.filename)
    core = data.get("docProps/core.xml")
    if core is not None:
        data["docProps/core.xml"] = re.sub(
            rb"(<dcterms:(created|modified)[^>]*>)[^<]*", rb"\g<1>2026-01-01T00:00:00Z", core
        )
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for name, content in data.items():
            zi = zipfile.ZipInfo(name, date_time=(2026, 1, 1, 0, 0, 0))
            zi.compress_type = zipfile.ZIP_DEFLATED
            z.writestr(zi, content)
