"""The chunked documents under way through this router replica: what it keeps of each
between its header and its last chunk (docs/large-documents.md).

Only the signed header (its chunk digests: at most 4096 × 32 bytes), where its copies go
and which chunk indexes have passed are kept, never a chunk: the router checks each chunk
against the header (:func:`check_chunk`) and forwards it. A header is admitted only while
its sender has fewer than ``per_sender`` documents under way and the replica fewer than
``total`` (``too_many_open_documents``), and a document whose chunks stop coming is
forgotten after ``timeout`` (its later chunks are then ``chunk_foreign``), so thousands of
half-sent documents cannot grow the router's memory.

Chunks are consumed concurrently with their header: a chunk whose header is being checked
waits for its verdict (:meth:`OpenDocuments.opening`) rather than being refused as foreign.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Final

from backbone.clock import Clock
from backbone.envelope.chunked import ChunkedHeader
from backbone.errors import Reason, RoutingError

__all__ = ["OpenDocument", "OpenDocuments"]

DEFAULT_PER_SENDER: Final = 64
DEFAULT_TOTAL: Final = 4096
DEFAULT_TIMEOUT: Final = timedelta(hours=1)
# How long a chunk waits for the verdict on a header consumed at the same time.
HEADER_WAIT_SECONDS: Final = 30.0


@dataclass(slots=True)
class OpenDocument:
    """A chunked document whose header was routed: where its chunks go."""

    header: ChunkedHeader
    publisher: str | None  # the broker account that published the header
    plan: Mapping[str, tuple[str, ...]]
    started: datetime
    passed: set[int] = field(default_factory=set)

    @property
    def complete(self) -> bool:
        return len(self.passed) == self.header.chunk_count


class OpenDocuments:
    def __init__(
        self,
        *,
        clock: Clock,
        per_sender: int = DEFAULT_PER_SENDER,
        total: int = DEFAULT_TOTAL,
        timeout: timedelta = DEFAULT_TIMEOUT,
    ) -> None:
        self._clock = clock
        self._per_sender = per_sender
        self._total = total
        self._timeout = timeout
        self._open: dict[str, OpenDocument] = {}
        self._opening: dict[str, asyncio.Future[None]] = {}
        # Headers admitted and being routed (envelope id → sender): they count against the
        # limits already, so headers checked at the same time cannot all pass them.
        self._admitted: dict[str, str] = {}

    def __len__(self) -> int:
        return len(self._open)

    def opening(self, envelope_id: str | None) -> None:
        """A header claiming ``envelope_id`` (its message header, unverified) is being
        checked: its chunks wait for :meth:`opened` or :meth:`not_opened`."""
        if envelope_id is not None and envelope_id not in self._opening:
            self._opening[envelope_id] = asyncio.get_running_loop().create_future()

    def not_opened(self, envelope_id: str | None) -> None:
        """The header was refused, or its processing failed: stop waiting for it, and
        release the place it was admitted to."""
        if envelope_id is not None:
            self._admitted.pop(envelope_id, None)
        self._settle(envelope_id)

    def admit(self, header: ChunkedHeader) -> None:
        """Raise ``too_many_open_documents`` when ``header``'s document may not start now."""
        self._forget_stale()
        if header.envelope_id in self._open or header.envelope_id in self._admitted:
            return  # its header again (a redelivery): already counted
        senders = [d.header.sender for d in self._open.values()] + list(self._admitted.values())
        mine = senders.count(header.sender)
        if mine >= self._per_sender or len(senders) >= self._total:
            limit = (
                f"{header.sender} has {mine} chunked documents under way (the limit, "
                f"max_open_chunked_per_sender, is {self._per_sender})"
                if mine >= self._per_sender
                else f"this router has {len(senders)} chunked documents under way (the "
                f"limit, max_open_chunked, is {self._total})"
            )
            raise RoutingError(
                f"envelope {header.envelope_id} was not routed: {limit}; send it again once "
                "the documents under way are finished",
                reason=Reason.TOO_MANY_OPEN_DOCUMENTS,
            )
        self._admitted[header.envelope_id] = header.sender

    def opened(
        self, header: ChunkedHeader, publisher: str | None, plan: Mapping[str, tuple[str, ...]]
    ) -> None:
        """The header was routed: its chunks may pass from now on."""
        if header.envelope_id not in self._open:
            self._open[header.envelope_id] = OpenDocument(header, publisher, plan, self._clock())
        self._admitted.pop(header.envelope_id, None)
        self._settle(header.envelope_id)

    async def find(self, envelope_id: str) -> OpenDocument | None:
        """The document ``envelope_id`` if its header was routed (waiting for a header being
        checked at this moment); None when no such header is known: a foreign chunk."""
        waiting = self._opening.get(envelope_id)
        if waiting is not None:
            try:
                await asyncio.wait_for(asyncio.shield(waiting), HEADER_WAIT_SECONDS)
            except TimeoutError:
                return None
        return self._open.get(envelope_id)

    def passed(self, document: OpenDocument, index: int) -> None:
        """Chunk ``index`` was forwarded; the document is forgotten once every chunk was."""
        document.passed.add(index)
        if document.complete:
            self._open.pop(document.header.envelope_id, None)

    def _settle(self, envelope_id: str | None) -> None:
        waiting = self._opening.pop(envelope_id, None) if envelope_id is not None else None
        if waiting is not None and not waiting.done():
            waiting.set_result(None)

    def _forget_stale(self) -> None:
        cutoff = self._clock() - self._timeout
        for envelope_id in [e for e, d in self._open.items() if d.started <= cutoff]:
            del self._open[envelope_id]
