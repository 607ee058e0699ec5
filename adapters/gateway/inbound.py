"""What comes in for the gateway's systems: received documents and statuses, stored before
the broker is acknowledged, and the router's events about what they sent, recorded before
they are acknowledged (the same discipline as the drop folder's, :mod:`adapters.receiving`).

A received item is acknowledged only when the loop asks for the next one, after the store
has committed it; a redelivery finds its row (the same DocId) and is not stored twice.
Content a served agency refuses is recorded in ``refused`` (the sender is told with 02 by
the client). Events update the sent rows: the router's ``routed``/``rejected``/…, and each
recipient's ``status``.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3

import structlog

from adapters.abc import Received, Refused
from adapters.client import AdapterClient
from adapters.gateway.state import GatewayState
from adapters.supervision import supervise
from backbone.edxml import EdxmlDocument
from backbone.errors import Reason
from backbone.wire import Event, EventType

__all__ = ["STATUS_NAMES", "Inbound"]

log = structlog.get_logger("adapters.gateway")

# receiveStatusDesc: what each status a recipient sends means (QCVN 102).
STATUS_NAMES = {
    "01": "arrived: the recipient's software has it",
    "02": "refused by the recipient",
    "03": "accepted: registered in the incoming book",
    "04": "assigned",
    "05": "being processed",
    "06": "completed",
    "13": "take-back requested",
    "15": "request agreed",
    "16": "request refused",
}
_WRITE_RETRY_MAX = 5.0


class Inbound:
    def __init__(self, client: AdapterClient, state: GatewayState, stopping: asyncio.Event) -> None:
        self.client = client
        self.state = state
        self.stopping = stopping

    async def receive_supervised(self) -> None:
        await supervise(
            self.receive_forever, failure="gateway.receive_failed", stopping=self.stopping
        )

    async def events_supervised(self) -> None:
        await supervise(
            self.events_forever, failure="gateway.events_failed", stopping=self.stopping
        )

    async def receive_forever(self) -> None:
        self.client.set_refusal_keeper(self.keep_refused)
        # Asking for the next item acknowledges the one before: only once it is committed.
        async for item in self.client.received():
            await asyncio.shield(self._until_stored(item))

    async def _until_stored(self, item: Received) -> None:
        """Retried while the disk refuses the write: the message stays unacknowledged here
        (a hand-back would count toward the inbox's delivery limit)."""
        delay = 0.5
        while True:
            try:
                await self.store(item)
                return
            except (OSError, sqlite3.OperationalError) as error:
                if self.stopping.is_set():
                    raise
                log.warning(
                    "gateway.state_unwritable",
                    envelope_id=item.envelope_id,
                    document_id=item.header.document_id,
                    problem=f"{type(error).__name__}: {error}",
                    retry_in=delay,
                    outcome="retry",
                )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stopping.wait(), delay)
            delay = min(delay * 2, _WRITE_RETRY_MAX)

    async def store(self, item: Received) -> bool:
        is_document = isinstance(item.message, EdxmlDocument)
        new = await self.state.run(
            lambda: self.state.store_received(
                envelope_id=item.envelope_id,
                recipient=item.recipient,
                message_type="edoc" if is_document else "status",
                document_id=item.header.document_id,
                status_code=item.header.status_code,
                from_code=item.header.sender,
                edxml=item.edxml,
                at=item.received_at,
                file=item.file,
            )
        )
        log.info(
            "gateway.received",
            envelope_id=item.envelope_id,
            document_id=item.header.document_id,
            sender=item.header.sender,
            recipient=item.recipient,
            kind="document" if is_document else "status",
            outcome="stored" if new else "already_stored",
        )
        return new

    async def keep_refused(self, refusal: Refused) -> None:
        header = refusal.header
        await self.state.run(
            lambda: self.state.keep_refused(
                envelope_id=header.envelope_id,
                recipient=refusal.recipient,
                sender=header.sender,
                document_id=header.document_id,
                reason=refusal.reason.value,
                message=refusal.message,
                at=refusal.refused_at,
            )
        )
        log.warning(
            "gateway.refused",
            envelope_id=header.envelope_id,
            document_id=header.document_id,
            sender=header.sender,
            recipient=refusal.recipient,
            outcome=refusal.reason.value,
        )

    async def events_forever(self) -> None:
        async for event in self.client.events():
            await asyncio.shield(self.record(event))

    async def record(self, event: Event) -> None:
        """An event onto the sent rows it concerns (once per ``event_id``)."""
        if event.type == EventType.STATUS:
            if event.document_id and event.sender and event.status_code:
                code = event.status_code
                await self.state.run(
                    self.state.apply_receive_status,
                    event.event_id,
                    event.document_id,
                    event.sender,
                    code,
                    STATUS_NAMES.get(code, f"status {code}"),
                    event.at,
                )
            return
        outcome = _send_outcome(event)
        if outcome is None or event.envelope_id is None:
            return
        status, description = outcome
        await self.state.run(
            self.state.apply_send_outcome,
            event.event_id,
            event.envelope_id,
            # Each event names the recipients it is about: all of them, or, for a document
            # routed while one recipient's inbox was full, those that got it (``routed``)
            # and those it is parked for (``dead_lettered``, inbox_full).
            list(event.recipients),
            status,
            description,
        )


def _send_outcome(event: Event) -> tuple[str, str] | None:
    """sendStatus and sendStatusDesc for a router event about a sent envelope."""
    reason = f"[{event.reason.value}] " if event.reason is not None else ""
    match event.type:
        case EventType.ROUTED:
            return "routed", "delivered to the recipient's inbox by the router"
        case EventType.DUPLICATE if event.original_outcome == "routed":
            return "routed", "delivered to the recipient's inbox by the router"
        case EventType.DEAD_LETTERED if event.reason is Reason.INBOX_FULL:
            return "waiting", f"{reason}{event.message or 'parked until the operator delivers it'}"
        case EventType.REJECTED | EventType.DEAD_LETTERED:
            return "fail", f"{reason}{event.message or 'refused by the router'}"
        case EventType.UNROUTABLE:
            return "waiting", f"{reason}{event.message or 'parked until the operator replays it'}"
    return None
