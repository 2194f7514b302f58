"""Row validation of the partner/message loaders: the declarative suites of
`ingestion.quality` plus the parsers' own findings.

The parsers turn an unreadable value into None and say why (`amount '12,3,4' is not a
number`). The quality suite is the arbiter of what a good row is (required fields,
allowed values, formats); where it flags a field the parser explained, the parser's
explanation becomes the reason, and a parse failure in an optional field (which the
suite cannot see, the value being None) is quarantined too. `raw_row` is the source
record as received, not the half-parsed row.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pandas as pd

from ingestion import quality

QUARANTINE_COLUMNS = quality.QUARANTINE_COLUMNS


def validate_rows(
    frame: pd.DataFrame,
    suite: str,
    *,
    source: str,
    row_ref: pd.Series,
    raw_row: pd.Series,
    parse_errors: Mapping[str, Sequence[str | None]],
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(good rows, quarantine rows in `QUARANTINE_COLUMNS`) of `frame`.

    `row_ref` and `raw_row` are aligned with `frame` by position; `parse_errors` maps a
    column of `frame` to per-row parse errors (None where the value parsed). A row is
    good when the suite passes it and none of its values failed to parse; a bad row
    gives one quarantine row per failing field.
    """
    frame = frame.reset_index(drop=True)
    refs = pd.Series(row_ref, dtype=object).reset_index(drop=True)
    raws = pd.Series(raw_row, dtype=object).reset_index(drop=True)
    result = quality.validate(frame, suite, source=source, row_ref=refs)
    flagged = result.quarantine
    position = {ref: i for i, ref in enumerate(refs)}

    rows: list[dict[str, object]] = []
    seen: set[tuple[int, str]] = set()
    for record in flagged.to_dict("records"):
        i = position[record["row_ref"]]
        field = str(record["field"])
        explained = parse_errors.get(field)
        reason = explained[i] if explained is not None and explained[i] else record["reason"]
        rows.append(_row(source, refs[i], field, reason, raws[i]))
        seen.add((i, field))
    for field, errors in parse_errors.items():
        for i, error in enumerate(errors):
            if error and (i, field) not in seen:
                rows.append(_row(source, refs[i], field, error, raws[i]))
                seen.add((i, field))
    bad_positions = sorted({i for i, _ in seen})
    good = frame.drop(index=bad_positions)
    quarantine = pd.DataFrame(rows, columns=list(QUARANTINE_COLUMNS))
    return good, quarantine


def _row(source: str, ref: object, field: str, reason: object, raw: object) -> dict[str, object]:
    return {
        "source_kind": source,
        "row_ref": str(ref),
        "field": field,
        "reason": str(reason),
        "raw_row": str(raw),
    }
