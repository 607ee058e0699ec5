"""The SQL store's chunked documents under way (``OpenChunked``): their statements and the
calls :class:`~backbone.store.sql.SqlStore` makes of them, each on a connection it opened.

A document's row is inserted once (a header routed again keeps it as it was); the chunks
that passed are rows of their own, inserted once each, so replicas forwarding chunks of
one document at the same time never overwrite each other.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime

from sqlalchemy import Table, and_, delete, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from backbone.store.abc import OpenChunked
from backbone.store.schema import chunked_documents, chunks_passed
from backbone.store.statements import insert_if_absent

__all__ = ["OpenChunkedStatements"]

_Insert = Callable[[Table], postgresql.Insert | sqlite.Insert]

_PASSED_COUNT = (
    select(func.count())
    .select_from(chunks_passed)
    .where(chunks_passed.c.envelope_id == chunked_documents.c.envelope_id)
    .scalar_subquery()
)


def _row(document: OpenChunked) -> dict[str, object]:
    return {
        "envelope_id": document.envelope_id,
        "sender": document.sender,
        "publisher": document.publisher,
        "header_message": document.header_message,
        "plan": json.dumps([[exchange, list(keys)] for exchange, keys in document.plan]),
        "chunk_count": document.chunk_count,
        "opened_at": document.opened_at,
    }


class OpenChunkedStatements:
    """The statements for one dialect (its insert), built once."""

    def __init__(self, insert: _Insert) -> None:
        self._insert_document = insert_if_absent(insert, chunked_documents)
        self._insert_passed = insert_if_absent(insert, chunks_passed)

    async def open(self, conn: AsyncConnection, document: OpenChunked) -> OpenChunked:
        await conn.execute(self._insert_document, _row(document))
        kept = await self.read(conn, document.envelope_id)
        assert kept is not None  # inserted, or there already, in this transaction
        return kept

    async def read(self, conn: AsyncConnection, envelope_id: str) -> OpenChunked | None:
        found = (
            await conn.execute(
                select(chunked_documents).where(chunked_documents.c.envelope_id == envelope_id)
            )
        ).first()
        if found is None:
            return None
        passed = await conn.execute(
            select(chunks_passed.c.chunk_index).where(chunks_passed.c.envelope_id == envelope_id)
        )
        return OpenChunked(
            envelope_id=found.envelope_id,
            sender=found.sender,
            publisher=found.publisher,
            header_message=bytes(found.header_message),
            plan=tuple((exchange, tuple(keys)) for exchange, keys in json.loads(found.plan)),
            chunk_count=found.chunk_count,
            opened_at=found.opened_at,
            passed=frozenset(passed.scalars()),
        )

    async def passed(self, conn: AsyncConnection, envelope_id: str, index: int) -> int:
        await conn.execute(self._insert_passed, {"envelope_id": envelope_id, "chunk_index": index})
        count = await conn.execute(
            select(func.count()).where(chunks_passed.c.envelope_id == envelope_id)
        )
        return int(count.scalar_one())

    async def has_passed(self, conn: AsyncConnection, envelope_id: str, index: int) -> bool:
        found = await conn.execute(
            select(chunks_passed.c.chunk_index).where(
                chunks_passed.c.envelope_id == envelope_id, chunks_passed.c.chunk_index == index
            )
        )
        return found.first() is not None

    async def under_way(
        self, conn: AsyncConnection, sender: str, since: datetime
    ) -> tuple[int, int]:
        found = await conn.execute(
            select(chunked_documents.c.sender, func.count())
            .where(
                and_(
                    chunked_documents.c.opened_at > since,
                    chunked_documents.c.chunk_count > _PASSED_COUNT,
                )
            )
            .group_by(chunked_documents.c.sender)
        )
        counts = {row[0]: int(row[1]) for row in found}
        return counts.get(sender, 0), sum(counts.values())

    async def forget(self, conn: AsyncConnection, before: datetime) -> None:
        stale = select(chunked_documents.c.envelope_id).where(
            chunked_documents.c.opened_at <= before
        )
        await conn.execute(delete(chunks_passed).where(chunks_passed.c.envelope_id.in_(stale)))
        await conn.execute(delete(chunked_documents).where(chunked_documents.c.opened_at <= before))
