"""The SQLite store's small transactions, each run whole on one thread of its own.

Through aiosqlite every statement of a transaction is several thread hops (a cursor, the
statement, its rows, the cursor closed), each waking the event loop: at a low rate, where
each envelope is its own transaction, they were most of the router's CPU per envelope. Here
such a transaction is one hop. A router's large batches still go through aiosqlite
(``sql.ONE_HOP_CALLS``): there the hops are amortised, and run on this thread their Python
work contended with the event loop's for the interpreter. Reads stay on the async engine,
beside it (WAL).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from sqlalchemy import URL
from sqlalchemy.engine import Connection

from backbone.store.engine import sqlite_writer_engine

__all__ = ["SqliteWriter"]

_T = TypeVar("_T")


class SqliteWriter:
    """Runs ``work(connection)`` in a transaction on the writing thread (:meth:`run`)."""

    def __init__(self, url: URL) -> None:
        self._engine = sqlite_writer_engine(url)
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="vdx-store-writer")

    async def run(self, work: Callable[[Connection], _T]) -> _T:
        """``work`` done and committed, or rolled back and its error raised. A caller
        cancelled meanwhile does not stop it: it commits as if the process stopped after
        the commit, which the store's claims already resolve."""
        return await asyncio.get_running_loop().run_in_executor(
            self._thread, self._in_transaction, work
        )

    def _in_transaction(self, work: Callable[[Connection], _T]) -> _T:
        with self._engine.begin() as conn:
            return work(conn)

    def close(self) -> None:
        """Let the transaction under way finish, then close the connection."""
        self._thread.shutdown(wait=True)
        self._engine.dispose()
