"""Group commit: the router's per-envelope store writes, many envelopes to a transaction.

With hundreds of envelopes in flight, a transaction (and on SQLite a commit plus thread
hops) per ``claim`` and ``record_routed`` is most of the router's cost. :class:`BatchingStore`
queues concurrent writes and runs them together through :meth:`SqlStore.apply`, one
transaction per batch, each caller awaiting its own result. Batching is natural: the first
write starts a flush at once, and what arrives while it commits forms the next batch, so an
idle router waits for no timer.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import datetime

from backbone.envelope import EnvelopeHeader
from backbone.errors import Reason, StoreUnavailableError
from backbone.store.abc import (
    NOT_RECORDED,
    Claim,
    Delivery,
    OpenChunked,
    Outcome,
    Refusal,
    Routing,
    SubmissionKey,
)
from backbone.store.calls import Call, ClaimCall, ClaimRouteCall, FinishCall, RoutedCall
from backbone.store.rules import utc
from backbone.store.sql import SqlStore

__all__ = ["BatchingStore"]

# Calls per transaction at most: a prefetch of 256 makes about two writes per envelope.
MAX_BATCH = 512


class BatchingStore:
    """A :class:`~backbone.store.abc.Store` over a :class:`SqlStore` that commits
    concurrent ``claim``, ``claim_route``, ``record_routed`` and ``finish`` calls in one
    transaction.

    The calls of a batch run in the order they were made, so they resolve exactly as the
    same calls made one after the other would. When a batch's transaction fails, nothing of
    it is committed and every caller in it gets the same error. ``history`` and ``ping`` go
    straight to the store; :meth:`close` lets queued calls finish, then closes it.
    """

    def __init__(self, store: SqlStore, *, max_batch: int = MAX_BATCH) -> None:
        if max_batch < 1:
            raise ValueError("a batch holds at least one call")
        self._store = store
        self._max_batch = max_batch
        self._queue: list[tuple[Call, asyncio.Future[Claim | None]]] = []
        self._flusher: asyncio.Task[None] | None = None
        self._closed = False

    @property
    def store(self) -> SqlStore:
        """The store the batches are committed to."""
        return self._store

    async def claim(self, identity: SubmissionKey, envelope_id: str) -> Claim:
        claim = await self._submit(ClaimCall(identity, envelope_id))
        assert claim is not None
        return claim

    async def claim_route(self, header: EnvelopeHeader, routing: Routing = NOT_RECORDED) -> Claim:
        claim = await self._submit(ClaimRouteCall(header, routing))
        assert claim is not None
        return claim

    async def finish(
        self, envelope_id: str, outcome: Outcome, *, reason: Reason | None = None
    ) -> None:
        await self._submit(FinishCall(envelope_id, outcome, reason))

    async def record_routed(
        self, header: EnvelopeHeader, at: datetime, routing: Routing = NOT_RECORDED
    ) -> None:
        # Refused here, before it is queued: one caller's bad argument fails no batch.
        await self._submit(RoutedCall(header, utc(at), routing))

    async def history(self, document_id: str, *, sender: str, recipient: str) -> Sequence[Delivery]:
        return await self._store.history(document_id, sender=sender, recipient=recipient)

    async def record_refusal(self, refusal: Refusal) -> None:
        await self._store.record_refusal(refusal)  # rare: not worth a batch

    async def refusals(self, document_id: str, *, sender: str) -> Sequence[Refusal]:
        return await self._store.refusals(document_id, sender=sender)

    # A chunked document's calls are a few per chunk of megabytes: not worth a batch.
    async def open_chunked(self, document: OpenChunked) -> OpenChunked:
        return await self._store.open_chunked(document)

    async def chunked(self, envelope_id: str) -> OpenChunked | None:
        return await self._store.chunked(envelope_id)

    async def chunk_passed(self, envelope_id: str, index: int) -> int:
        return await self._store.chunk_passed(envelope_id, index)

    async def chunk_has_passed(self, envelope_id: str, index: int) -> bool:
        return await self._store.chunk_has_passed(envelope_id, index)

    async def chunked_under_way(self, sender: str, *, since: datetime) -> tuple[int, int]:
        return await self._store.chunked_under_way(sender, since=since)

    async def forget_chunked(self, *, before: datetime) -> None:
        await self._store.forget_chunked(before=before)

    async def ping(self) -> None:
        await self._store.ping()

    async def close(self) -> None:
        """Refuse new calls, let the queued ones commit (or fail), then close the store."""
        self._closed = True
        try:
            if self._flusher is not None:
                await asyncio.shield(self._flusher)
        finally:
            self._fail_queued(StoreUnavailableError("the store is closed"))
            await self._store.close()

    async def _submit(self, call: Call) -> Claim | None:
        if self._closed:
            raise StoreUnavailableError("the store is closed")
        future: asyncio.Future[Claim | None] = asyncio.get_running_loop().create_future()
        self._queue.append((call, future))
        if self._flusher is None:
            self._flusher = asyncio.create_task(self._flush(), name="store-group-commit")
        return await future

    async def _flush(self) -> None:
        try:
            while self._queue:
                batch = self._queue[: self._max_batch]
                del self._queue[: self._max_batch]
                # A caller cancelled while queued no longer wants its call made.
                batch = [(call, future) for call, future in batch if not future.done()]
                if not batch:
                    continue
                try:
                    results = await self._store.apply([call for call, _ in batch])
                except Exception as error:
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(error)
                    continue
                except BaseException:  # cancelled: the callers must not wait forever
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(StoreUnavailableError("the store is closing"))
                    raise
                for (_, future), result in zip(batch, results, strict=True):
                    if not future.done():
                        future.set_result(result)
        finally:
            self._flusher = None
            if self._queue:  # cancelled with calls still queued
                self._fail_queued(StoreUnavailableError("the store's group commit stopped"))

    def _fail_queued(self, error: BaseException) -> None:
        queued, self._queue = self._queue, []
        for _, future in queued:
            if not future.done():
                future.set_exception(error)
