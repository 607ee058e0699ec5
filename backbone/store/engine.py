"""The engine a store URL opens (SQLite's pragmas, PostgreSQL's pool), and what differs
between the two databases (:data:`DIALECTS`)."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy
from sqlalchemy import URL, Engine, Executable, Table, event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from backbone.store.statements import routed_in_one_statement

__all__ = ["DIALECTS", "Dialect", "create_engine", "sqlite_writer_engine"]

# Seconds to wait for a PostgreSQL connection, and for SQLite's write lock held by another
# process, before calling the store unavailable.
_CONNECT_TIMEOUT = 5.0
_BUSY_TIMEOUT_MS = 5000
# Switching a new file to WAL, when another replica switches it at the same moment: up to
# 8 tries, 0.05 s, 0.1 s, ... apart (1.4 s in all, at start-up only).
_WAL_ATTEMPTS = 8
_WAL_RETRY_SECONDS = 0.05
# A fixed pool: callers beyond it wait for a connection. Overflow connections would be
# opened and closed per call under load, which costs more than the wait.
_POOL = {"pool_size": 10, "max_overflow": 0}


@dataclass(frozen=True, slots=True)
class Dialect:
    insert: Callable[[Table], postgresql.Insert | sqlite.Insert]  # has ON CONFLICT DO NOTHING
    # Serialises table creation between replicas opening a fresh database at once.
    ddl_lock: str
    # Calls run on AUTOCOMMIT connections where an error would abort the transaction
    # (PostgreSQL) and a BEGIN/COMMIT costs round trips; SQLite's driver already begins
    # only before a write, and switching its isolation costs two thread hops per call.
    autocommit: bool
    routed: Executable | None  # record_routed as one statement, where the dialect allows


DIALECTS = {
    "postgresql": Dialect(
        postgresql.insert,
        "SELECT pg_advisory_xact_lock(4242010201)",
        autocommit=True,
        routed=routed_in_one_statement(),
    ),
    "sqlite": Dialect(sqlite.insert, "BEGIN IMMEDIATE", autocommit=False, routed=None),
}
_DRIVERS = {"postgresql+asyncpg", "sqlite+aiosqlite"}


def create_engine(url: URL, schema: str | None) -> AsyncEngine:
    if url.drivername not in _DRIVERS:
        raise ValueError(
            f"unsupported store URL scheme {url.drivername!r}: use sqlite+aiosqlite:///file.db, "
            "postgresql+asyncpg://… or memory://"
        )
    if url.drivername == "postgresql+asyncpg":
        return create_async_engine(url, connect_args={"timeout": _CONNECT_TIMEOUT}, **_POOL)
    if schema is not None:
        raise ValueError("a schema applies to PostgreSQL only")
    if not url.database or url.database == ":memory:":
        raise ValueError("a SQLite store needs a file (use memory:// for an in-memory store)")
    Path(url.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_async_engine(url, **_POOL)
    event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
    return engine


def sqlite_writer_engine(url: URL) -> Engine:
    """A synchronous engine on the same SQLite file as ``url`` (an aiosqlite one) for the
    store's writes, which run whole on one thread (``SqlStore``): through aiosqlite every
    statement took several thread hops, most of a claim's CPU when envelopes come one by
    one. One connection: the writing thread is the only one using it."""
    engine = sqlalchemy.create_engine(
        url.set(drivername="sqlite+pysqlite"), pool_size=1, max_overflow=0
    )
    event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets readers run beside the one writer, across processes; synchronous=NORMAL is
    # safe in WAL (a power cut may lose the last commits, never corrupt the file). The busy
    # timeout comes first, for every later statement of the connection.
    cursor = dbapi_connection.cursor()
    cursor.execute(f"PRAGMA busy_timeout={_BUSY_TIMEOUT_MS}")
    _into_wal(cursor)
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def _into_wal(cursor: Any) -> None:
    """Put the file in WAL mode unless it is already (the mode is the file's own, once
    set). Replicas opening a new file at the same moment each switch it, and SQLite may
    answer one of them "database is locked" at once, without waiting out the busy timeout
    (seen with 4 stores opened together: 3 rounds in 30). That one looks again, briefly, a
    few times: by then another has made the file WAL."""
    for attempt in range(1, _WAL_ATTEMPTS + 1):
        cursor.execute("PRAGMA journal_mode")
        if str(cursor.fetchone()[0]).lower() == "wal":
            return
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or attempt == _WAL_ATTEMPTS:
                raise
        time.sleep(_WAL_RETRY_SECONDS * attempt)
