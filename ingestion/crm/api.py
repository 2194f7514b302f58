"""CRM REST connector: incremental pulls by `updated_since`, cursor pagination, retries.

Contract (SOURCES.md): `GET <base>/api/v1/<entity>?updated_since=&cursor=&limit=` with
a bearer token → `{"data": [...], "next_cursor": ... | null}` ordered by (updated_at, id).

Retries: 429, 5xx, timeouts and connection errors are retried with exponential backoff
and jitter (tenacity); a `Retry-After` header (seconds) is honoured, capped. Other 4xx
fail at once (a wrong token will not fix itself).

Incremental: the high-water `updated_at` of everything loaded is stored per entity in
the state store and sent as `updated_since` next time (inclusive, so records sharing the
boundary timestamp are never missed; their page re-hashes to an already-loaded batch).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping
from typing import Any

import httpx
import pandas as pd
from clickhouse_connect.driver.client import Client
from tenacity import (
    retry,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential_jitter,
)

from ingestion.config import CrmApiConfig
from ingestion.crm.cursors import CursorStore
from ingestion.crm.mapping import ENTITIES, EntityMap, FieldMap, load_field_map, prepare
from warehouse.load import LoadResult, load_batch, prepare_raw
from warehouse.privacy import mask_text

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
MAX_RETRY_AFTER_S = 30.0
_backoff = wait_exponential_jitter(multiplier=0.2, max=10.0, jitter=0.2)


class CrmApiError(RuntimeError):
    """The CRM answered in a way retries cannot fix (auth, bad request, bad JSON), or
    could not be reached at all (the message names the URL and its setting)."""


def _retryable(exc: BaseException) -> bool:
    if isinstance(exc, httpx.HTTPStatusError):
        return exc.response.status_code in RETRY_STATUSES
    return isinstance(exc, httpx.TransportError)  # timeouts, refused/reset connections


def _wait(state: Any) -> float:
    exc = state.outcome.exception() if state.outcome else None
    if isinstance(exc, httpx.HTTPStatusError):
        after = exc.response.headers.get("Retry-After")
        if after is not None:
            try:
                return min(max(float(after), 0.0), MAX_RETRY_AFTER_S)
            except ValueError:
                pass  # an HTTP date; fall back to backoff
    return _backoff(state)


class CrmApiClient:
    """A thin httpx client for one CRM: pages of one entity, retried."""

    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        path: str = "/api/v1/{entity}",
        timeout_s: float = 30.0,
        attempts: int = 6,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.path = path
        self.attempts = attempts
        self._http = httpx.Client(
            base_url=base_url.rstrip("/"),
            headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
            timeout=timeout_s,
            transport=transport,
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> CrmApiClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def get_page(
        self, entity: str, *, updated_since: str | None, cursor: str | None, limit: int
    ) -> dict[str, Any]:
        """One page: {"data": [...], "next_cursor": str | None}."""
        params: dict[str, Any] = {"limit": limit}
        if updated_since:
            params["updated_since"] = updated_since
        if cursor:
            params["cursor"] = cursor

        @retry(
            retry=retry_if_exception(_retryable),
            wait=_wait,
            stop=stop_after_attempt(self.attempts),
            reraise=True,
        )
        def fetch() -> httpx.Response:
            response = self._http.get(self.path.format(entity=entity), params=params)
            response.raise_for_status()
            return response

        try:
            response = fetch()
        except httpx.HTTPStatusError as exc:
            raise CrmApiError(
                f"CRM {exc.request.url}: HTTP {exc.response.status_code}: "
                f"{mask_text(exc.response.text[:200])}"
            ) from exc
        try:
            body = response.json()
            data, next_cursor = body["data"], body.get("next_cursor")
        except (ValueError, KeyError, TypeError) as exc:
            raise CrmApiError(f"CRM {response.url}: not a data page: {exc}") from exc
        if not isinstance(data, list):
            raise CrmApiError(f"CRM {response.url}: `data` is not a list")
        return {"data": data, "next_cursor": next_cursor}

    def pages(
        self, entity: str, *, updated_since: str | None, limit: int
    ) -> Iterator[list[dict[str, Any]]]:
        cursor = None
        while True:
            page = self.get_page(entity, updated_since=updated_since, cursor=cursor, limit=limit)
            if page["data"]:
                yield page["data"]
            cursor = page["next_cursor"]
            if not cursor:
                return


def page_batch_id(entity: str, records: list[dict[str, Any]]) -> str:
    """Stable batch id: the same entity and page content give the same id."""
    digest = hashlib.sha256(entity.encode())
    digest.update(json.dumps(records, sort_keys=True, default=str).encode())
    return f"crm-api-{entity}-{digest.hexdigest()[:32]}"


def business_regions(client: Client) -> dict[str, str]:
    """business_id → country of the businesses loaded so far (latest version)."""
    rows = client.query(
        "SELECT business_id, argMax(country, _version) FROM raw.crm_businesses GROUP BY business_id"
    ).result_rows
    return {b: c for b, c in rows if c}


def _max_updated(records: list[dict[str, Any]], current: str | None) -> str | None:
    stamps = pd.to_datetime(
        pd.Series([r.get("updated_at") for r in records], dtype=object),
        utc=True,
        format="ISO8601",
        errors="coerce",
    ).dropna()
    if stamps.empty:
        return current
    top = stamps.max()
    if current is not None and pd.Timestamp(current) >= top:
        return current
    return top.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def load_page(
    client: Client,
    entity_map: EntityMap,
    records: list[dict[str, Any]],
    *,
    regions: Mapping[str, str] | None = None,
    source: str = "crm",
    id_key: bytes,
) -> LoadResult:
    """Map, validate and load one page of CRM API records as one batch (idempotent: the
    batch id is derived from the page's records)."""
    refs = pd.Series([f"{entity_map.entity}/{r.get('id')}" for r in records], dtype=object)
    prepared = prepare(
        entity_map,
        pd.DataFrame.from_records(records),
        source_kind="crm_api",
        row_ref=refs,
        regions=regions,
        id_key=id_key,
    )
    return load_batch(
        client,
        entity_map.table,
        prepared.frame,
        batch_id=page_batch_id(entity_map.entity, records),
        source=f"{source}:{entity_map.entity}",
        quarantine=prepared.quarantine,
    )


def sync_entity(
    client: Client,
    api: CrmApiClient,
    cursors: CursorStore,
    entity: str,
    *,
    field_map: FieldMap,
    source: str = "crm",
    limit: int | None = None,
    id_key: bytes,
) -> list[LoadResult]:
    """Pull one entity's changes since its cursor; load each page as one batch."""
    entity_map = field_map.entity(entity)
    since = cursors.get(source, entity)
    high = since
    regions = business_regions(client) if entity == "customers" else None
    results = []
    for records in api.pages(entity, updated_since=since, limit=limit or field_map.page_limit):
        results.append(
            load_page(client, entity_map, records, regions=regions, source=source, id_key=id_key)
        )
        high = _max_updated(records, high)
    # Only now: every page up to `high` is in the warehouse.
    if high is not None and high != since:
        cursors.set(source, entity, high)
    return results


def sync_crm_api(
    client: Client,
    config: CrmApiConfig,
    *,
    entities: tuple[str, ...] = ENTITIES,
    field_map: FieldMap | None = None,
    source: str = "crm",
    limit: int | None = None,
    transport: httpx.BaseTransport | None = None,
    id_key: bytes,
) -> list[LoadResult]:
    """Incremental sync of the CRM API into raw.crm_* (businesses first: their country
    is the default region of customers' phones), with the shipped field map unless another
    is given. Cursors live in the config's state store under (`source`, entity).

    With no API configured (`config.base_url` None) nothing is pulled and [] returned.
    An API that cannot be reached (after retries) raises CrmApiError naming the URL and
    the setting it came from; what was loaded before stays loaded. `id_key`: the
    installation's customer-id key (`ingestion.identity.customer_id`)."""
    if not config.base_url:
        return []
    field_map = field_map or load_field_map()
    prepare_raw(client)
    ordered = [e for e in ENTITIES if e in entities] + [e for e in entities if e not in ENTITIES]
    cursors = CursorStore(config.cursor_store_dsn)
    api = CrmApiClient(
        config.base_url,
        config.token,
        path=field_map.api_path,
        attempts=config.attempts,
        transport=transport,
    )
    try:
        results: list[LoadResult] = []
        for entity in ordered:
            results += sync_entity(
                client, api, cursors, entity, field_map=field_map, source=source, limit=limit,
                id_key=id_key,
            )  # fmt: skip
        return results
    except httpx.TransportError as exc:
        raise CrmApiError(
            f"CRM API at {config.base_url} (set by {config.url_setting}) cannot be reached "
            f"after {config.attempts} attempts: {type(exc).__name__}: {exc or 'no answer'}. "
            f"Check the URL, or unset {config.url_setting} for businesses that only send files."
        ) from exc
    finally:
        api.close()
        cursors.close()
