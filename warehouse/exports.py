"""Segment exports for marketers: per business, segment sizes and member lists.

Files per business under the output directory:
- CSV: `<business_id>/segment_sizes.csv` and `<business_id>/members.csv`, UTF-8 with a
  BOM so Excel opens Cyrillic names correctly;
- Parquet: the same two files as `.parquet`;
- XLSX: `<business_id>/segments.xlsx` with the sheets `segment_sizes` and `members`.

Members carry phone, name, segment, RFM cell, recency/frequency/monetary and — once the
model has scored them — the latest revisit probability and its decile.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

import pandas as pd
from clickhouse_connect.driver.client import Client


class ExportFormat(StrEnum):
    csv = "csv"
    parquet = "parquet"
    xlsx = "xlsx"


@dataclass(frozen=True)
class ExportedBusiness:
    business_id: str
    customers: int
    files: tuple[Path, ...]


SIZES_SQL = """
SELECT r.business_id AS business_id, r.segment AS segment, s.segment_label AS label,
       count() AS customers, round(100 * count() / sum(count()) OVER (PARTITION BY
       r.business_id), 1) AS share_pct, any(s.description) AS description,
       any(s.recommended_action) AS recommended_action, any(s.sort_order) AS sort_order
FROM marts.customer_rfm AS r
INNER JOIN marts.rfm_segments AS s ON r.segment = s.segment
WHERE {where}
GROUP BY business_id, segment, label
ORDER BY business_id, sort_order
"""

MEMBERS_SQL = """
SELECT r.business_id AS business_id, c.phone_e164 AS phone, c.full_name AS name,
       r.segment AS segment, r.rfm_cell AS rfm_cell, r.recency_days AS recency_days,
       r.frequency AS frequency, r.monetary AS monetary, c.currency AS currency,
       c.contactable AS contactable{score_columns}
FROM marts.customer_rfm AS r
INNER JOIN marts.dim_customers AS c
    ON r.business_id = c.business_id AND r.customer_id = c.customer_id
{score_join}
WHERE {where}
ORDER BY business_id, segment, monetary DESC
"""

LATEST_SCORES = """
LEFT JOIN (
    SELECT business_id, customer_id, argMax(p_revisit, scored_at) AS p_revisit,
           argMax(decile, scored_at) AS revisit_decile
    FROM ml.revisit_scores GROUP BY business_id, customer_id
) AS s ON r.business_id = s.business_id AND r.customer_id = s.customer_id
"""


def _has_scores(client: Client) -> bool:
    return bool(client.command("EXISTS TABLE ml.revisit_scores"))


def export_segments(
    client: Client,
    out_dir: Path,
    *,
    business_id: str | None = None,
    fmt: ExportFormat = ExportFormat.csv,
) -> list[ExportedBusiness]:
    """Write segment sizes and members per business; returns what was written."""
    where = "r.business_id = {b:String}" if business_id else "1"
    parameters = {"b": business_id} if business_id else {}
    scored = _has_scores(client)
    sizes = client.query_df(SIZES_SQL.format(where=where), parameters=parameters)
    members = client.query_df(
        MEMBERS_SQL.format(
            where=where,
            score_columns=", s.p_revisit AS p_revisit, s.revisit_decile AS revisit_decile"
            if scored
            else "",
            score_join=LATEST_SCORES if scored else "",
        ),
        parameters=parameters,
    )
    exported = []
    for business, business_members in members.groupby("business_id", sort=True):
        folder = out_dir / str(business)
        folder.mkdir(parents=True, exist_ok=True)
        business_sizes = sizes[sizes.business_id == business].drop(columns="sort_order")
        files = _write(folder, fmt, business_sizes, business_members)
        exported.append(ExportedBusiness(str(business), len(business_members), files))
    return exported


def _write(
    folder: Path, fmt: ExportFormat, sizes: pd.DataFrame, members: pd.DataFrame
) -> tuple[Path, ...]:
    if fmt is ExportFormat.xlsx:
        path = folder / "segments.xlsx"
        with pd.ExcelWriter(path, engine="openpyxl") as writer:
            sizes.to_excel(writer, sheet_name="segment_sizes", index=False)
            members.to_excel(writer, sheet_name="members", index=False)
        return (path,)
    paths = []
    for name, frame in (("segment_sizes", sizes), ("members", members)):
        path = folder / f"{name}.{fmt.value}"
        if fmt is ExportFormat.csv:
            frame.to_csv(path, index=False, encoding="utf-8-sig")
        else:
            frame.to_parquet(path, index=False)
        paths.append(path)
    return tuple(paths)
