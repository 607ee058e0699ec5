"""Statuses the adapter sends: any status about a received document (``send_status``), the
take-back request (13), the automatic 01 ("arrived"), and 02 ("refused") with the reason
when a served agency refuses an envelope's content.

Every status is built as edXML (timestamped in Vietnam time, :func:`backbone.clock.edxml_now`)
and sealed and published like any document, by :class:`~adapters.sending.EnvelopeSender`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

import structlog

from adapters.abc import Receipt, Received, Refused, Sealed
from adapters.redeliveries import DeliveredMemory
from adapters.sending import EnvelopeSender
from backbone.clock import edxml_now
from backbone.edxml import (
    EdxmlDocument,
    EdxmlStatus,
    Organization,
    ResponseFor,
    StaffInfo,
    StatusCode,
    build,
)
from backbone.edxml.document_id import DocumentId
from backbone.envelope import Kind
from backbone.errors import BackboneError

__all__ = ["REFUSAL_NOTE_LIMIT", "StatusSender"]

log = structlog.get_logger("adapters.client")

REFUSAL_NOTE_LIMIT: Final = 500  # characters of a status 02 Description


class StatusSender:
    """Builds, seals and publishes statuses through ``sender``; a 01 sent is noted in
    ``memory`` so the receive loop does not send it again."""

    def __init__(self, sender: EnvelopeSender, memory: DeliveredMemory) -> None:
        self._sender = sender
        self._memory = memory

    def seal_status(
        self,
        document_id: str,
        code: StatusCode,
        description: str | None = None,
        *,
        sender: str | None = None,
        staff: StaffInfo | None = None,
    ) -> Sealed:
        """The status :meth:`send_status` sends, sealed but not published."""
        answering = self._sender.answering_agency(sender)
        original_sender = _sender_of(document_id)
        status = EdxmlStatus(
            sender=Organization(organ_id=answering),
            response_for=ResponseFor(organ_id=original_sender, document_id=document_id),
            status_code=StatusCode(code),
            timestamp=edxml_now(),
            staff_info=staff,
            description=description,
        )
        return self._sender.seal(build(status))

    async def send_status(
        self,
        document_id: str,
        code: StatusCode,
        description: str | None = None,
        *,
        sender: str | None = None,
        staff: StaffInfo | None = None,
    ) -> Receipt:
        return await self._sender.publish(
            self.seal_status(document_id, code, description, sender=sender, staff=staff)
        )

    async def request_take_back(
        self,
        document_id: str,
        recipients: Sequence[str],
        reason: str,
        *,
        staff: StaffInfo | None = None,
    ) -> Receipt:
        """Status 13: the original sender asks ``recipients`` to give a document back. They
        answer with 15 (agreed) or 16 (refused) through :meth:`send_status`."""
        original_sender = self._sender.identity(_sender_of(document_id)).organ_code
        status = EdxmlStatus(
            sender=Organization(organ_id=original_sender),
            response_for=ResponseFor(organ_id=original_sender, document_id=document_id),
            status_code=StatusCode.TAKE_BACK_REQUESTED,
            timestamp=edxml_now(),
            staff_info=staff,
            description=reason,
        )
        return await self._sender.publish(self._sender.seal(build(status), recipients=recipients))

    async def acknowledge_arrival(self, received: Received) -> Receipt | None:
        """Send status 01 (arrived) for a delivered document, from the agency it was for.
        Statuses are never answered: returns None for them."""
        if not isinstance(received.message, EdxmlDocument):
            return None
        receipt = await self.send_status(
            received.message.document_id, StatusCode.ARRIVED, sender=received.recipient
        )
        self._memory.mark_answered((received.envelope_id, received.recipient))
        return receipt

    async def answer_refusal(self, refusal: Refused) -> bool:
        """Status 02 from the refusing agency to the envelope's (authenticated) sender, with
        the reason. Raises BrokerUnavailableError (retry later); False when no answer is
        possible: a status is never answered, and a DocumentId that cannot be put in a
        status is logged instead."""
        header = refusal.header
        if header.kind != Kind.DOCUMENT:
            return False
        try:
            status = EdxmlStatus(
                sender=Organization(organ_id=refusal.recipient),
                response_for=ResponseFor(organ_id=header.sender, document_id=header.document_id),
                status_code=StatusCode.REJECTED,
                timestamp=edxml_now(),
                description=_refusal_note(refusal),
            )
            sealed = self._sender.seal(build(status))
        except (BackboneError, ValueError) as error:  # pydantic's ValidationError is a ValueError
            log.error(
                "adapter.refusal_unanswerable",
                envelope_id=header.envelope_id,
                sender=header.sender,
                recipient=refusal.recipient,
                reason=getattr(getattr(error, "reason", None), "value", "invalid_status"),
                error=str(error),
                outcome="not_answered",
            )
            return False
        await self._sender.publish(sealed)  # BrokerUnavailableError: the caller requeues
        return True


def _sender_of(document_id: str) -> str:
    """The original sender's organ code: the DocumentId's (DocumentIdError when malformed)."""
    return DocumentId.parse(document_id).sender


def _refusal_note(refusal: Refused) -> str:
    """Status 02's Description: the reason code first, so software can act on it."""
    note = f"[{refusal.reason.value}] {refusal.message}"
    return note if len(note) <= REFUSAL_NOTE_LIMIT else note[: REFUSAL_NOTE_LIMIT - 1] + "…"
