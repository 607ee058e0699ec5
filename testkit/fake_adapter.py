"""A hand-written, in-memory :class:`~adapters.abc.Adapter` for tests of what is built on
the protocol (the drop folder): it seals for real with a development PKI (real edXML
validation, real envelopes), while publishing and receiving stay in memory.

mypy checks it against the protocol (:func:`_is_an_adapter`), and
``tests/test_adapter_contract.py`` runs the same behavioural tests on it and on the real
``AdapterClient``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from adapters.abc import Adapter, BeforePublish, Event, Receipt, Received, RefusalKeeper, Sealed
from backbone.edxml import EdxmlDocument, EdxmlStatus, StatusCode, validate
from backbone.envelope import Kind, read_frame, seal
from backbone.errors import BrokerUnavailableError, Reason, RoutingError
from testkit.pki import DevPki

__all__ = ["FakeAdapter"]

G22 = "000.00.00.G22"


@dataclass
class FakeAdapter:
    """Seals for real with the dev PKI; publishing and receiving are in memory."""

    pki: DevPki
    served: tuple[str, ...] = (G22,)
    broker_down_for: int = 0  # this many publishes fail as if the broker were away
    published: list[bytes] = field(default_factory=list)
    sealed: int = 0
    statuses: list[tuple[str, StatusCode, str | None]] = field(default_factory=list)
    trace: list[str] = field(default_factory=list)  # order of next-item requests and 01s
    incoming: asyncio.Queue[Received | None] = field(default_factory=asyncio.Queue)
    # What the router would say about what this adapter sent (None ends events()).
    router_events: asyncio.Queue[Event | None] = field(default_factory=asyncio.Queue)
    events_taken: list[str] = field(default_factory=list)  # event ids the consumer took
    on_status: Callable[[], None] | None = None
    keep_refused: RefusalKeeper | None = None
    chunk_bytes: int | None = None  # files larger than this go through send_file

    def seal(self, edxml: bytes) -> Sealed:
        message = validate(edxml)
        if message.sender.organ_id not in self.served:
            raise RoutingError(
                f"From {message.sender.organ_id} is not served here",
                reason=Reason.PUBLISHER_MISMATCH,
            )
        self.sealed += 1
        return Sealed(read_frame(body := self.envelope(message, edxml)).header, body)

    def envelope(self, message: EdxmlDocument | EdxmlStatus, edxml: bytes) -> bytes:
        if isinstance(message, EdxmlDocument):
            recipients = [organ.organ_id for organ in message.recipients]
            doc_id, business, code = message.document_id, 0, None
        else:
            recipients = [message.response_for.organ_id]
            doc_id, business, code = message.response_for.document_id, None, message.status_code
        return seal(
            edxml,
            self.pki.parties(
                Kind(message.kind.value),
                message.sender.organ_id,
                recipients,
                document_id=doc_id,
                business_type=business,
                status_code=code.value if code else None,
            ),
        )

    async def publish(self, sealed: Sealed) -> Receipt:
        if self.broker_down_for:
            self.broker_down_for -= 1
            raise BrokerUnavailableError("no confirm (ConnectionError)")
        self.published.append(sealed.body)
        header = sealed.header
        return Receipt(
            header.envelope_id,
            header.document_id,
            header.sender,
            tuple(header.recipients),
            datetime.now(UTC),
        )

    async def send(self, edxml: bytes) -> Receipt:
        return await self.publish(self.seal(edxml))

    def travels_chunked(self, size: int) -> bool:
        return self.chunk_bytes is not None and size > self.chunk_bytes

    async def send_file(
        self,
        path: Path,
        *,
        before_publish: BeforePublish | None = None,
        resume_key: str | None = None,
    ) -> Receipt:
        """Sealed whole in memory (a fake: the real one streams a large file in chunks and
        keeps the send under ``resume_key``)."""
        edxml = path.read_bytes()
        sealed = self.seal(edxml)
        if before_publish is not None:
            await before_publish(sealed.header, validate(edxml))
        return await self.publish(sealed)

    async def send_status(
        self,
        document_id: str,
        code: StatusCode,
        description: str | None = None,
        *,
        sender: str | None = None,
    ) -> Receipt:
        self.statuses.append((document_id, code, sender))
        self.trace.append(f"status {code.value}")
        if self.on_status is not None:
            self.on_status()
        return Receipt("e", document_id, sender or "", (), datetime.now(UTC))

    async def received(self) -> AsyncIterator[Received]:
        while (item := await self.incoming.get()) is not None:
            yield item
            self.trace.append(f"next after {item.envelope_id}")

    async def acknowledge_arrival(self, received: Received) -> Receipt | None:
        if not isinstance(received.message, EdxmlDocument):
            return None
        return await self.send_status(
            received.header.document_id, StatusCode.ARRIVED, sender=received.recipient
        )

    def set_refusal_keeper(self, keeper: RefusalKeeper | None) -> None:
        self.keep_refused = keeper

    async def events(self) -> AsyncIterator[Event]:
        """Like the real one: an event counts as taken (acknowledged) only when the
        consumer asks for the next."""
        while (event := await self.router_events.get()) is not None:
            yield event
            self.events_taken.append(event.event_id)


def _is_an_adapter(pki: DevPki) -> Adapter:
    return FakeAdapter(pki)  # mypy: FakeAdapter implements every method of the protocol
