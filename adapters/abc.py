"""The adapter's interfaces and value objects, in one place.

An adapter is the agency's side of the backbone: one per agency, or one per hub (LGSP)
serving a subtree of agencies, each served agency with its own key and certificate, the
adapter with one broker account. ``client`` implements :class:`Adapter` (the Python API
software embeds); ``dropfolder`` builds the folder integration on it, through this
protocol only.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Protocol

from backbone.edxml import EdxmlDocument, EdxmlStatus, StatusCode
from backbone.envelope import EnvelopeHeader
from backbone.errors import Reason
from backbone.wire import Event, EventType

__all__ = [
    "Adapter",
    "BeforePublish",
    "Event",
    "EventType",
    "Receipt",
    "Received",
    "RefusalKeeper",
    "Refused",
    "Sealed",
]


@dataclass(frozen=True, slots=True)
class Sealed:
    """A signed and encrypted envelope, ready to publish. Keep ``body`` to resend after a
    crash: the same bytes under the same envelope id are answered as a duplicate, while a
    fresh seal of the same document would be refused as different content."""

    header: EnvelopeHeader
    body: bytes = field(repr=False)


@dataclass(frozen=True, slots=True)
class Receipt:
    """What :meth:`Adapter.send` returns once the broker confirmed the envelope."""

    envelope_id: str
    document_id: str
    sender: str
    recipients: tuple[str, ...]
    sent_at: datetime


@dataclass(frozen=True, slots=True)
class Received:
    """A document or status for one served agency, decrypted and with both signatures
    verified. ``edxml`` is exactly what the sender signed (its XML-DSig included).

    A document that came in chunks (docs/large-documents.md) is handed over as a file, not
    in memory: ``file`` is the verified edXML on disk and ``edxml`` is empty. The file is
    the adapter's: it stays until the consumer asks for the next item (which acknowledges
    this one), so copy or hard-link it before that (:meth:`read_edxml` reads it whole)."""

    header: EnvelopeHeader
    recipient: str  # the served agency it is for
    edxml: bytes = field(repr=False)  # plaintext: never in reprs or logs; empty with ``file``
    message: EdxmlDocument | EdxmlStatus = field(repr=False)
    signer_certificate_pem: str  # the verified sender certificate
    received_at: datetime
    # The closed code the document was addressed to, when it reached ``recipient`` as that
    # code's successor: forwarded by the router, opened with the inherited key
    # (docs/directory.md, "Routing through a change"). None: addressed to ``recipient``.
    forwarded_from: str | None = None
    file: Path | None = None  # a chunked document's verified edXML, on disk

    @property
    def envelope_id(self) -> str:
        return self.header.envelope_id

    def read_edxml(self) -> bytes:
        """The edXML, from memory or, for a document that came in chunks, from its file."""
        return self.edxml if self.file is None else self.file.read_bytes()


@dataclass(frozen=True, slots=True)
class Refused:
    """An authentic envelope (the router checked it and its header signature verified
    again here) whose content one served agency refuses: the key wrap does not open, or the
    edXML inside is malformed, unsafe, invalid, unsigned, or says something other than the
    signed header (another From, DocumentId, kind or recipient list).

    The sender is told with status 02 (for documents; statuses are never answered) whose
    Description starts with ``[<reason>]``. ``body`` is the envelope as it arrived
    (encrypted); ``edxml`` the decrypted content when decryption got that far. Both are
    hostile input: keep them, never parse them again without the hardened parser."""

    header: EnvelopeHeader
    recipient: str  # the served agency that refuses it
    reason: Reason
    message: str
    body: bytes = field(repr=False)
    edxml: bytes | None = field(repr=False)  # plaintext: never in reprs or logs
    refused_at: datetime


# Called with a sealed envelope's header and its edXML as read, before it is published;
# raising publishes nothing (the sender's own checks on what it sends).
BeforePublish = Callable[[EnvelopeHeader, EdxmlDocument | EdxmlStatus], Awaitable[None]]

# Stores a refusal durably (the drop folder writes ``rejected/``); raising sends the
# envelope back to the queue, to be refused again later.
RefusalKeeper = Callable[[Refused], Awaitable[None]]


class Adapter(Protocol):
    def seal(self, edxml: bytes) -> Sealed:
        """Validate the edXML, sign it (XML-DSig) with its sender's key, encrypt it for every
        recipient (certificates from the directory). Raises a BackboneError naming what is
        wrong (EdxmlError with line and path for invalid edXML)."""
        ...

    async def publish(self, sealed: Sealed) -> Receipt:
        """Publish with a publisher confirm; returns once the broker has it."""
        ...

    async def send(self, edxml: bytes) -> Receipt:
        """``publish(seal(edxml))``."""
        ...

    async def send_file(
        self,
        path: Path,
        *,
        before_publish: BeforePublish | None = None,
        resume_key: str | None = None,
    ) -> Receipt:
        """Send the edXML in the file at ``path``; one larger than ``chunk_bytes`` is read
        from disk and travels in chunks. ``before_publish`` sees the sealed envelope's
        header and the edXML as read, and may raise to send nothing. A chunked send is
        kept in the staging directory until every message is confirmed: a send of the same
        ``resume_key`` (by default the path, as last modified) that stopped half-way, even
        in a process since killed, is finished instead of sealed again."""
        ...

    def travels_chunked(self, size: int) -> bool:
        """Whether an edXML of ``size`` bytes travels as a chunked envelope."""
        ...

    async def send_status(
        self,
        document_id: str,
        code: StatusCode,
        description: str | None = None,
        *,
        sender: str | None = None,
    ) -> Receipt:
        """Send a processing status about a received document back to its sender.
        ``sender``: which served agency answers (needed only by hubs)."""
        ...

    def received(self) -> AsyncIterator[Received]:
        """Documents and statuses as they arrive. An item is acknowledged to the broker only
        when the consumer asks for the next one (so a crash before that redelivers it)."""
        ...

    async def acknowledge_arrival(self, received: Received) -> Receipt | None:
        """Send status 01 (arrived) for a received document, from the served agency it was
        for, once the consumer has stored it; None for a status (statuses are never
        answered)."""
        ...

    def set_refusal_keeper(self, keeper: RefusalKeeper | None) -> None:
        """Where content a served agency refuses is kept from now on (:class:`Refused`);
        None: nowhere (the envelope is dead-lettered instead)."""
        ...

    def events(self) -> AsyncIterator[Event]:
        """What became of what the served agencies sent, as the router (and tracking) tell
        it: ``routed``, ``rejected`` (with ``reason`` and ``message``), ``duplicate``,
        ``unroutable``, ``dead_lettered``, ``status`` (a recipient's status about one of
        their documents) and ``overdue`` :class:`Event` s. An event is acknowledged to the
        broker only when the consumer asks for the next one, so none is lost before it is
        recorded; redeliveries repeat ``event_id``."""
        ...
