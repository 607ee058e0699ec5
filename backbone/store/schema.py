"""The store's tables (SQLAlchemy Core), the same for SQLite and PostgreSQL.

Tables carry no schema: a PostgreSQL schema is applied per engine with
``schema_translate_map``, so tests and deployments can isolate themselves.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    Boolean,
    Column,
    Connection,
    Date,
    DateTime,
    Dialect,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    inspect,
    text,
)
from sqlalchemy.types import TypeDecorator

from backbone.store.rules import utc

__all__ = [
    "UtcDateTime",
    "add_missing_columns",
    "chunked_documents",
    "chunks_passed",
    "claims",
    "deliveries",
    "journeys",
    "metadata",
    "overdue",
    "refusals",
]


class UtcDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in and out: ``timestamptz`` on PostgreSQL; on SQLite, whose
    DATETIME is text without an offset, stored as UTC and read back as UTC."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        value = utc(value)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


metadata = MetaData()

# One row per identity (see ``SubmissionKey``): who holds it and how it ended. ``envelope_id`` is
# unique too: an envelope claims exactly one identity, so ``finish`` can never touch
# another sender's row through a reused envelope id.
claims = Table(
    "claims",
    metadata,
    Column("sender", String, primary_key=True),
    Column("document_id", String, primary_key=True),
    Column("variant", String, primary_key=True),
    Column("payload_digest", String, nullable=False),
    Column("envelope_id", String, nullable=False, unique=True),
    Column("outcome", String),  # an ``Outcome``; null while unfinished
    Column("reason", String),  # a ``Reason`` when the outcome has one
    Column("claimed_at", UtcDateTime, nullable=False),
)

# One row per routed envelope and recipient: the history statuses and flows are checked on.
deliveries = Table(
    "deliveries",
    metadata,
    Column("envelope_id", String, primary_key=True),
    Column("recipient", String, primary_key=True),
    Column("document_id", String, nullable=False),
    Column("sender", String, nullable=False),
    Column("kind", String, nullable=False),
    Column("business_type", Integer),
    Column("status_code", String),
    Column("at", UtcDateTime, nullable=False),
    # Tracking (``backbone.tracking``): the header's optional due_date and status_note.
    Column("due_date", Date),
    Column("status_note", String),
    # Routing through a change (``Store.record_routed``'s ``Routing``): the heir a closed
    # code's document went to, and the directory version every route was decided on.
    Column("forwarded_to", String),
    Column("directory_version", String),
    # ``history``: both directions of one pair are two probes of this index.
    Index("deliveries_by_document", "document_id", "sender", "recipient"),
)

# One row per document and recipient (``journeys.py``): where it stands, kept up to date in
# the transaction that records each routed envelope, so tracking's lists are index reads.
journeys = Table(
    "journeys",
    metadata,
    Column("document_id", String, primary_key=True),
    Column("sender", String, primary_key=True),
    Column("recipient", String, primary_key=True),
    Column("routed_at", UtcDateTime),  # null until the new document itself is recorded
    Column("last_at", UtcDateTime, nullable=False),
    Column("revoked", Boolean, nullable=False),
    Column("asked", Boolean, nullable=False),
    Column("agreed", Boolean, nullable=False),
    Column("rejected", Boolean, nullable=False),
    Column("progress", String),
    Column("state", String, nullable=False),
    Column("due_date", Date),
    Column("due_at", UtcDateTime),
    # The successor the new document went to when its code had closed (``Routing``).
    Column("forwarded_to", String),
    # Newest first: everything (operators), by sender, by recipient, by state.
    Index("journeys_by_time", "routed_at"),
    Index("journeys_by_sender", "sender", "routed_at"),
    Index("journeys_by_recipient", "recipient", "routed_at"),
    Index("journeys_by_state", "state", "routed_at"),
    Index(
        "journeys_by_successor",
        "forwarded_to",
        "routed_at",
        sqlite_where=text("forwarded_to IS NOT NULL"),
        postgresql_where=text("forwarded_to IS NOT NULL"),
    ),
    Index(
        "journeys_by_due_date",
        "due_date",
        sqlite_where=text("due_date IS NOT NULL"),
        postgresql_where=text("due_date IS NOT NULL"),
    ),
)

# One row per document and recipient found overdue (``backbone.tracking.overdue``): the
# primary key makes the flag, and its event, happen once across router replicas. The
# DocumentId names its sender (the router routes no other), so it is unique per sender too;
# reads match the sender as well, for rows routed before that binding.
overdue = Table(
    "overdue",
    metadata,
    Column("document_id", String, primary_key=True),
    Column("recipient", String, primary_key=True),
    Column("sender", String, nullable=False),
    Column("due_date", Date, nullable=False),
    Column("flagged_at", UtcDateTime, nullable=False),
)


# One row per authenticated envelope the router refused, so its sender can look it up in
# tracking whatever became of the event that told it (events queues are bounded).
refusals = Table(
    "refusals",
    metadata,
    Column("envelope_id", String, primary_key=True),
    Column("document_id", String, nullable=False),
    Column("sender", String, nullable=False),
    Column("kind", String, nullable=False),
    Column("status_code", String),
    Column("reason", String, nullable=False),
    Column("message", String, nullable=False),
    Column("at", UtcDateTime, nullable=False),
    Index("refusals_by_document", "document_id", "sender"),
)


# One row per chunked document whose header was routed (``OpenChunked``), until it expires:
# what any replica needs to check and forward its chunks.
chunked_documents = Table(
    "chunked_documents",
    metadata,
    Column("envelope_id", String, primary_key=True),
    Column("sender", String, nullable=False),
    Column("publisher", String),
    Column("header_message", LargeBinary, nullable=False),
    Column("plan", String, nullable=False),  # JSON: tier exchange → routing keys
    Column("chunk_count", Integer, nullable=False),
    Column("opened_at", UtcDateTime, nullable=False),
    Index("chunked_documents_by_time", "opened_at"),
)

# One row per chunk forwarded: the primary key records it once across replicas.
chunks_passed = Table(
    "chunks_passed",
    metadata,
    Column("envelope_id", String, primary_key=True),
    Column("chunk_index", Integer, primary_key=True),
)


def add_missing_columns(connection: Connection) -> None:
    """Add the columns (all nullable) and indexes this version declares to tables an older
    version created; run after ``create_all``, under the DDL lock."""
    inspector = inspect(connection)
    schema = connection.get_execution_options().get("schema_translate_map", {}).get(None)
    quote = connection.dialect.identifier_preparer
    for table in metadata.sorted_tables:
        present = {column["name"] for column in inspector.get_columns(table.name, schema=schema)}
        name = quote.quote(table.name)
        where = f"{quote.quote_schema(schema)}.{name}" if schema else name
        for column in table.columns:
            if column.name not in present:
                kind = column.type.compile(dialect=connection.dialect)
                connection.exec_driver_sql(
                    f"ALTER TABLE {where} ADD COLUMN {quote.quote(column.name)} {kind}"
                )
        indexes = {index["name"] for index in inspector.get_indexes(table.name, schema=schema)}
        for index in table.indexes:
            if index.name not in indexes:
                index.create(connection)
