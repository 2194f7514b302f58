"""The work the crash harness kills: one area of the pipeline in this process.

    python -m simulation.crash.child <area> <trial dir>

The trial directory is the data directory (`REVISIT_DATA_DIR`: warehouse, state store,
spool, dbt artefacts); `<trial dir>/config.json` (written by the harness) says where the
sources and the stand-ins are. The child calls the same library functions the
Dagster assets and the CLI call, in the same order, and appends the name of each phase
it enters (and the seconds since it started) to `<trial dir>/progress`, so the harness
can say where a kill landed; the kill moment itself never depends on it. `ready` comes
once the interpreter has imported what the area needs: the harness draws kill moments
over the work that follows, not over interpreter start-up. Exit 0 when
the area ran to completion.
"""

from __future__ import annotations

import functools
import inspect
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import warehouse

# `spool` is the webhook spool load alone: inside `ingestion` it is a short phase that few
# random moments hit, so it has its own kill window too.
AREAS = ("ingestion", "spool", "dbt", "activation")


class Progress:
    """Phase markers, one line each, written through to the file at once."""

    def __init__(self, path: Path) -> None:
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        self._started = time.monotonic()

    def __call__(self, phase: str) -> None:
        os.write(self._fd, f"{phase} {time.monotonic() - self._started:.3f}\n".encode())


def _settings() -> Any:
    """The settings of the trial's data directory (`REVISIT_DATA_DIR`, set by the harness):
    the same composition of warehouse, state store, dbt and CRM configs as the CLI's."""
    from revisit.settings import Settings

    return Settings()


def _keyed(load: Callable[..., Any], settings: Any) -> Callable[..., Any]:
    """`load` with the installation's customer-id key when it takes one (`id_key`), as
    the front doors pass it; loaders that derive no customer id take none."""
    if "id_key" in inspect.signature(load).parameters:
        return functools.partial(load, id_key=settings.id_key)
    return load


def ingestion(config: dict[str, Any], phase: Progress) -> None:
    """CRM API sync, CRM file drops, the webhook spool, the message export, partner feeds —
    the order of the `crm`, `messenger_events`, `message_sends` and `partner_feeds` assets."""
    from ingestion.crm import FieldMaps, ingest_crm_exports, sync_crm_api
    from ingestion.messages import load_message_sends
    from ingestion.messenger import load_spool
    from ingestion.partners import load_offers, load_partner_feeds
    from warehouse.load import prepare_raw

    settings = _settings()
    source = Path(config["source_dir"])
    phase("ready")
    with warehouse.connect(settings.warehouse_dsn) as client:
        phase("prepare_raw")
        prepare_raw(client)
        phase("crm_api")
        _keyed(sync_crm_api, settings)(client, settings.crm_api(config["crm_api_url"]))
        phase("crm_files")
        report = _keyed(ingest_crm_exports, settings)(
            client, source / "crm" / "exports", field_maps=FieldMaps()
        )
        if not report.ok:
            raise SystemExit(f"CRM files did not all load: {report.files}")
        phase("spool")
        _keyed(load_spool, settings)(client, settings.spool_dir)
        phase("message_sends")
        _keyed(load_message_sends, settings)(client, source / "messages" / "sends.jsonl")
        phase("partner_offers")
        load_offers(client, source / "partners" / "offers.jsonl")
        phase("partner_feeds")
        _, errors = _keyed(load_partner_feeds, settings)(client, source / "partners")
        if errors:
            raise SystemExit(f"partner feeds did not all load: {errors}")


def spool(config: dict[str, Any], phase: Progress) -> None:
    """Closed webhook spool segments → raw.messenger_events (the `messenger_events` asset)."""
    from ingestion.messenger import load_spool
    from warehouse.load import prepare_raw

    settings = _settings()
    phase("ready")
    with warehouse.connect(settings.warehouse_dsn) as client:
        phase("prepare_raw")
        prepare_raw(client)
        phase("spool")
        _keyed(load_spool, settings)(client, settings.spool_dir)


def dbt(config: dict[str, Any], phase: Progress) -> None:
    """`dbt build` of every model, as the `dbt_models` asset runs it (its own process;
    the harness kills the whole process group, dbt included)."""
    from warehouse.dbt_runner import run_dbt

    dbt_config = _settings().dbt()
    phase("ready")
    phase("dbt_build")
    run_dbt(["build", "--vars", json.dumps({"as_of_date": config["as_of"]})], dbt_config)


def activation(config: dict[str, Any], phase: Progress) -> None:
    """Plan every trigger live, enqueue the ledger's accruals, deliver what is due to the
    stand-ins — `activation.run.run_once`, phase by phase."""
    import datetime as dt

    import activation.delivery
    import activation.planner  # noqa: F401 — run imports them late: before "ready", here
    from activation import run
    from activation.config import ProvidersConfig

    settings = _settings()
    providers = ProvidersConfig(**config["providers"])
    now = dt.datetime.fromisoformat(config["now"])
    phase("ready")
    with run.open_outbox(settings.state_dsn) as outbox:
        with warehouse.connect(settings.warehouse_dsn) as client:
            phase("plan")
            run.plan(client, run.select_triggers(None), now=now, outbox=outbox, dry_run=False)
            phase("accruals")
            run.enqueue_accruals(client, outbox, dry_run=False)
            phase("deliver")
            report = run.deliver_due(client, outbox, providers, dry_run=False)
        # A row whose lease ran out before its turn is left in `sending` for a later run
        # (`lease_lost`): the area is complete only when nothing is left in flight.
        in_flight = {kind: states.get("sending", 0) for kind, states in report.outbox.items()}
        if report.delivery is None or any(in_flight.values()):
            raise SystemExit(f"delivery left work in flight: {report.outbox}")


WORK: dict[str, Callable[[dict[str, Any], Progress], None]] = {
    "ingestion": ingestion,
    "spool": spool,
    "dbt": dbt,
    "activation": activation,
}


def main(argv: list[str]) -> None:
    area, trial = argv[0], Path(argv[1])
    config = json.loads((trial / "config.json").read_text())
    phase = Progress(trial / "progress")
    phase("start")
    WORK[area](config, phase)
    phase("done")


if __name__ == "__main__":
    main(sys.argv[1:])
