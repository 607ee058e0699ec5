"""What the router puts in quarantine for a refused envelope: the body, or a record of it.

A refused body is kept whole only when it is small (``keep_body_bytes``, 64 KiB by default)
and its header could be read: then an operator can look at the very envelope a sender got
wrong. Anything larger or unreadable is kept as a :class:`~backbone.wire.QuarantineRecord`
(header as far as read, SHA-256, size, reason, message, publisher), so a sender cannot park
its bulk on the broker; the quarantine's policy bounds the queue itself.
"""

from __future__ import annotations

import asyncio
import hashlib

import aio_pika

from backbone.router.pipeline import Reject
from backbone.wire.quarantine import (
    MAX_MESSAGE_CHARS,
    QuarantinedHeader,
    QuarantineRecord,
    quarantine_message,
)

__all__ = ["DEFAULT_KEEP_BODY_BYTES", "Quarantine"]

DEFAULT_KEEP_BODY_BYTES = 64 * 1024
_HASH_INLINE = 1 << 20  # larger bodies are hashed in a thread, off the event loop


class Quarantine:
    def __init__(self, *, keep_body_bytes: int = DEFAULT_KEEP_BODY_BYTES) -> None:
        if keep_body_bytes < 0:
            raise ValueError(f"keep_body_bytes must be 0 or more; got {keep_body_bytes}")
        self.keep_body_bytes = keep_body_bytes

    def keeps_body(self, decision: Reject, size: int) -> bool:
        """Whether the body itself is kept: small, and its header was read."""
        return decision.header is not None and size <= self.keep_body_bytes

    async def message(
        self, decision: Reject, body: bytes, *, publisher: str | None
    ) -> aio_pika.Message:
        """The message to publish to the quarantine queue for ``decision`` about ``body``."""
        if len(body) <= _HASH_INLINE:
            digest = hashlib.sha256(body).hexdigest()
        else:  # hashlib lets go of the GIL on large inputs
            digest = (await asyncio.to_thread(hashlib.sha256, body)).hexdigest()
        header = decision.header
        record = QuarantineRecord(
            reason=decision.reason,
            message=decision.message[:MAX_MESSAGE_CHARS],
            publisher=publisher or None,
            body_sha256=digest,
            body_bytes=len(body),
            header=QuarantinedHeader.of(header) if header is not None else None,
            header_authenticated=decision.authenticated,
        )
        kept = body if self.keeps_body(decision, len(body)) else None
        return quarantine_message(record, kept, header)
