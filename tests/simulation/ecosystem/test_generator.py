"""The synthetic ecosystem: deterministic, counted, quirky where real data is, coherent truth."""

from __future__ import annotations

import csv
import hashlib
import hmac
import itertools
import json
import re
import subprocess
import sys
from collections import Counter
from dataclasses import asdict
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import openpyxl
import pandas as pd
import phonenumbers
import pyarrow.parquet as pq
import pytest
from sklearn.metrics import roc_auc_score

from revisit.settings import Settings
from simulation.ecosystem import SCALES, WebhookSecrets, generate

Gen = tuple[Path, dict[str, Any]]
REPO_ROOT = Path(__file__).resolve().parents[3]


def _jsonl(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh]


def _tree_digest(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_same_seed_same_bytes_other_seed_differs(tmp_path: Path, generated: Gen) -> None:
    root, _ = generated
    again = tmp_path / "again"
    # written in one process this time (the fixture used the default two)
    generate(again, customers=SCALES["test"], seed=7, include_broken_files=True, processes=1)
    first, second = _tree_digest(root), _tree_digest(again)
    assert first == second
    other = tmp_path / "other"
    generate(other, customers=SCALES["test"], seed=8, include_broken_files=True)
    third = _tree_digest(other)
    changed = [k for k in first if k in third and first[k] != third[k]]
    assert "crm/api/appointments.jsonl" in changed
    assert "truth/revisit_probability.parquet" in changed


def test_child_process_failure_is_raised(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: Any, **kwargs: Any) -> None:
        raise OSError("disk full")

    # the sends are written by the second (forked) process
    monkeypatch.setattr("simulation.ecosystem.generator.messaging.write_sends", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        generate(tmp_path / "s", customers=300, seed=3, processes=2)


def test_appointment_volume_per_customer(generated: Gen) -> None:
    """Issue #3: ~20 appointments per customer over the 18-month window."""
    _, manifest = generated
    per_person = manifest["counts"]["appointments"] / manifest["counts"]["people"]
    assert 15 < per_person < 30
    assert manifest["counts"]["customer_records"] > 1.2 * manifest["counts"]["people"]


def _count(path: Path) -> int:
    if path.suffix == ".jsonl":
        return sum(1 for _ in path.open(encoding="utf-8"))
    if path.suffix == ".csv":
        with path.open(encoding="utf-8-sig", newline="") as fh:
            delim = ";" if "partners/" in path.as_posix() else ","
            return sum(1 for _ in csv.reader(fh, delimiter=delim)) - 1
    if path.suffix == ".parquet":
        return pq.read_metadata(path).num_rows
    if path.suffix == ".xlsx":
        return sum(1 for _ in openpyxl.load_workbook(path, read_only=True).active.iter_rows()) - 1
    if path.suffix == ".json" and path.name.startswith("batch_"):
        return len(json.loads(path.read_text(encoding="utf-8"))["items"])
    raise AssertionError(f"no counter for {path}")


def test_manifest_counts_match_files(generated: Gen) -> None:
    root, manifest = generated
    assert json.loads((root / "manifest.json").read_text(encoding="utf-8")) == manifest
    files = manifest["files"]
    on_disk = {
        p.relative_to(root).as_posix()
        for p in root.rglob("*")
        if p.is_file() and p.name != "manifest.json"
    }
    assert on_disk == set(files)
    for rel, meta in files.items():
        if meta.get("broken") or rel == "truth/message_effect.json":
            continue
        assert _count(root / rel) == meta["rows"], rel
    appts = files["crm/api/appointments.jsonl"]
    exported = sum(m["rows"] for k, m in files.items() if re.search(r"appointments_\d{6}\.csv$", k))
    assert appts["records"] + exported == manifest["counts"]["appointments"]
    assert manifest["secrets"]["whatsapp_app_secret"] == "dev-whatsapp-app-secret"
    assert manifest["counts"]["businesses"] >= 6


def test_every_jsonl_line_is_json_with_contract_fields(generated: Gen) -> None:
    root, _ = generated
    fields = {
        "customers": {
            "id",
            "business_id",
            "phone",
            "name",
            "birthday",
            "gender",
            "marketing_consent",
            "created_at",
            "updated_at",
        },
        "appointments": {
            "id",
            "business_id",
            "client_id",
            "location_id",
            "service_id",
            "status",
            "start_at",
            "amount",
            "currency",
            "promo_offer_id",
            "created_at",
            "updated_at",
        },
    }
    for entity, keys in fields.items():
        rows = _jsonl(root / "crm" / "api" / f"{entity}.jsonl")
        assert rows and all(set(r) == keys for r in rows)
    appts = _jsonl(root / "crm" / "api" / "appointments.jsonl")
    for r in appts:
        assert (r["amount"] is None) == (r["status"] != "completed")
        if r["amount"] is not None:
            assert re.fullmatch(r"\d+\.\d\d", r["amount"])
    # updates: a scheduled version followed by a later final version of the same id
    versions: dict[str, list[dict[str, Any]]] = {}
    for r in appts:
        versions.setdefault(r["id"], []).append(r)
    updated = [v for v in versions.values() if len(v) > 1]
    assert len(updated) > 50
    for v in updated:
        assert v[0]["status"] == "scheduled" and v[-1]["status"] != "scheduled"
        assert v[-1]["updated_at"] > v[0]["updated_at"]
    assert {"scheduled", "completed", "cancelled", "no_show"} <= {r["status"] for r in appts}
    future = [r for r in appts if r["start_at"] >= "2026-11-02"]
    assert future and all(r["status"] == "scheduled" for r in future)
    assert any(r["promo_offer_id"] for r in appts)


def test_phone_spellings_and_recorded_invalid_rows(generated: Gen) -> None:
    root, _ = generated
    customers = _jsonl(root / "crm" / "api" / "customers.jsonl")
    phones = [c["phone"] for c in customers]
    patterns = {
        "8 (916) 123-45-67": r"8 \(\d{3}\) \d{3}-\d\d-\d\d",
        "+7 916 123 45 67": r"\+7 \d{3} \d{3} \d\d \d\d",
        "79161234567": r"7\d{10}",
        "8-916-123-4567": r"8-\d{3}-\d{3}-\d{4}",
        "+7(916)1234567": r"\+7\(\d{3}\)\d{7}",
        "Kazakhstan +7 7xx": r"\D*7\D*7\d\d.*",
        "Berlin +49": r"\+49.*",
        "Berlin 015x": r"015\d[ /]\d+",
    }
    for name, pat in patterns.items():
        assert any(re.fullmatch(pat, p) for p in phones), name
    businesses = {b["id"]: b for b in _jsonl(root / "crm" / "api" / "businesses.jsonl")}
    bad = pd.read_csv(root / "truth" / "bad_rows.csv", dtype=str)
    bad_ids = set(bad.loc[(bad["source"] == "crm") & (bad["field"] == "phone"), "record_id"])
    exported = {p.parent.name for p in (root / "crm" / "exports").glob("*/customers.xlsx")}
    invalid_seen = set()
    for c in customers:
        region = businesses[c["business_id"]]["country"]
        try:
            ok = phonenumbers.is_valid_number(phonenumbers.parse(c["phone"], region))
        except phonenumbers.NumberParseException:
            ok = False
        if not ok:
            invalid_seen.add(c["id"])
    api_bad = {
        r
        for r, f in zip(bad["record_id"], bad["file"], strict=True)
        if r in bad_ids and f == "crm/api/customers.jsonl"
    }
    assert invalid_seen == api_bad
    assert 0.003 < len(bad_ids) / len(customers) < 0.03
    assert exported  # the export businesses' customers live in the xlsx files


def test_webhooks_verify_and_have_duplicates_and_late_arrivals(generated: Gen) -> None:
    root, manifest = generated
    secrets = manifest["secrets"]
    for provider in ("whatsapp", "telegram", "sms"):
        reqs = _jsonl(root / "webhooks" / f"{provider}.jsonl")
        assert reqs, provider
        for req in reqs:
            body = req["body"].encode()
            json.loads(body)
            h = req["headers"]
            if provider == "whatsapp":
                want = hmac.new(secrets["whatsapp_app_secret"].encode(), body, hashlib.sha256)
                assert h["X-Hub-Signature-256"] == "sha256=" + want.hexdigest()
            elif provider == "sms":
                want = hmac.new(secrets["sms_webhook_secret"].encode(), body, hashlib.sha256)
                assert h["X-Signature"] == "sha256=" + want.hexdigest()
            else:
                assert h["X-Telegram-Bot-Api-Secret-Token"] == secrets["telegram_secret_token"]
    wa = [json.loads(r["body"]) for r in _jsonl(root / "webhooks" / "whatsapp.jsonl")]
    statuses = [
        v["statuses"][0]
        for e in wa
        for v in [e["entry"][0]["changes"][0]["value"]]
        if "statuses" in v
    ]
    assert {"sent", "delivered", "read", "failed"} <= {s["status"] for s in statuses}
    texts = [
        v["messages"][0]["text"]["body"]
        for e in wa
        for v in [e["entry"][0]["changes"][0]["value"]]
        if "messages" in v
    ]
    assert "STOP" in texts
    dup = Counter(r["body"] for r in _jsonl(root / "webhooks" / "whatsapp.jsonl"))
    assert any(n > 1 for n in dup.values())
    times = [int(s["timestamp"]) for s in statuses]
    assert any(b < a for a, b in itertools.pairwise(times))  # out of order
    sends = {s["message_id"]: s for s in _jsonl(root / "messages" / "sends.jsonl")}
    for s in statuses:
        assert sends[s["biz_opaque_callback_data"]]["provider_message_id"] == s["id"]
    tg = [json.loads(r["body"]) for r in _jsonl(root / "webhooks" / "telegram.jsonl")]
    assert (
        any("my_chat_member" in u for u in tg)
        or manifest["webhooks"]["opt_outs"]["telegram_block"] == 0
    )


def test_default_secrets_are_the_receivers_development_secrets() -> None:
    """The simulation does not import the platform, so its defaults repeat those of
    revisit/settings.py: generated webhooks must pass a receiver with default settings."""
    fields = Settings.model_fields
    assert asdict(WebhookSecrets()) == {
        name: fields[name].default.get_secret_value()
        for name in ("whatsapp_app_secret", "telegram_secret_token", "sms_webhook_secret")
    }


def test_generator_does_not_import_the_platform() -> None:
    code = "import sys, simulation.ecosystem; print(sorted({m.split('.')[0] for m in sys.modules}))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "'revisit'" not in out.stdout


def test_secrets_argument_is_used(tmp_path: Path) -> None:
    secrets = WebhookSecrets("wa-s3cret", "tg-s3cret", "sms-s3cret")
    m = generate(tmp_path / "s", customers=300, seed=3, secrets=secrets)
    assert m["secrets"] == {
        "whatsapp_app_secret": "wa-s3cret",
        "telegram_secret_token": "tg-s3cret",
        "sms_webhook_secret": "sms-s3cret",
    }
    req = _jsonl(tmp_path / "s" / "webhooks" / "whatsapp.jsonl")[0]
    want = hmac.new(b"wa-s3cret", req["body"].encode(), hashlib.sha256).hexdigest()
    assert req["headers"]["X-Hub-Signature-256"] == "sha256=" + want


def test_truth_is_coherent_with_outcomes(generated: Gen) -> None:
    root, manifest = generated
    t = pq.read_table(root / "truth" / "revisit_probability.parquet").to_pandas()
    assert len(manifest["truth"]["cutoffs"]) == 7
    assert t["as_of"].nunique() == 7
    hist = t[t["outcome"].notna()]
    assert t.loc[t["outcome"].isna(), "as_of"].astype(str).unique().tolist() == ["2026-11-01"]
    p, y = hist["probability"].to_numpy(), hist["outcome"].astype(bool).to_numpy()
    se = np.sqrt((p * (1 - p)).sum()) / len(p)
    assert abs(p.mean() - y.mean()) < 4 * se + 1e-9
    # calibration by probability decile: each bin's outcome rate near its mean probability
    bins = pd.qcut(p, 5, duplicates="drop")
    for _, g in pd.DataFrame({"p": p, "y": y, "b": bins}).groupby("b", observed=True):
        gse = np.sqrt((g["p"] * (1 - g["p"])).sum()) / len(g)
        assert abs(g["p"].mean() - g["y"].mean()) < 5 * gse + 0.01
    assert roc_auc_score(y, p) > 0.75
    assert (t.loc[~t["alive"], "probability"] == 0).all()
    # messages only raise the probability; scheduled bookings raise it too
    assert (t["probability"] >= t["probability_without_message"] - 1e-12).all()
    booked = t[(t["known_bookings"] > 0) & t["alive"]]["probability"].mean()
    unbooked = t[(t["known_bookings"] == 0) & t["alive"]]["probability"].mean()
    assert booked > unbooked
    effect = json.loads((root / "truth" / "message_effect.json").read_text())
    assert effect["triggers"]["winback"]["hazard_multiplier"] > 1
    assert effect["triggers"]["reminder"]["mean_uplift_30d_probability"] > 0


def test_holdout_share_and_send_fields(generated: Gen) -> None:
    root, _ = generated
    sends = _jsonl(root / "messages" / "sends.jsonl")
    share = np.mean([s["holdout"] for s in sends])
    assert 0.08 < share < 0.12
    assert all((s["provider_message_id"] is None) == s["holdout"] for s in sends)
    assert {s["trigger"] for s in sends} == {
        "birthday",
        "reminder",
        "winback",
        "partner_offer",
        "personal_offer",
    }
    assert all(s["offer_id"] for s in sends if s["trigger"] == "partner_offer")


def test_dst_zone_present_and_local_hours_hold(generated: Gen) -> None:
    root, _ = generated
    businesses = {b["id"]: b for b in _jsonl(root / "crm" / "api" / "businesses.jsonl")}
    berlin = {k for k, b in businesses.items() if b["timezone"] == "Europe/Berlin"}
    assert berlin and {b["currency"] for b in businesses.values()} >= {"RUB", "KZT", "EUR"}
    utc_hours: dict[bool, set[int]] = {True: set(), False: set()}
    for a in _jsonl(root / "crm" / "api" / "appointments.jsonl"):
        if a["business_id"] not in berlin:
            continue
        start = datetime.fromisoformat(a["start_at"].replace("Z", "+00:00"))
        local = start.astimezone(ZoneInfo("Europe/Berlin"))
        assert 9 <= local.hour <= 21
        summer = bool(local.dst())
        utc_hours[summer].add(start.hour)
    # 9:00 local is 07:00 UTC in summer and 08:00 UTC in winter
    assert 7 in utc_hours[True] and 8 in utc_hours[False] and 7 not in utc_hours[False]


def test_file_quirks(generated: Gen) -> None:
    root, _ = generated
    p2 = sorted((root / "partners" / "p2").glob("export_*.csv"))
    raw = p2[0].read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")
    header = raw[3:].decode().splitlines()[0]
    assert header.split(";") == [
        "Номер операции",
        "Тип",
        "Телефон",
        "Сумма",
        "Валюта",
        "Дата",
        "Акция",
    ]
    body = "".join(p.read_bytes()[3:].decode() for p in p2)
    assert re.search(r";\d+,\d\d;RUB;\d\d\.\d\d\.\d{4}( \d\d:\d\d)?;", body)
    export_csv = next((root / "crm" / "exports").glob("*/appointments_*.csv"))
    assert export_csv.read_bytes().startswith(b"\xef\xbb\xbf")
    p3 = json.loads(next((root / "partners" / "p3").glob("batch_*.json")).read_text())
    item = p3["items"][0]
    assert isinstance(item["money"]["amount_minor"], int) and "msisdn" in item["customer"]
    offers = _jsonl(root / "partners" / "offers.jsonl")
    assert all(o["audience"]["min_age"] == 18 and o["audience"]["max_age"] == 45 for o in offers)
    assert any(p.name == "batch_broken.json" for p in (root / "broken").rglob("*"))
    with pytest.raises(json.JSONDecodeError):
        json.loads((root / "broken" / "partners" / "p3" / "batch_broken.json").read_text())


def test_partner_bad_rows_point_at_the_rows(generated: Gen) -> None:
    root, _ = generated
    bad = pd.read_csv(root / "truth" / "bad_rows.csv", dtype=str, keep_default_na=False)
    partner = bad[bad["source"] == "partner"]
    assert set(partner["entity"]) == {"p1", "p2", "p3"}
    assert {"bad phone", "bad amount", "bad date"} <= set(partner["reason"])
    for row in partner.itertuples():
        n = int(row.locator.split()[1])
        path = root / row.file
        if row.entity == "p1":
            rec = _jsonl(path)[n - 1]
            assert rec["event_id"] == row.record_id
        elif row.entity == "p2":
            with path.open(encoding="utf-8-sig", newline="") as fh:
                rows = list(csv.reader(fh, delimiter=";"))
            assert rows[n][0] == row.record_id
        else:
            assert json.loads(path.read_text())["items"][n - 1]["id"] == row.record_id
    balances = pd.read_csv(root / "truth" / "cashback_balances.csv", dtype={"balance": str})
    assert (balances["balance"].str.startswith("-")).any() or len(balances) > 0


def test_partner_conversions_are_first_visits_with_promo(generated: Gen) -> None:
    root, _ = generated
    conv = pd.read_csv(root / "truth" / "partner_conversions.csv", dtype=str)
    assert len(conv) > 0
    appts = _jsonl(root / "crm" / "api" / "appointments.jsonl")
    exported = set(p.parent.name for p in (root / "crm" / "exports").glob("*/customers.xlsx"))
    promo = {(a["client_id"], a["promo_offer_id"]) for a in appts if a["promo_offer_id"]}
    for c in conv.itertuples():
        if c.publisher_business_id in exported:
            continue
        assert (c.customer_record_id, c.offer_id) in promo
