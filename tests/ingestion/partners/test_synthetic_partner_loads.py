"""The synthetic generator's `test` scale output loads end to end: partner feeds in
three formats, offers and message sends; exactly the rows the generator broke on
purpose (truth/bad_rows.csv) land in quarantine, its broken files are file errors."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

import warehouse
from ingestion.messages import load_message_sends
from ingestion.partners import load_offers, load_partner_feeds
from revisit.settings import DEV_ID_KEY, Settings
from simulation.ecosystem import generate

FIELDS = {"phone_e164": "phone", "amount": "amount", "occurred_at": "occurred_at"}


def test_generated_sources_load_end_to_end(settings: Settings, tmp_path: Path) -> None:
    src = tmp_path / "src"
    manifest = generate(src, customers=1000, include_broken_files=True)
    files = manifest["files"]
    truth = pd.read_csv(src / "truth" / "bad_rows.csv", dtype=str)
    truth = truth[truth["source"] == "partner"]

    with warehouse.connect(settings.warehouse_dsn) as client:
        results, errors = load_partner_feeds(client, src / "partners", id_key=DEV_ID_KEY)
        again, _ = load_partner_feeds(client, src / "partners", id_key=DEV_ID_KEY)
        _, broken = load_partner_feeds(client, src / "broken" / "partners", id_key=DEV_ID_KEY)
        offers = load_offers(client, src / "partners" / "offers.jsonl")
        sends = load_message_sends(client, src / "messages" / "sends.jsonl", id_key=DEV_ID_KEY)
        per_file = client.query(
            "SELECT _source, count() FROM raw.partner_events GROUP BY _source"
        ).result_rows
        quarantined = client.query(
            "SELECT _source, row_ref, field FROM raw.quarantine WHERE source_kind = 'partner_feed'"
        ).result_rows
        events = client.command("SELECT count() FROM raw.partner_events FINAL")
        partners = client.query(
            "SELECT partner_id, count(), countIf(phone_e164 LIKE '+7%'), min(occurred_at) "
            "FROM raw.partner_events FINAL GROUP BY partner_id ORDER BY partner_id"
        ).result_rows

    assert errors == []
    assert all(r.skipped for r in again) and len(again) == len(results)
    # Every data row of every partner file is either loaded or quarantined.
    feed_files = {k: v["rows"] for k, v in files.items() if k.startswith("partners/p")}
    loaded = dict(per_file)
    bad_per_file = truth["file"].value_counts().to_dict()
    for name, rows in feed_files.items():
        assert loaded.get(name, 0) + bad_per_file.get(name, 0) == rows, name

    # Exactly the rows the generator broke, by file, row and field (its CSV locator
    # counts data rows, ours counts file lines including the header).
    def ref(locator: str) -> str:
        kind, number = locator.split()
        return f"line {int(number) + 1}" if kind == "row" else locator

    assert sorted((s, r, FIELDS[f]) for s, r, f in quarantined) == sorted(
        zip(truth["file"], truth["locator"].map(ref), truth["field"], strict=True)
    )
    expected_events = sum(p["events"] for p in manifest["partners"])
    assert events == expected_events
    assert [(p, n) for p, n, _, _ in partners] == [
        (p["partner_id"], p["events"]) for p in manifest["partners"]
    ]
    assert all(plus7 == n for _, n, plus7, _ in partners)  # RU and KZ numbers in E.164
    assert sorted(e.path.name for e in broken) == ["batch_broken.json", "export_broken.csv"]
    assert (offers.rows_loaded, offers.rows_quarantined) == (
        files["partners/offers.jsonl"]["rows"],
        0,
    )
    assert sends.rows_loaded + sends.rows_quarantined == files["messages/sends.jsonl"]["rows"]
    assert sends.rows_quarantined == 0
