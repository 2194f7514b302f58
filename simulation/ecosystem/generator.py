"""`generate()`: the whole synthetic ecosystem in the native forms of ingestion/SOURCES.md.

The phases, each in its own module:

1. the world and its history (`history`): businesses, people, who is whose customer,
   partner offers, and the simulated visits and sends with their exact probabilities;
2. the CRM's view of the people (`crm.crm_view`: phone spellings, names, which
   businesses deliver file drops) and the CRM's reference records;
3. two independent halves of the files, written by two processes (`parallel`):
   - the CRM records: customers, appointments (`appointments`), file drops
     (`crm_exports`);
   - everything else: sends (`messaging`), webhooks (`webhooks`), partner offers and
     feeds (`partners`), the ground truth (`truth`);
4. `manifest.json`: arguments, counts and every file with its rows.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from simulation.ecosystem import crm, messaging, partners, truth, webhooks
from simulation.ecosystem.common import Manifest, RandomStreams
from simulation.ecosystem.crm import CrmView
from simulation.ecosystem.history import History, simulate_history
from simulation.ecosystem.model import FUTURE_DAYS
from simulation.ecosystem.parallel import run_pair
from simulation.ecosystem.webhooks import WebhookSecrets

__all__ = ["DEFAULT_AS_OF", "GENERATOR_VERSION", "SCALES", "WebhookSecrets", "generate"]

SCALES: dict[str, int] = {"test": 1_000, "demo": 20_000, "bench": 1_000_000}
DEFAULT_AS_OF = date(2026, 11, 1)
GENERATOR_VERSION = 2


def generate(
    out_dir: Path,
    *,
    customers: int,
    seed: int = 7,
    as_of: date | None = None,
    secrets: WebhookSecrets | None = None,
    include_broken_files: bool = False,
    export_businesses: int | None = None,
    webhook_days: int = 30,
    invalid_phone_share: float = 0.01,
    processes: int = 2,
) -> dict[str, Any]:
    """Write a synthetic ecosystem of `customers` people into `out_dir` (replaced if it
    exists) and return the manifest (also written to `out_dir/manifest.json`).

    Same arguments → byte-identical files. `as_of` (default 2026-11-01) is the local date
    the history ends: 540 days of history before it, future scheduled appointments up to
    30 days after it. `export_businesses` businesses (default ~5%, at most 20: the
    smallest, never a country's only one) deliver CRM file drops instead of the API.
    Webhook requests cover the sends of the last `webhook_days` days. See
    ingestion/SOURCES.md for every file. With `processes` ≥ 2 the CRM files and the other
    files are written by two processes (forked; the bytes do not depend on it).
    """
    if customers < 100:
        raise ValueError("customers must be at least 100")
    as_of = as_of or DEFAULT_AS_OF
    secrets = secrets or WebhookSecrets()
    out_dir = Path(out_dir)
    if out_dir.exists():
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True)
    rngs = RandomStreams.from_seed(seed)
    h = simulate_history(rngs, customers, as_of)
    view = crm.crm_view(h, rngs.crm, invalid_phone_share, export_businesses)
    man = Manifest(out_dir)
    crm.write_reference_records(out_dir, man, h, view)
    # the files left are independent of each other and use separate random streams
    (exports, n_appointments), (webhook_info, partner_info, truth_info) = run_pair(
        lambda m: crm.write_crm_records(out_dir, m, h, view, rngs.crm),
        lambda m: _write_messages_partners_truth(
            out_dir, m, h, view, rngs, secrets, webhook_days, include_broken_files
        ),
        man,
        processes,
    )
    manifest: dict[str, Any] = {
        "generator": "simulation.ecosystem",
        "generator_version": GENERATOR_VERSION,
        "seed": seed,
        "scale": next((k for k, v in SCALES.items() if v == customers), "custom"),
        "customers": customers,
        "as_of": as_of.isoformat(),
        "history_start": h.day0.isoformat(),
        "future_until": (as_of + timedelta(days=FUTURE_DAYS)).isoformat(),
        "secrets": asdict(secrets),
        "counts": _counts(h, customers, n_appointments),
        "crm_export_businesses": exports,
        "webhooks": webhook_info,
        "partners": partner_info["partners"],
        "truth": truth_info,
        "files": dict(sorted(man.files.items())),
    }
    (out_dir / "manifest.json").write_text(
        json.dumps(manifest, ensure_ascii=False, indent=2) + "\n", encoding="utf-8"
    )
    return manifest


def _write_messages_partners_truth(
    out_dir: Path,
    man: Manifest,
    h: History,
    view: CrmView,
    rngs: RandomStreams,
    secrets: WebhookSecrets,
    webhook_days: int,
    include_broken_files: bool,
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """The second half of the files: sends and the webhooks they caused, partner offers
    and feeds, then the ground truth (which counts the holdout sends and collects the
    partners' bad rows and balances). Returns the webhook, partner and truth summaries."""
    sends = messaging.write_sends(out_dir, man, h, view, rngs.messages)
    webhook_info = webhooks.write_webhooks(
        out_dir, man, sends, h, view, rngs.messages, secrets, webhook_days
    )
    partners.write_offers(out_dir, man, h.offers, h.biz, h.day0)
    partner_info = partners.write_partner_feeds(
        out_dir,
        man,
        rngs.partner_feeds,
        h.persons,
        h.phone_e164,
        h.day0_epoch,
        include_broken_files,
    )
    holdout_sends = int(sends.holdout.sum())
    truth_info = truth.write_truth(out_dir, man, h, view, holdout_sends, partner_info)
    return webhook_info, partner_info, truth_info


def _counts(h: History, customers: int, n_appointments: int) -> dict[str, int]:
    return {
        "businesses": len(h.biz),
        "locations": len(h.locs),
        "services": len(h.svcs),
        "people": int(customers),
        "customer_records": h.n_rels,
        "appointments": n_appointments,
        "sends": len(h.res.sends.rel),
        "offers": len(h.offers),
        "partner_conversions": len(h.conversions),
    }
