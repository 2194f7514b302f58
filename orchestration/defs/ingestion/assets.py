"""Ingestion assets: one per raw table, in group `ingestion`.

Each asset runs a connector from `ingestion/` on the sources named by the settings and
reports what it loaded: rows, quarantined rows, batches skipped as already loaded, a
preview, and one asset check per table on its quarantine rate.
"""

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from clickhouse_connect.driver.client import Client
from dagster import (
    AssetExecutionContext,
    AssetSpec,
    Config,
    MaterializeResult,
    MetadataValue,
    multi_asset,
)

from orchestration.defs.ingestion.checks import quarantine_check, quarantine_result, raw_key
from orchestration.resources import WarehouseResource
from revisit.settings import get_settings
from warehouse.load import LoadResult
from warehouse.privacy import mask_frame, mask_text

GROUP = "ingestion"


def raw_spec(table: str, description: str) -> AssetSpec:
    return AssetSpec(
        key=raw_key(table), group_name=GROUP, description=description,
        kinds={"clickhouse", "python"},
    )  # fmt: skip


def _preview(client: Client, table: str) -> str:
    frame = client.query_df(
        f"SELECT * EXCEPT (_batch_id, _row, _version) FROM raw.{table} "
        "ORDER BY _loaded_at DESC LIMIT 5"
    )
    # Phones, names and payloads masked: metadata is shown and stored outside the warehouse.
    return mask_frame(frame).to_markdown(index=False) if len(frame) else "(empty)"


def report(
    client: Client, table: str, results: Sequence[LoadResult], errors: Iterable[str] = ()
) -> Iterable[Any]:
    """A materialization and the quarantine check of one raw table."""
    loaded = sum(r.rows_loaded for r in results)
    quarantined = sum(r.rows_quarantined for r in results)
    skipped = sum(r.skipped for r in results)
    total = client.command(f"SELECT count() FROM raw.{table} FINAL")
    errors = [mask_text(e) for e in errors]
    yield MaterializeResult(
        asset_key=raw_key(table),
        metadata={
            "rows_loaded": loaded,
            "rows_quarantined": quarantined,
            "batches": len(results),
            "batches_already_loaded": skipped,
            "table_rows": MetadataValue.int(int(total)),
            "unreadable_files": MetadataValue.md("\n".join(f"- {e}" for e in errors) or "none"),
            "preview": MetadataValue.md(_preview(client, table)),
        },
    )
    yield quarantine_result(table, loaded, quarantined, len(errors))


@multi_asset(
    specs=[
        raw_spec("messenger_events", "Delivery statuses, replies and opt-outs from webhooks."),
    ],
    check_specs=[quarantine_check("messenger_events")],
)
def messenger_events(context: AssetExecutionContext, warehouse: WarehouseResource) -> Any:
    """Closed webhook spool segments, and the Kafka topic when the receiver writes there
    (REVISIT_WEBHOOK_SINK=kafka) → raw.messenger_events, each event exactly once."""
    from ingestion.messenger import load_spool, load_topic

    settings = get_settings()
    kafka = settings.kafka()
    with warehouse.get_client() as client:
        # The spool too: segments written before a switch to Kafka still get loaded.
        results = load_spool(client, settings.spool_dir)
        if kafka is not None:
            results += load_topic(client, kafka)
        yield from report(client, "messenger_events", results)


@multi_asset(
    specs=[raw_spec("message_sends", "Historical trigger sends (messaging platform export).")],
    check_specs=[quarantine_check("message_sends")],
)
def message_sends(context: AssetExecutionContext, warehouse: WarehouseResource) -> Any:
    """messages/sends.jsonl of the source directory → raw.message_sends."""
    from ingestion.messages import load_message_sends

    settings = get_settings()
    sends = message_export(settings.source_dir)
    with warehouse.get_client() as client:
        results = (
            [load_message_sends(client, sends, id_key=settings.id_key)] if sends.exists() else []
        )
        if not sends.exists():
            context.log.warning(f"no message export at {sends}")
        yield from report(client, "message_sends", results)


def message_export(source_dir: Path) -> Path:
    """The messaging platform's export of historical sends."""
    return source_dir / "messages" / "sends.jsonl"


def partner_dir(source_dir: Path) -> Path:
    """Partner offers (offers.jsonl) and one folder of feed files per partner."""
    return source_dir / "partners"


@multi_asset(
    specs=[
        raw_spec("partner_offers", "Partner offers (lots), canonical schema."),
        raw_spec("partner_events", "Partner events from every partner feed, canonical schema."),
    ],
    check_specs=[quarantine_check("partner_offers"), quarantine_check("partner_events")],
)
def partner_feeds(context: AssetExecutionContext, warehouse: WarehouseResource) -> Any:
    """partners/ of the source directory: offers and every partner's feed files."""
    from ingestion.partners import load_offers, load_partner_feeds

    settings = get_settings()
    partners = partner_dir(settings.source_dir)
    offers_file = partners / "offers.jsonl"
    with warehouse.get_client() as client:
        offers = [load_offers(client, offers_file)] if offers_file.exists() else []
        events, errors = (
            load_partner_feeds(client, partners, id_key=settings.id_key)
            if partners.exists()
            else ([], [])
        )
        yield from report(client, "partner_offers", offers)
        yield from report(client, "partner_events", events, [str(e) for e in errors])


CRM_TABLES = {
    "crm_businesses": "Businesses: kind, country, IANA time zone, currency.",
    "crm_locations": "Locations of each business.",
    "crm_services": "Services and list prices.",
    "crm_customers": "Customers per business; phones normalised to E.164.",
    "crm_appointments": "Appointments of every status, future ones included.",
}


class CrmConfig(Config):
    api_url: str = ""
    """CRM API base URL; empty means the settings' REVISIT_CRM_API_URL (unset: no API)."""


@multi_asset(
    specs=[raw_spec(table, text) for table, text in CRM_TABLES.items()],
    check_specs=[quarantine_check(table) for table in CRM_TABLES],
)
def crm(context: AssetExecutionContext, config: CrmConfig, warehouse: WarehouseResource) -> Any:
    """The CRM REST API (incremental by cursor; optional) and the businesses' file drops.

    An unreachable API does not stop the file drops, nor does a file that fails or is
    skipped stop the others: everything loadable loads, the tables report, and then the
    asset fails naming the API's error (URL and setting) and each such file."""
    from dagster import Failure

    from ingestion.crm import CrmApiError, ingest_crm_exports, sync_crm_api
    from revisit.ingest_commands import crm_field_maps

    settings = get_settings()
    exports = settings.source_dir / "crm" / "exports"
    api_config = settings.crm_api(config.api_url or None)
    problems: list[str] = []
    with warehouse.get_client() as client:
        results: list[LoadResult] = []
        if api_config.base_url is None:
            context.log.info("no CRM API configured (REVISIT_CRM_API_URL unset): file drops only")
        else:
            try:
                results = sync_crm_api(client, api_config, id_key=settings.id_key)
            except CrmApiError as ex:
                problems.append(mask_text(str(ex)))
                context.log.error(problems[-1])
        errors: list[Any] = []
        if exports.exists():
            report = ingest_crm_exports(
                client, exports, field_maps=crm_field_maps(settings), id_key=settings.id_key
            )
            results += report.results
            for outcome in report.files:
                if outcome.status in ("skipped", "failed"):
                    problems.append(
                        mask_text(f"{outcome.status} {outcome.path}: {outcome.message}")
                    )
                    context.log.error(problems[-1])
            errors = [(o.entity, f"{o.path}: {o.message}") for o in report.files
                      if o.status == "failed"]  # fmt: skip
        for table in CRM_TABLES:
            yield from report_table(client, table, results, errors)
    if problems:
        raise Failure(description="\n".join(problems))


def report_table(
    client: Client, table: str, results: Sequence[LoadResult], errors: Sequence[Any]
) -> Iterable[Any]:
    yield from report(
        client, table, [r for r in results if r.table == table],
        [text for entity, text in errors if f"crm_{entity}" == table],
    )  # fmt: skip


ASSETS = [crm, messenger_events, message_sends, partner_feeds]
# Every raw table the loads above write (raw/quarantine runs after them).
RAW_KEYS = [key for a in ASSETS for key in a.keys]
