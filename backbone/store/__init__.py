"""Dedup and routing state shared by router replicas: :func:`open_store` picks the back-end.

- ``sqlite+aiosqlite:///var/lib/vdx/router.db``: the embedded default; WAL, so several
  processes on one host share the file.
- ``postgresql+asyncpg://user@host/db``: several router replicas share it.
- ``memory://``: the same semantics in process memory, for other components' unit tests.
"""

from __future__ import annotations

from sqlalchemy import make_url
from sqlalchemy.exc import ArgumentError

from backbone.clock import Clock, utc_now
from backbone.store.abc import Store
from backbone.store.batching import BatchingStore
from backbone.store.memory import MemoryStore
from backbone.store.sql import SqlStore

__all__ = ["BatchingStore", "MemoryStore", "SqlStore", "Store", "open_store"]


async def open_store(
    url: str, *, schema: str | None = None, batching: bool = True, clock: Clock = utc_now
) -> Store:
    """The store at ``url``, its tables created if absent (in PostgreSQL ``schema`` when
    given); a SQL one commits concurrent writes together unless ``batching`` is false.
    ``clock`` says when claims are made (tests inject one).
    Raise ``ValueError`` for an unusable URL and
    :class:`~backbone.errors.StoreUnavailableError` when the database cannot be reached."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise ValueError(f"not a store URL: {url!r}") from None
    if parsed.drivername == "memory":
        if schema is not None:
            raise ValueError("a schema applies to PostgreSQL only")
        return MemoryStore(clock=clock)
    store = await SqlStore.open(parsed, schema=schema, clock=clock)
    return BatchingStore(store) if batching else store
