"""Receiving chunked documents: their header and chunk messages staged on disk
(:class:`~backbone.envelope.staging.Staging`) until the document is whole, then decrypted
into a file atomically and judged as a single envelope is (:meth:`EnvelopeOpener.open_staged`)
before anything is handed out (docs/large-documents.md).

Each header or chunk message is acknowledged once staged (fsynced), except the one that
completes a document: it yields the document's items and is acknowledged as any envelope
is, once the consumer has taken them. Messages are staged one at a time, in the order they
were consumed, so a header is staged before the chunks the router forwarded after it.
"""

from __future__ import annotations

import asyncio
import os
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Final

import structlog

from adapters.abc import Refused
from adapters.config import AdapterConfig
from adapters.opening import EnvelopeOpener, Opened
from adapters.process_lock import lock_for_this_process
from backbone.clock import Clock
from backbone.durable import write_atomically
from backbone.envelope.chunk_wire import (
    VerifiedChunkedHeader,
    read_chunk,
    verify_chunked_header,
)
from backbone.envelope.staging import Expired, Staging
from backbone.errors import StagingError
from backbone.pki.validation import CertificateValidator
from backbone.wire import FORM_CHUNKED_HEADER

__all__ = ["ChunkedInbox"]

log = structlog.get_logger("adapters.client")

_INCOMING: Final = "incoming"
_DELIVERED: Final = "delivered"
_HEADER_FILE: Final = "header"  # where Staging keeps a document's header message
_REFUSED_KEPT: Final = 1024
_ENVELOPE_ID: Final = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


class ChunkedInbox:
    """The staging of one adapter's incoming chunked documents."""

    def __init__(
        self,
        config: AdapterConfig,
        opener: EnvelopeOpener,
        validator: CertificateValidator,
        clock: Clock,
    ) -> None:
        root = config.staging_root()
        self._root = root
        self._lock_fd: int | None = None
        self._incoming = root / _INCOMING
        self._staging = Staging(
            self._incoming,
            budget_bytes=config.staging_budget_bytes,
            timeout=timedelta(seconds=config.staging_timeout_seconds),
            clock=clock,
        )
        self._delivered = root / _DELIVERED
        self._delivered.mkdir(parents=True, exist_ok=True)
        self._limits = config.chunk_limits
        self._opener = opener
        self._validator = validator
        self._headers: dict[str, VerifiedChunkedHeader] = {}
        # Documents refused at their header (staging_full): their chunks are dropped, not
        # dead-lettered one by one. Bounded: the most recent ones only.
        self._refused: dict[str, None] = {}
        self._lock = asyncio.Lock()

    @property
    def staging(self) -> Staging:
        return self._staging

    def claim(self) -> None:
        """Hold the staging directory for this process while the client runs: two processes
        staging in one directory would delete each other's documents (restart clean-up,
        expiry) and overrun its budget."""
        if self._lock_fd is None:
            self._lock_fd = lock_for_this_process(
                self._root / "lock",
                refusal=f"another adapter process is already staging in {self._root}: give "
                "each adapter process its own staging_dir",
            )

    def release(self) -> None:
        self._staging.close()
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    async def take(self, body: bytes, form: str) -> Opened | None:
        """Stage a header or chunk message; what the document yields once it is whole, None
        while it is not (or for a duplicate chunk). Raises what refuses the message."""
        async with self._lock:  # in consumption order: a header before its chunks
            return await asyncio.to_thread(self._take, body, form)

    async def expire(self) -> list[Expired]:
        """Delete the documents incomplete past the timeout (``Staging.expire``)."""
        async with self._lock:
            expired = await asyncio.to_thread(self._staging.expire)
        for document in expired:
            self._headers.pop(document.header.envelope_id, None)
        return expired

    def _take(self, body: bytes, form: str) -> Opened | None:
        if form == FORM_CHUNKED_HEADER:
            # Never trust the broker or the router: verified here again.
            verified = verify_chunked_header(body, self._validator, self._limits)
            ours = self._opener.ours(verified.header)  # NotARecipientError: nothing staged
            try:
                # The key too, so each chunk is decrypted as it is staged (a cache: the
                # document is still judged whole before anything is handed out).
                self._staging.begin(verified, content_key=self._opener.content_key(verified))
            except StagingError as error:
                # Nothing kept; authentic, so its sender is told (status 02, staging_full).
                self._refused[verified.header.envelope_id] = None
                while len(self._refused) > _REFUSED_KEPT:
                    del self._refused[next(iter(self._refused))]
                return Opened([], [_refused(verified, code, error, body) for code in ours])
            self._headers[verified.header.envelope_id] = verified
            return None
        chunk = read_chunk(body)
        if chunk.envelope_id in self._refused:
            log.info(
                "adapter.chunk_of_refused_dropped",
                envelope_id=chunk.envelope_id,
                chunk=chunk.index,
                outcome="dropped",
            )
            return None
        if self._document_file(chunk.envelope_id).exists():
            return self._open_again(chunk.envelope_id)
        if not self._staging.accept(chunk):  # ChunkError: foreign, altered…
            log.info(
                "adapter.chunk_duplicate_dropped",
                envelope_id=chunk.envelope_id,
                chunk=chunk.index,
                outcome="duplicate",
            )
            return None
        envelope_id = chunk.envelope_id
        if not self._staging.is_complete(envelope_id):
            return None
        verified = self._headers.get(envelope_id) or self._verified_again(envelope_id)
        self._headers.pop(envelope_id, None)
        # Kept beside the delivered document until its message is acknowledged (:meth:`done`),
        # so that a redelivery of that message opens it again.
        kept = self._header_file(envelope_id)
        # Flushed now; its name is flushed with the delivered document's (same directory).
        write_atomically(
            kept, verified.body, temporary=kept.with_suffix(".tmp"), sync_directory=False
        )

        def deliver(content_key: bytes) -> Path:
            # Decrypted in order into a file renamed into place only when whole.
            return self._staging.deliver(envelope_id, content_key, self._document_file(envelope_id))

        log.info(
            "adapter.chunked_complete",
            envelope_id=envelope_id,
            document_id=verified.header.document_id,
            sender=verified.header.sender,
            chunks=verified.header.chunk_count,
            outcome="staged",
        )
        return self._opener.open_staged(verified, deliver)

    def done(self, envelope_id: str | None) -> None:
        """The message that completed ``envelope_id`` was acknowledged: its delivered
        document and header are deleted."""
        if envelope_id is not None and _ENVELOPE_ID.match(envelope_id):
            self._document_file(envelope_id).unlink(missing_ok=True)
            self._header_file(envelope_id).unlink(missing_ok=True)

    def _open_again(self, envelope_id: str) -> Opened:
        """A chunk of a document delivered but whose last message was never acknowledged
        (the consumer stopped, the client crashed): the document is opened again from the
        delivered file, and handed out again unless this client handed it out already."""
        header = self._header_file(envelope_id).read_bytes()
        verified = verify_chunked_header(header, self._validator, self._limits)
        log.info("adapter.chunked_reopened", envelope_id=envelope_id, outcome="redelivered")
        return self._opener.open_staged(verified, lambda _key: self._document_file(envelope_id))

    def _document_file(self, envelope_id: str) -> Path:
        return self._delivered / f"{envelope_id}.xml"

    def _header_file(self, envelope_id: str) -> Path:
        return self._delivered / f"{envelope_id}.header"

    def _verified_again(self, envelope_id: str) -> VerifiedChunkedHeader:
        """After a restart: the header message Staging kept, verified once more."""
        kept = self._incoming / envelope_id / _HEADER_FILE
        return verify_chunked_header(kept.read_bytes(), self._validator, self._limits)


def _refused(
    verified: VerifiedChunkedHeader, recipient: str, error: StagingError, body: bytes
) -> Refused:
    return Refused(
        header=verified.header,
        recipient=recipient,
        reason=error.reason,
        message=error.message,
        body=body,
        edxml=None,
        refused_at=datetime.now(UTC),
    )
