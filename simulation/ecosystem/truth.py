"""The ground truth under `truth/`, never read by ingestion: what the platform should
find in the sources, for the tests and the model evaluation.

- revisit_probability.parquet: the exact 30-day revisit probability per relationship at
  each monthly cutoff, with and without its planned message, and the outcome;
- message_effect.json: the true effect of each message trigger;
- bad_rows.csv: the rows the connectors must quarantine;
- partner_conversions.csv, cashback_balances.csv: what the partner data adds up to.
"""

from __future__ import annotations

import json
from datetime import date, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from simulation.ecosystem import _lines
from simulation.ecosystem.common import Manifest, bytes_to_arrow
from simulation.ecosystem.history import History
from simulation.ecosystem.model import (
    EFFECT_DAYS,
    HISTORY_DAYS,
    HOLDOUT_SHARE,
    OUT_COMPLETED,
    PARTNER_CONVERSION,
    T_PARTNER,
    TRIGGERS,
    UPLIFT,
    WINDOW_DAYS,
)
from simulation.ecosystem.world import INVALID_KINDS

if TYPE_CHECKING:
    from simulation.ecosystem.crm import CrmView

FILES = (
    "revisit_probability.parquet",
    "message_effect.json",
    "bad_rows.csv",
    "partner_conversions.csv",
    "cashback_balances.csv",
)
BAD_ROW_COLUMNS = (
    "source",
    "entity",
    "business_id",
    "record_id",
    "field",
    "value",
    "reason",
    "file",
    "locator",
)
CONVERSION_COLUMNS = (
    "offer_id",
    "publisher_business_id",
    "distributor_business_id",
    "phone",
    "customer_record_id",
    "visit_date",
)


def write_truth(
    out_dir: Path,
    man: Manifest,
    h: History,
    view: CrmView,
    holdout_sends: int,
    partner_info: dict[str, Any],
) -> dict[str, Any]:
    """Every truth file; returns the `truth` summary of the manifest. `partner_info` is
    what partners.write_partner_feeds returned (the partners' bad rows and balances)."""
    folder = out_dir / "truth"
    folder.mkdir(parents=True, exist_ok=True)
    t = h.res.truth
    _write_revisit_probability(folder / "revisit_probability.parquet", man, h, view)
    _write_message_effect(folder / "message_effect.json", man, t)
    crm_bad_rows = _invalid_phone_rows(h, view)
    bad_rows = crm_bad_rows + partner_info["bad_rows"]
    pd.DataFrame(bad_rows, columns=list(BAD_ROW_COLUMNS)).to_csv(
        folder / "bad_rows.csv", index=False
    )
    man.add(folder / "bad_rows.csv", len(bad_rows))
    conv = _partner_conversions(h)
    conv.to_csv(folder / "partner_conversions.csv", index=False)
    man.add(folder / "partner_conversions.csv", len(conv))
    pd.DataFrame(partner_info["balances"]).to_csv(folder / "cashback_balances.csv", index=False)
    man.add(folder / "cashback_balances.csv", len(partner_info["balances"]))

    res, day0 = h.res, h.day0
    hist = t[t["outcome"].notna()]
    return {
        "cutoffs": [_iso(day0, d) for d in np.unique(t["cutoff_day"].to_numpy())],
        "window_days": WINDOW_DAYS,
        "window_calendar": "local dates of the business's timezone, [as_of, as_of + 30 days)",
        "rows": len(t),
        "mean_probability_with_outcome": round(float(hist["probability"].mean()), 6),
        "outcome_rate": round(float(hist["outcome"].astype(float).mean()), 6),
        "invalid_phone_rows": len(crm_bad_rows),
        "bad_rows": len(bad_rows),
        "holdout_sends": holdout_sends,
        "files": list(FILES),
        # past completed slots (future ones are only scheduled)
        "completed_appointments": int(
            ((res.ev_outcome == OUT_COMPLETED) & (res.ev_day < HISTORY_DAYS)).sum()
        ),
        "partner_sends": int((res.sends.trigger == T_PARTNER).sum()),
    }


def _write_revisit_probability(path: Path, man: Manifest, h: History, view: CrmView) -> None:
    """One row per (cutoff, relationship that started before it)."""
    t, lat = h.res.truth, h.lat
    rel = t["rel"].to_numpy()
    # columns built with Arrow takes from small per-business/per-person arrays (the table
    # has ~10M rows at the bench scale: no Python objects per row)
    trig_names = pa.array([*TRIGGERS, "holdout", None], pa.string())
    pt = t["planned_trigger"].to_numpy()
    table = pa.table(
        {
            "business_id": pa.array(h.biz["id"].to_numpy(), pa.string()).take(
                pa.array(lat.business[rel])
            ),
            "phone": pa.array(h.phone_e164, pa.string()).take(pa.array(lat.person[rel])),
            "customer_record_id": bytes_to_arrow(
                np.concatenate(
                    [np.full((len(rel), 1), ord("C"), np.uint8), _lines.digits(rel + 1, 9)], 1
                )
            ),
            "as_of": pa.array(h.day0_epoch + t["cutoff_day"].to_numpy(), pa.int32()).cast(
                pa.date32()
            ),
            "probability": pa.array(t["probability"].to_numpy()),
            "probability_without_message": pa.array(t["probability_without_message"].to_numpy()),
            "outcome": pa.array(t["outcome"].array, pa.bool_()),
            "alive": pa.array(t["alive"].to_numpy()),
            "visit_rate_per_day": pa.array(t["visit_rate_per_day"].to_numpy()),
            "known_bookings": pa.array(t["known_bookings"].to_numpy()),
            # planned trigger codes: -2 holdout, -1 none
            "planned_trigger": trig_names.take(
                pa.array(np.where(pt == -2, 5, np.where(pt < 0, 6, pt)))
            ),
            "phone_valid_in_source": pa.array(view.invalid[rel] < 0),
        }
    )
    pq.write_table(table, path, compression="zstd")
    man.add(path, table.num_rows)


def _write_message_effect(path: Path, man: Manifest, t: pd.DataFrame) -> None:
    """Hazard multipliers, and the mean uplift in the 30-day probability over the truth
    windows whose planned message was delivered."""
    pt = t["planned_trigger"].to_numpy()
    eff: dict[str, Any] = {
        "hazard_multiplier_days": EFFECT_DAYS,
        "holdout_share": HOLDOUT_SHARE,
        "window_days": WINDOW_DAYS,
        "triggers": {},
    }
    for i, name in enumerate(TRIGGERS):
        sel = pt == i
        d = t["probability"].to_numpy()[sel] - t["probability_without_message"].to_numpy()[sel]
        eff["triggers"][name] = {
            "hazard_multiplier": float(1.0 + UPLIFT[i]),
            "mean_uplift_30d_probability": round(float(d.mean()), 6) if sel.any() else None,
            "n_truth_windows": int(sel.sum()),
        }
    eff["triggers"]["partner_offer"]["publisher_conversion_probability"] = PARTNER_CONVERSION
    eff["note"] = (
        "hazard_multiplier applies to the distributor-business visit rate for "
        "hazard_multiplier_days from the send, only for delivered (non-holdout) messages; "
        "partner_offer converts delivered recipients into the publisher's clients with "
        "publisher_conversion_probability."
    )
    path.write_text(json.dumps(eff, indent=2) + "\n")
    man.add(path, len(TRIGGERS))


def _invalid_phone_rows(h: History, view: CrmView) -> list[dict[str, Any]]:
    """The CRM customers whose phone was spelled invalid on purpose (bad_rows.csv)."""
    bid = h.biz["id"].to_numpy()
    rows = []
    for i in np.flatnonzero(view.invalid >= 0).tolist():
        cid = f"C{i + 1:09d}"
        business_id = bid[h.lat.business[i]]
        rows.append(
            {
                "source": "crm",
                "entity": "customers",
                "business_id": str(business_id),
                "record_id": cid,
                "field": "phone",
                "value": view.phones[i].as_py(),
                "reason": INVALID_KINDS[view.invalid[i]],
                "file": "crm/api/customers.jsonl"
                if not view.rel_export[i]
                else f"crm/exports/{business_id}/customers.xlsx",
                "locator": cid,
            }
        )
    return rows


def _partner_conversions(h: History) -> pd.DataFrame:
    """Who became a publisher's customer through which offer (the conversions'
    relationships are the last ones)."""
    conv, lat, day0 = h.conversions.copy(), h.lat, h.day0
    if not len(conv):
        return pd.DataFrame(columns=list(CONVERSION_COLUMNS))
    bid = h.biz["id"].to_numpy()
    first_rel = len(lat) - len(conv)
    conv["customer_record_id"] = [f"C{x + 1:09d}" for x in range(first_rel, len(lat))]
    conv["offer_id"] = [f"O{x + 1:04d}" for x in conv["offer"]]
    conv["publisher_business_id"] = bid[conv["publisher"].to_numpy()]
    conv["distributor_business_id"] = bid[lat.business[conv["rel"].to_numpy()]]
    conv["phone"] = h.phone_e164[conv["person"].to_numpy()]
    conv["visit_date"] = [_iso(day0, d) for d in conv["day"]]
    return conv[list(CONVERSION_COLUMNS)]


def _iso(day0: date, day: int) -> str:
    return (day0 + timedelta(days=int(day))).isoformat()
