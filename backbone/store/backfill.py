"""The journeys of a store from before journeys were kept, worked out once from its
deliveries when it is opened."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from sqlalchemy import select, tuple_
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection

from backbone.store.journeys import JourneyFacts, fact_of, merge
from backbone.store.schema import deliveries

__all__ = ["backfill_journeys"]

# What a journey is worked out from, per delivery row (``journeys.fact_of``).
_BACKFILLED = [
    deliveries.c[name]
    for name in (
        "envelope_id",
        "document_id",
        "sender",
        "recipient",
        "kind",
        "business_type",
        "status_code",
        "due_date",
        "at",
    )
]
_BACKFILL_BATCH = 5000


async def backfill_journeys(
    conn: AsyncConnection,
    upsert: Callable[[Connection, Sequence[JourneyFacts]], None],
) -> None:
    """Work the journeys out from every delivery recorded so far, a batch at a time (in
    key order: the order does not matter to the result, see ``journeys.py``); ``upsert``
    writes them."""
    after = ("", "")
    while True:
        batch = (
            await conn.execute(
                select(*_BACKFILLED)
                .where(tuple_(deliveries.c.envelope_id, deliveries.c.recipient) > after)
                .order_by(deliveries.c.envelope_id, deliveries.c.recipient)
                .limit(_BACKFILL_BATCH)
            )
        ).all()
        if not batch:
            return
        facts = [
            fact_of(**{k: v for k, v in row._mapping.items() if k != "envelope_id"})
            for row in batch
        ]
        await conn.run_sync(upsert, merge(facts))
        after = (batch[-1].envelope_id, batch[-1].recipient)
