"""The chunked documents under way through the router: what is kept of each between its
header and its last chunk (docs/large-documents.md).

Each document is kept in the store (``Store.open_chunked``) once its header is routed: the
signed header message (its chunk digests: at most 4096 × 32 bytes), its publishing account,
where its copies go and which chunks have passed, never a chunk. So any replica sharing the
store, or this one restarted, checks a chunk against its header (:func:`check_chunk`) and
forwards it, whoever routed the header; a chunk that passed already is known as a
duplicate. What this replica holds in memory is a cache of a few documents, never the truth.

A header is admitted only while its sender has fewer than ``per_sender`` documents under
way and all senders fewer than ``total`` (``too_many_open_documents``), counted in the
store, and a document is forgotten ``timeout`` after its header (its later chunks are then
``chunk_foreign``), so thousands of half-sent documents cannot grow the router's memory or
its store.

Chunks are consumed concurrently with their header, by this replica or another: a chunk
whose header is not known yet waits for it a moment (:meth:`OpenDocuments.find`: for a
header being checked here, its verdict; else up to ``hold`` seconds, looking at the store),
and is then put back behind its queue by the service, until ``chunk_header_wait_seconds``
after it was first seen, rather than refused as foreign at once or held for long.

While they wait, such chunks are counted per publishing account (:class:`WaitingChunks`):
an account with ``per_account`` chunks put back by this replica and still waiting has its
next chunk of no known header refused at once (``too_many_waiting_chunks``) rather than put
back, so one account's foreign chunks cannot keep the chunk queue circling for everyone.
"""

from __future__ import annotations

import asyncio
from collections import Counter, OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Final

from backbone.clock import Clock
from backbone.envelope.chunk_wire import read_chunked_header
from backbone.envelope.chunked import ChunkedHeader
from backbone.errors import Reason, RoutingError
from backbone.store.abc import OpenChunked, Store

__all__ = ["OpenDocument", "OpenDocuments", "WaitingChunks"]

DEFAULT_PER_SENDER: Final = 64
DEFAULT_TOTAL: Final = 4096
DEFAULT_TIMEOUT: Final = timedelta(hours=1)
# How long a chunk waits for its header to be routed (here or by another replica) before it
# is refused as foreign, and how long it is held at a time meanwhile.
HEADER_WAIT_SECONDS: Final = 30.0
HOLD_SECONDS: Final = 1.0
# Chunks of one publishing account a replica puts back waiting for their header at a time:
# a whole 1 GiB document in the default 4 MiB chunks.
DEFAULT_WAITING_PER_ACCOUNT: Final = 256
# Documents a replica keeps at hand (each header up to ~280 KB): a miss reads the store.
CACHED_DOCUMENTS: Final = 64
_FIRST_POLL, _LONGEST_POLL = 0.05, 1.0  # seconds between looks at the store for a header


@dataclass(slots=True)
class OpenDocument:
    """A chunked document whose header was routed: where its chunks go."""

    header: ChunkedHeader
    publisher: str | None  # the broker account that published the header
    plan: Mapping[str, tuple[str, ...]]
    started: datetime
    passed: set[int] = field(default_factory=set)


class OpenDocuments:
    def __init__(
        self,
        *,
        store: Store,
        clock: Clock,
        per_sender: int = DEFAULT_PER_SENDER,
        total: int = DEFAULT_TOTAL,
        timeout: timedelta = DEFAULT_TIMEOUT,
        hold: float = HOLD_SECONDS,
    ) -> None:
        self._store = store
        self._clock = clock
        self._per_sender = per_sender
        self._total = total
        self._timeout = timeout
        self._hold = hold
        self._cache: OrderedDict[str, OpenDocument] = OrderedDict()
        self._opening: dict[str, asyncio.Future[None]] = {}
        # Headers admitted here and being routed (envelope id → sender): they count against
        # the limits already, so headers checked at the same time cannot all pass them.
        self._admitted: dict[str, str] = {}
        self._counting = asyncio.Lock()

    def __len__(self) -> int:
        """The documents under way this replica holds at hand."""
        return len(self._cache)

    def opening(self, envelope_id: str | None) -> None:
        """A header claiming ``envelope_id`` (its message header, unverified) is being
        checked here: its chunks wait for :meth:`opened` or :meth:`not_opened`."""
        if envelope_id is not None and envelope_id not in self._opening:
            self._opening[envelope_id] = asyncio.get_running_loop().create_future()

    def not_opened(self, envelope_id: str | None) -> None:
        """The header was refused, or its processing failed: stop waiting for it, and
        release the place it was admitted to."""
        if envelope_id is not None:
            self._admitted.pop(envelope_id, None)
        self._settle(envelope_id)

    async def admit(self, header: ChunkedHeader) -> None:
        """Raise ``too_many_open_documents`` when ``header``'s document may not start now;
        its header again (a resend, a redelivery) is always admitted."""
        envelope_id = header.envelope_id
        if envelope_id in self._cache or envelope_id in self._admitted:
            return
        # Reserved before the store is read: headers checked at the same time are admitted
        # in the order they came.
        self._admitted[envelope_id] = header.sender
        try:
            if await self._store.chunked(envelope_id) is not None:
                self._admitted.pop(envelope_id, None)  # kept already: counted there
                return
            cutoff = self._clock() - self._timeout
            # Counted under the lock ``opened`` takes: a document moving from reserved to
            # kept between the two reads would be counted in neither.
            async with self._counting:
                await self._store.forget_chunked(before=cutoff)
                mine, everyone = await self._store.chunked_under_way(header.sender, since=cutoff)
                reserved = list(self._admitted)
            admitted = reserved[: reserved.index(envelope_id)]  # those reserved before it
            mine += sum(self._admitted.get(e) == header.sender for e in admitted)
            everyone += len(admitted)
            if mine >= self._per_sender or everyone >= self._total:
                limit = (
                    f"{header.sender} has {mine} chunked documents under way (the limit, "
                    f"max_open_chunked_per_sender, is {self._per_sender})"
                    if mine >= self._per_sender
                    else f"the routers have {everyone} chunked documents under way (the "
                    f"limit, max_open_chunked, is {self._total})"
                )
                raise RoutingError(
                    f"envelope {envelope_id} was not routed: {limit}; send it again once "
                    "the documents under way are finished",
                    reason=Reason.TOO_MANY_OPEN_DOCUMENTS,
                )
        except BaseException:
            self._admitted.pop(envelope_id, None)
            raise

    async def opened(
        self,
        header: ChunkedHeader,
        header_message: bytes,
        publisher: str | None,
        plan: Mapping[str, tuple[str, ...]],
    ) -> None:
        """The header was routed: kept in the store (unless kept already: nothing is reset),
        its chunks may pass from now on, on any replica."""
        try:
            async with self._counting:  # kept and no longer reserved at once, for ``admit``
                try:
                    kept = await self._store.open_chunked(
                        OpenChunked(
                            envelope_id=header.envelope_id,
                            sender=header.sender,
                            publisher=publisher,
                            header_message=header_message,
                            plan=tuple(plan.items()),
                            chunk_count=header.chunk_count,
                            opened_at=self._clock(),
                        )
                    )
                finally:
                    self._admitted.pop(header.envelope_id, None)
            self._remember(header, kept)
        finally:
            self._settle(header.envelope_id)

    async def find(self, envelope_id: str, *, hold: bool = True) -> OpenDocument | None:
        """The document ``envelope_id`` if its header was routed, waiting for the verdict on
        a header being checked here, else up to ``hold`` seconds for one routed elsewhere
        (``hold`` False: one look at the store); None when none was (yet): a chunk early,
        foreign, or of a document forgotten."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + (self._hold if hold else 0.0)
        waiting = self._opening.get(envelope_id)
        if waiting is not None:
            try:
                await asyncio.wait_for(asyncio.shield(waiting), HEADER_WAIT_SECONDS)
            except TimeoutError:
                return None
        self._forget_stale()
        delay = _FIRST_POLL
        while (document := self._cache.get(envelope_id)) is None:
            kept = await self._store.chunked(envelope_id)
            if kept is not None:
                if kept.opened_at <= self._clock() - self._timeout:
                    return None  # expired: forgotten by the next header admitted
                frame = await asyncio.to_thread(read_chunked_header, kept.header_message)
                return self._remember(frame.header, kept)
            if loop.time() + delay > deadline:
                return None
            await asyncio.sleep(delay)
            delay = min(2 * delay, _LONGEST_POLL)
        self._cache.move_to_end(envelope_id)
        return document

    async def has_passed(self, document: OpenDocument, index: int) -> bool:
        """Whether chunk ``index`` was forwarded already, by this replica or another."""
        if index not in document.passed and await self._store.chunk_has_passed(
            document.header.envelope_id, index
        ):
            document.passed.add(index)
        return index in document.passed

    async def passed(self, document: OpenDocument, index: int) -> None:
        """Chunk ``index`` was forwarded: recorded in the store, for every replica."""
        envelope_id = document.header.envelope_id
        passed = await self._store.chunk_passed(envelope_id, index)
        document.passed.add(index)
        if passed >= document.header.chunk_count:  # kept in the store: later ones duplicates
            self._cache.pop(envelope_id, None)

    def _remember(self, header: ChunkedHeader, kept: OpenChunked) -> OpenDocument:
        document = OpenDocument(
            header, kept.publisher, dict(kept.plan), kept.opened_at, set(kept.passed)
        )
        if kept.complete:
            return document  # its chunks again are duplicates: not worth a place at hand
        self._cache[header.envelope_id] = document
        while len(self._cache) > CACHED_DOCUMENTS:
            self._cache.popitem(last=False)
        return document

    def _settle(self, envelope_id: str | None) -> None:
        waiting = self._opening.pop(envelope_id, None) if envelope_id is not None else None
        if waiting is not None and not waiting.done():
            waiting.set_result(None)

    def _forget_stale(self) -> None:
        cutoff = self._clock() - self._timeout
        for envelope_id in [e for e, d in self._cache.items() if d.started <= cutoff]:
            del self._cache[envelope_id]


class WaitingChunks:
    """The chunks this replica put back behind the chunk queue to wait for their header, per
    publishing account (the ``user_id`` the broker checked), each until ``wait`` after it was
    first seen: an account may have ``per_account`` of them at a time.

    The view is this replica's: a chunk first put back here counts here until it is found
    here or its wait ends (one forwarded by another replica meanwhile counts until then), so
    with several replicas an account has at most ``per_account`` per replica waiting."""

    def __init__(self, *, per_account: int, wait: timedelta, clock: Clock) -> None:
        self._per_account = per_account
        self._wait = wait
        self._clock = clock
        # (account, envelope id, index) → when its wait ends; inserted in that order, since
        # every wait is as long.
        self._until: OrderedDict[tuple[str, str, int], datetime] = OrderedDict()
        self._counts: Counter[str] = Counter()

    def __len__(self) -> int:
        """The chunks waiting, all accounts."""
        self._expire()
        return len(self._until)

    @property
    def per_account(self) -> int:
        return self._per_account

    def count(self, account: str | None) -> int:
        """The chunks ``account`` has waiting."""
        self._expire()
        return self._counts[account or ""]

    def has_room(self, account: str | None) -> bool:
        return self.count(account) < self._per_account

    def admit(self, account: str | None, envelope_id: str, index: int) -> bool:
        """Count chunk ``index`` of ``envelope_id`` as waiting for ``account``: True, or False
        when the account has ``per_account`` waiting already (the chunk is not counted). A
        chunk waiting already is admitted again without counting twice."""
        self._expire()
        key = (account or "", envelope_id, index)
        if key in self._until:
            return True
        if self._counts[key[0]] >= self._per_account:
            return False
        self._until[key] = self._clock() + self._wait
        self._counts[key[0]] += 1
        return True

    def found(self, account: str | None, envelope_id: str, index: int) -> None:
        """The chunk's header was found (or the chunk was refused): it waits no more."""
        key = (account or "", envelope_id, index)
        if self._until.pop(key, None) is not None:
            self._uncount(key[0])

    def _expire(self) -> None:
        now = self._clock()
        while self._until:
            key, until = next(iter(self._until.items()))
            if until > now:
                break
            del self._until[key]
            self._uncount(key[0])

    def _uncount(self, account: str) -> None:
        self._counts[account] -= 1
        if self._counts[account] <= 0:
            del self._counts[account]
