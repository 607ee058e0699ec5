"""What the broker hands back to the router: copies of parked envelopes.

An envelope nothing was bound for is parked (``unroutable``); one that kept failing, at
the router or at a recipient's adapter, is dead-lettered. The router consumes a copy of
each, records the outcome and tells whoever should know.
"""

from __future__ import annotations

from collections.abc import Callable, Collection

import structlog
from aio_pika.abc import AbstractIncomingMessage

from backbone.directory import Directory
from backbone.envelope import EnvelopeHeader, read_frame
from backbone.errors import BackboneError, Reason
from backbone.observability import metrics
from backbone.router.abc import Emit
from backbone.router.parties import party_to_tell
from backbone.router.retries import is_router_dead_letter, read_attempts
from backbone.store.abc import Outcome, Store
from backbone.wire import Event, EventType

__all__ = ["ParkedNotices"]

log = structlog.get_logger("backbone.router.service")  # the router's log lines, as before


class ParkedNotices:
    """Handles the copies on the ``unroutable`` and ``dead-letter`` notify queues."""

    def __init__(
        self,
        *,
        store: Store,
        directory: Callable[[], Directory],
        inbound_queues: Collection[str],
        emit: Emit,
        router_account: str,
    ) -> None:
        """``router_account``: the router's broker login, the ``user_id`` of the envelopes
        it dead-letters itself (``router.retries``); ``directory``: the running version."""
        self._store = store
        self._directory = directory
        self._inbound_queues = frozenset(inbound_queues)  # envelopes' and chunks' queues
        self._emit = emit
        self._router_account = router_account

    async def on_unroutable(self, message: AbstractIncomingMessage) -> None:
        """A copy of a parked envelope: nothing was bound for its routing key."""
        metrics.UNROUTABLE.inc()
        await self._report(
            message,
            EventType.UNROUTABLE,
            Outcome.UNROUTABLE,
            Reason.UNROUTABLE,
            f"nothing is bound for {message.routing_key}: parked",
            publisher=message.user_id,
            authenticated=True,  # the router published it, after checking its sender
        )

    async def on_dead_letter(self, message: AbstractIncomingMessage) -> None:
        """A copy of a dead-lettered envelope: it kept failing the router, or (from an
        inbox) the recipient's adapter."""
        metrics.DEAD_LETTERED.inc()
        if is_router_dead_letter(message, router_account=self._router_account):
            # The router's own count reached the limit: the publisher is in its headers.
            attempts = read_attempts(message, router_account=self._router_account)
            await self._report(
                message,
                EventType.DEAD_LETTERED,
                Outcome.DEAD_LETTERED,
                Reason.POISON,
                f"processing failed {attempts.failed} times; kept in the dead-letter queue",
                publisher=attempts.publisher,
                authenticated=False,  # it never made it through the checks
            )
            return
        queue = _dead_lettered_from(message)
        if queue in self._inbound_queues or queue is None:
            # The broker's delivery limit (a backstop: deliveries taken back without a
            # verdict, e.g. a router killed while holding them).
            await self._report(
                message,
                EventType.DEAD_LETTERED,
                Outcome.DEAD_LETTERED,
                Reason.POISON,
                "processing kept failing; kept in the dead-letter queue",
                publisher=message.user_id,
                authenticated=False,  # it never made it through the checks
            )
            return
        # Routed already (its outcome stays ``routed``): the sender, whose signature the
        # router checked on the way in, learns that the recipient never took it.
        await self._report(
            message,
            EventType.DEAD_LETTERED,
            None,
            Reason.POISON,
            f"the recipient's adapter kept failing to take it from {queue}; kept in the "
            "dead-letter queue",
            publisher=message.user_id,
            authenticated=True,
        )

    async def _report(
        self,
        message: AbstractIncomingMessage,
        event_type: EventType,
        outcome: Outcome | None,
        reason: Reason,
        text: str,
        *,
        publisher: str | None,
        authenticated: bool,
    ) -> None:
        """Record ``outcome`` (None: leave the recorded one) and tell who should know."""
        async with message.process(requeue=True):
            header = _header_or_none(message.body)
            if header is not None and outcome is not None:
                await self._store.finish(header.envelope_id, outcome, reason=reason)
            party = party_to_tell(self._directory(), header, publisher, authenticated=authenticated)
            if party is not None:
                await self._emit(
                    Event.about(event_type, header, party=party, reason=reason, message=text)
                )
            log.warning(
                f"router.{event_type.value}",
                envelope_id=header.envelope_id if header else None,
                document_id=header.document_id if header else None,
                publisher=publisher,
                routing_key=message.routing_key,
                outcome=event_type.value,
                queue=_dead_lettered_from(message),
            )


def _dead_lettered_from(message: AbstractIncomingMessage) -> str | None:
    """The queue that last dead-lettered ``message`` (its ``x-death`` header), if any."""
    deaths = (message.headers or {}).get("x-death")
    if isinstance(deaths, list) and deaths and isinstance(deaths[0], dict):
        queue = deaths[0].get("queue")
        return queue if isinstance(queue, str) else None
    return None


def _header_or_none(body: bytes) -> EnvelopeHeader | None:
    try:
        return read_frame(body).header
    except BackboneError:
        return None
