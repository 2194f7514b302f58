"""Connector cursors in the transactional state store (SQLAlchemy; SQLite by default).

A cursor is the `updated_at` high-water mark of one (source, entity): the next run asks
the CRM for `updated_since=<cursor>`. It is written only after every page up to it has
been loaded, so a crash leaves the old cursor and the rerun fetches those pages again
(their batches are then skipped or completed by `load_batch`).
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import Column, DateTime, MetaData, String, Table, create_engine, select
from sqlalchemy.engine import Engine, make_url

metadata = MetaData()
connector_cursors = Table(
    "connector_cursors",
    metadata,
    Column("source", String(200), primary_key=True),
    Column("entity", String(100), primary_key=True),
    Column("cursor", String(200), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)


class CursorStore:
    """get/set of (source, entity) → cursor string."""

    def __init__(self, dsn: str) -> None:
        url = make_url(dsn)
        if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
            Path(url.database).parent.mkdir(parents=True, exist_ok=True)
        self.engine: Engine = create_engine(dsn)
        metadata.create_all(self.engine)

    def get(self, source: str, entity: str) -> str | None:
        with self.engine.connect() as conn:
            return conn.execute(
                select(connector_cursors.c.cursor).where(
                    connector_cursors.c.source == source, connector_cursors.c.entity == entity
                )
            ).scalar_one_or_none()

    def set(self, source: str, entity: str, cursor: str) -> None:
        now = datetime.now(UTC)
        with self.engine.begin() as conn:
            updated = conn.execute(
                connector_cursors.update()
                .where(connector_cursors.c.source == source, connector_cursors.c.entity == entity)
                .values(cursor=cursor, updated_at=now)
            )
            if updated.rowcount == 0:
                conn.execute(
                    connector_cursors.insert().values(
                        source=source, entity=entity, cursor=cursor, updated_at=now
                    )
                )

    def close(self) -> None:
        self.engine.dispose()
