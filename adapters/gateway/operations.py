"""Every operation of the axis' API, on the adapter's sealing, sending and state
(docs/gateway.md has the request and response shapes, and what each status means).

Each operation takes the authenticated :class:`~adapters.gateway.wire.SignedRequest` (and,
for ``sendEdoc`` and ``registerAgency``, the body) and returns the response's fields beside
``status``/``ErrorCode``/``ErrorDesc``, or raises a :class:`BackboneError` whose reason is
the ``ErrorCode``.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import hashlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from pathlib import Path
from typing import Final

import structlog

from adapters.abc import Receipt, Sealed
from adapters.client import AdapterClient
from adapters.gateway import directory_feed
from adapters.gateway.arrivals import Arrivals, republishable
from adapters.gateway.state import (
    GatewayState,
    ReceivedRow,
    SentRow,
    doc_id_of_received,
    doc_id_of_sent,
)
from adapters.gateway.systems import ResolvedSystem
from adapters.gateway.wire import SignedRequest, file_of_body, file_of_spooled_body
from adapters.sealing_thread import SealingThread
from backbone.clock import Clock, utc_now
from backbone.edxml import EdxmlDocument, EdxmlStatus, StatusCode, detect_kind, parse_xml
from backbone.envelope import EnvelopeHeader, Kind
from backbone.errors import BackboneError, BrokerUnavailableError, GatewayError, Reason
from backbone.organ import OrganCode, SystemId, parse_identifier

__all__ = ["KeyedLocks", "Operations", "Reply"]

log = structlog.get_logger("adapters.gateway")

Reply = dict[str, object]  # the fields beside status, ErrorCode and ErrorDesc
# updateStatus: the transport acknowledgement of a received item.
_TRANSPORT_STATUSES: Final = ("done", "fail", "processing")
_MESSAGE_TYPES: Final = {"edoc": "edoc", "status": "status"}


class Operations:
    def __init__(
        self,
        client: AdapterClient,
        state: GatewayState,
        systems: Mapping[str, ResolvedSystem],
        sealer: SealingThread,
        arrivals: Arrivals,
        *,
        clock: Clock = utc_now,
    ) -> None:
        self.client = client
        self.state = state
        self.systems = systems
        self.sealer = sealer
        self.arrivals = arrivals
        self.clock = clock
        self._sending = KeyedLocks()  # one send per DocId at a time
        self.table: dict[str, Callable[[SignedRequest, bytes], Awaitable[Reply]]] = {
            "sendEdoc": self.send_edoc,
            "getReceivedEdocList": self.received_list,
            "getEdoc": self.get_edoc,
            "updateStatus": self.update_status,
            "getSentEdocList": self.sent_list,
            "countReceiveEdoc": self.count_edoc,
            "countReceiveStatus": self.count_status,
            "getAgenciesList": self.agencies,
            "getAgenciesListQD20": self.agencies_qd20,
            "getSynchronizeUnit": self.synchronize_units,
            "registerAgency": self.register_agency,
            "deleteAgency": self.delete_agency,
        }

    def system(self, request: SignedRequest) -> ResolvedSystem:
        return self.systems[request.system_id]  # authenticate() found it

    # ------------------------------------------------------------------------ sending

    async def send_edoc(self, request: SignedRequest, body: bytes) -> Reply:
        system = self.system(request)
        message_type = _message_type(request.require("messagetype"))
        sender = request.require("from")
        if sender not in system.acts_for:
            raise _not_permitted(system, sender)
        data = file_of_body(body, request.require("hash-file"))
        doc_id = doc_id_of_sent(system.system_id, hashlib.sha256(data).hexdigest())
        async with self._sending.hold(doc_id):
            return await self._send_once(request, system, message_type, sender, data, doc_id)

    async def _send_once(
        self,
        request: SignedRequest,
        system: ResolvedSystem,
        message_type: str,
        sender: str,
        data: bytes,
        doc_id: str,
    ) -> Reply:
        known = await self.state.run(self.state.sent_row, doc_id)
        if known is not None and known.sent_time is not None:
            if await self._sent_before(doc_id):
                return {"DocId": doc_id}
        elif known is not None and known.body is not None:
            # Sealed and recorded, then the adapter stopped before the confirm: the same
            # bytes again (the router answers a duplicate, never delivers twice).
            await self.client.publish(
                republishable(known.body, self.client.config.max_envelope_bytes)
            )
            await self.state.run(self.state.confirm_send, doc_id, self.clock())
            return {"DocId": doc_id}
        recipients = _recipients(request.get("to"))
        sealed, message = await self.sealer.run(
            lambda edxml: self._seal(edxml, recipients, sender), data
        )
        header = sealed.header
        row = await self._checked_row(system, message_type, sender, doc_id, header, message)
        if row is None:
            return {"DocId": doc_id}
        row = dataclasses.replace(row, body=sealed.body)
        await self.state.run(self.state.begin_send, row, header.recipients)
        receipt = await self.client.publish(sealed)  # BrokerUnavailableError: kept, retried
        return await self._confirmed(doc_id, system.system_id, receipt, form="single")

    async def send_edoc_file(self, request: SignedRequest, body: Path) -> Reply:
        """``sendEdoc`` with a body too large to hold (larger than one chunk), spooled to
        ``body`` by the HTTP face: checked against ``hash-file`` as it is read, then sent
        from disk as a chunked envelope (docs/large-documents.md)."""
        system = self.system(request)
        message_type = _message_type(request.require("messagetype"))
        sender = request.require("from")
        if sender not in system.acts_for:
            raise _not_permitted(system, sender)
        digest = await asyncio.to_thread(file_of_spooled_body, body, request.require("hash-file"))
        doc_id = doc_id_of_sent(system.system_id, digest)
        async with self._sending.hold(doc_id):
            known = await self.state.run(self.state.sent_row, doc_id)
            if (
                known is not None
                and known.sent_time is not None
                and await self._sent_before(doc_id)
            ):
                return {"DocId": doc_id}

            async def record(header: EnvelopeHeader, message: EdxmlDocument | EdxmlStatus) -> None:
                row = await self._checked_row(system, message_type, sender, doc_id, header, message)
                if row is None:
                    raise _AbsorbedError
                # The client keeps the send (resume_key): after a crash before the confirm,
                # the software's repeat finishes the same envelope.
                await self.state.run(self.state.begin_send, row, header.recipients)

            try:
                receipt = await self.client.send_file(
                    body, before_publish=record, resume_key=_resume_key(doc_id)
                )
            except _AbsorbedError:
                return {"DocId": doc_id}
            except BackboneError as error:
                if error.reason is Reason.PUBLISHER_MISMATCH:
                    raise _other_sender(sender, error) from None
                raise
            return await self._confirmed(doc_id, system.system_id, receipt, form="chunked")

    async def finish_kept_sends(self) -> None:
        """At start, before any request: each chunked ``sendEdoc`` a killed gateway left
        half-published is finished from the messages the client kept, and confirmed; one
        the broker does not take now is finished by the software's repeat."""
        for doc_id, system_id in await self.state.run(self.state.unconfirmed_chunked_sends):
            async with self._sending.hold(doc_id):
                try:
                    receipt = await self.client.finish_kept(_resume_key(doc_id))
                except BrokerUnavailableError as error:
                    log.warning("gateway.send_left", doc_id=doc_id, error=error.message)
                    continue
                if receipt is None:
                    continue  # nothing published yet: the software's repeat seals it
                await self._confirmed(doc_id, system_id, receipt, form="chunked", outcome="resumed")

    async def _confirmed(
        self,
        doc_id: str,
        system_id: str,
        receipt: Receipt,
        *,
        form: str,
        outcome: str = "confirmed",
    ) -> Reply:
        """The broker confirmed the send of ``doc_id``: recorded, and its DocId answered."""
        await self.state.run(self.state.confirm_send, doc_id, receipt.sent_at)
        log.info(
            "gateway.sent",
            doc_id=doc_id,
            envelope_id=receipt.envelope_id,
            document_id=receipt.document_id,
            system=system_id,
            form=form,
            outcome=outcome,
        )
        return {"DocId": doc_id}

    async def _sent_before(self, doc_id: str) -> bool:
        """A file sent and confirmed before: answered with its DocId again, unless every
        recipient refused it (then it may be sent again)."""
        if await self.state.run(self.state.all_refused, doc_id):
            return False
        log.info("gateway.send_repeated", doc_id=doc_id, outcome="already_sent")
        return True

    async def _checked_row(
        self,
        system: ResolvedSystem,
        message_type: str,
        sender: str,
        doc_id: str,
        header: EnvelopeHeader,
        message: EdxmlDocument | EdxmlStatus,
    ) -> SentRow | None:
        """The sent row for a sealed envelope, once it is what the request says it is
        (``from``, ``messagetype``); None for the software's own 01, absorbed."""
        if header.sender != sender:
            raise GatewayError(
                f"from is {sender} but the edXML is from {header.sender}",
                reason=Reason.GATEWAY_SENDER_NOT_PERMITTED,
            )
        kind = "edoc" if isinstance(message, EdxmlDocument) else "status"
        if kind != message_type:
            raise GatewayError(
                f"messagetype={message_type} but the edXML is a "
                f"{'document' if kind == 'edoc' else 'status'}",
                reason=Reason.GATEWAY_MESSAGE_TYPE_MISMATCH,
            )
        if (
            isinstance(message, EdxmlStatus)
            and message.status_code == StatusCode.ARRIVED
            and await self._arrival_already_owed(message, sender)
        ):
            return None
        return SentRow(
            doc_id=doc_id,
            system=system.system_id,
            message_type=kind,
            envelope_id=header.envelope_id,
            document_id=header.document_id,
            from_code=sender,
            title=message.subject if isinstance(message, EdxmlDocument) else "",
            notation=message.code.code_notation if isinstance(message, EdxmlDocument) else "",
            created=self.clock().isoformat(),
            sent_time=None,
            body=None,
        )

    def _seal(
        self, edxml: bytes, recipients: list[str], sender: str
    ) -> tuple[Sealed, EdxmlDocument | EdxmlStatus]:
        """On the sealing thread. ``to`` matters only for a take-back (13), which names no
        recipient in the edXML; a document goes to its own To agencies."""
        is_status = detect_kind(parse_xml(edxml)) == Kind.STATUS
        try:
            return self.client.seal_read(edxml, recipients=recipients if is_status else None)
        except ValueError as error:  # a 13 without `to`
            raise GatewayError(str(error), reason=Reason.GATEWAY_REQUEST_MALFORMED) from None
        except BackboneError as error:
            if error.reason is not Reason.PUBLISHER_MISMATCH:
                raise
            raise _other_sender(sender, error) from None

    async def _arrival_already_owed(self, status: EdxmlStatus, sender: str) -> bool:
        """The software's own 01 for a document this gateway delivered: the gateway sends
        01 itself on ``updateStatus done``; a second 01 would be refused by the router."""
        found = await self.state.run(
            self.state.arrival_state_of, status.response_for.document_id, sender
        )
        if found is None:
            return False
        doc_id, arrival_state = found
        if arrival_state == "none":
            # Before done: the software's 01 stands for the gateway's; none is sent later.
            await self.state.run(self.state.mark_arrival_sent_by_software, doc_id)
            return False
        log.info("gateway.arrival_absorbed", doc_id=doc_id, outcome="already_sent_by_gateway")
        return True

    # ---------------------------------------------------------------------- receiving

    async def received_list(self, request: SignedRequest, body: bytes) -> Reply:
        message_type = _message_type(request.get("messagetype") or "edoc")
        rows = await self.state.run(self.state.pending, self.system(request).acts_for, message_type)
        return {"data": [_received_item(row) for row in rows]}

    async def _own_received(self, request: SignedRequest) -> ReceivedRow:
        doc_id = request.require("docId")
        row = await self.state.run(self.state.received_row, doc_id)
        if row is None or row.recipient not in self.system(request).acts_for:
            raise GatewayError(
                f"no received document or status {doc_id!r} for system {request.system_id}",
                reason=Reason.GATEWAY_DOCUMENT_UNKNOWN,
            )
        return row

    async def received_bytes(self, request: SignedRequest) -> bytes | Path:
        """``downloadEdoc``: the edXML itself, or its file for a document that came in
        chunks (streamed by the HTTP face, never read whole)."""
        row = await self._own_received(request)
        data = await self.state.run(self.state.received_edxml, row.doc_id)
        assert data is not None  # the row exists
        return data

    async def get_edoc(self, request: SignedRequest, body: bytes) -> Reply:
        """``data``: the edXML in base64; a file (a document that came in chunks) is left
        for the HTTP face to encode as it streams the response."""
        data = await self.received_bytes(request)
        if isinstance(data, Path):
            return {"data": data}
        return {"data": base64.b64encode(data).decode("ascii")}

    async def update_status(self, request: SignedRequest, body: bytes) -> Reply:
        status = request.require("status").strip().lower()
        if status not in _TRANSPORT_STATUSES:
            raise GatewayError(
                f"status {status!r} is not one of {', '.join(_TRANSPORT_STATUSES)}",
                reason=Reason.GATEWAY_STATUS_INVALID,
            )
        row = await self._own_received(request)
        description = (request.get("description") or "").strip()[:500]
        owed = await self.state.run(
            self.state.set_received_status, row.doc_id, status, description, self.clock()
        )
        log.info(
            "gateway.updated",
            doc_id=row.doc_id,
            envelope_id=row.envelope_id,
            document_id=row.document_id,
            status=status,
            outcome="recorded",
        )
        if owed is not None:
            await self.arrivals.send(owed)  # on a broker failure it stays owed, sent later
        return {}

    async def count_edoc(self, request: SignedRequest, body: bytes) -> Reply:
        rows = await self.state.run(self.state.pending, self.system(request).acts_for, "edoc")
        return {"count": len(rows)}

    async def count_status(self, request: SignedRequest, body: bytes) -> Reply:
        rows = await self.state.run(self.state.pending, self.system(request).acts_for, "status")
        return {"count": len(rows)}

    async def sent_list(self, request: SignedRequest, body: bytes) -> Reply:
        message_type = request.get("messagetype")
        rows = await self.state.run(
            self.state.sent_list,
            request.system_id,
            _message_type(message_type) if message_type else None,
            (request.get("docId") or "").strip() or None,
        )
        return {
            "data": [
                {
                    "serviceType": "eDoc",
                    "senderDocId": sent.doc_id,
                    "receiverDocId": doc_id_of_received(sent.envelope_id, to.to_code),
                    "fromCode": sent.from_code,
                    "toCode": to.to_code,
                    "title": sent.title,
                    "notation": sent.notation,
                    "messageType": sent.message_type,
                    "sentTime": sent.sent_time or "",
                    "sendStatus": to.send_status,
                    "sendStatusDesc": to.send_desc,
                    "receivedTime": to.received_time or "",
                    "receiveStatus": to.receive_status,
                    "receiveStatusDesc": to.receive_desc,
                }
                for sent, to in rows
            ]
        }

    # ---------------------------------------------------------------------- directory

    async def agencies(self, request: SignedRequest, body: bytes) -> Reply:
        return {"data": directory_feed.agencies(self.client.directory, self.clock())}

    async def agencies_qd20(self, request: SignedRequest, body: bytes) -> Reply:
        return {
            "data": directory_feed.agencies_qd20(
                self.client.directory, request.get("level"), self.clock()
            )
        }

    async def synchronize_units(self, request: SignedRequest, body: bytes) -> Reply:
        return {"data": directory_feed.synchronize_units(self.client.directory, self.clock())}

    async def register_agency(self, request: SignedRequest, body: bytes) -> Reply:
        try:
            details = json.loads(body or b"{}")
        except (UnicodeDecodeError, ValueError):
            details = None
        if not isinstance(details, dict):
            raise GatewayError(
                "registerAgency needs a JSON object {id, pcode, code, name, mail, mobile, fax}",
                reason=Reason.GATEWAY_REQUEST_MALFORMED,
            )
        code = str(details.get("code") or "").strip()
        parent = str(details.get("pcode") or "").strip()
        self._check_in_subtree(request, code, parent)
        await self._propose(request, "register", code, details)
        return {}

    async def delete_agency(self, request: SignedRequest, body: bytes) -> Reply:
        code = request.require("AgencyCode")
        self._check_in_subtree(request, code, "")
        await self._propose(request, "delete", code, {"code": code})
        return {}

    def _check_in_subtree(self, request: SignedRequest, code: str, parent: str) -> None:
        """Only a hub's software proposes agencies, and only under the agencies it acts for."""
        if not isinstance(parse_identifier(self.client.system), SystemId):
            raise GatewayError(
                f"{self.client.system} is an agency, not a hub: the directory is the "
                "operator's, and only a hub's software may propose agencies",
                reason=Reason.GATEWAY_AGENCY_CHANGE_REFUSED,
            )
        try:
            organ = OrganCode.parse(code)
            roots = [OrganCode.parse(root) for root in self.system(request).acts_for]
            under = [OrganCode.parse(parent)] if parent else []
        except GatewayError:
            raise
        except Exception as error:  # OrganCodeError: a malformed code
            raise GatewayError(
                f"agency code {code!r} or parent {parent!r} is not an organ code: {error}",
                reason=Reason.GATEWAY_REQUEST_MALFORMED,
            ) from None
        if not any(candidate.is_within(root) for candidate in [organ, *under] for root in roots):
            raise GatewayError(
                f"{code} is outside the agencies system {request.system_id} acts for",
                reason=Reason.GATEWAY_AGENCY_CHANGE_REFUSED,
            )

    async def _propose(
        self, request: SignedRequest, action: str, code: str, details: dict[str, object]
    ) -> None:
        number = await self.state.run(
            self.state.propose, request.system_id, action, code, details, self.clock()
        )
        log.info(
            "gateway.proposal",
            system=request.system_id,
            action=action,
            agency=code,
            proposal=number,
            outcome="recorded_for_operator",
        )


class KeyedLocks:
    """One lock per key, kept only while someone holds or waits for it."""

    def __init__(self) -> None:
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}

    @contextlib.asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[None]:
        lock, users = self._locks.get(key, (asyncio.Lock(), 0))
        self._locks[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[key]
            if users == 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)

    def __len__(self) -> int:
        return len(self._locks)


def _message_type(value: str) -> str:
    found = _MESSAGE_TYPES.get(value.strip().lower())
    if found is None:
        raise GatewayError(
            f"messagetype {value!r} is neither edoc nor status",
            reason=Reason.GATEWAY_REQUEST_MALFORMED,
        )
    return found


def _recipients(value: str | None) -> list[str]:
    """``to``: a JSON array of organ codes (the SDK sends the caller's JSON value as text),
    or codes separated by commas. The SDK hands a string value on as JSON text too, quotes
    and all (``"A,B"``), so a quoted string is split like a bare one."""
    if value is None or not value.strip():
        return []
    try:
        parsed = json.loads(value)
    except RecursionError:
        parsed = None  # JSON nested past the parser's depth: no list of codes, refused below
    except ValueError:
        parsed = value
    if isinstance(parsed, str):
        parsed = [part for part in parsed.split(",") if part.strip()]
    if not isinstance(parsed, list) or not all(isinstance(code, str) for code in parsed):
        raise GatewayError(
            f"to is neither a JSON array of organ codes nor a code: {value[:80]!r}",
            reason=Reason.GATEWAY_REQUEST_MALFORMED,
        )
    return [code.strip() for code in parsed]


class _AbsorbedError(Exception):
    """The software's own 01, absorbed: nothing is published (:meth:`_checked_row`)."""


def _other_sender(sender: str, error: BackboneError) -> GatewayError:
    # The edXML's From is not served by this adapter, so it is not `from` (which is): the
    # software's own mismatch, with the code the same mismatch gets when both are served.
    return GatewayError(
        f"from is {sender} but the edXML is from another agency: {error.message}",
        reason=Reason.GATEWAY_SENDER_NOT_PERMITTED,
    )


def _not_permitted(system: ResolvedSystem, sender: str) -> GatewayError:
    return GatewayError(
        f"system {system.system_id} may not send for {sender!r}: it acts for "
        f"{', '.join(sorted(system.acts_for))}",
        reason=Reason.GATEWAY_SENDER_NOT_PERMITTED,
    )


def _received_item(row: ReceivedRow) -> dict[str, object]:
    return {
        "docId": row.doc_id,
        "serviceType": "eDoc",
        "messageType": row.message_type,
        "created_time": row.created,
        "updated_time": row.updated,
        "from": row.from_code,
        "to": row.recipient,
        "status": row.status,
        "status_desc": row.status_desc,
    }


def _resume_key(doc_id: str) -> str:
    """Under which key the client keeps the chunked send of ``doc_id`` until confirmed."""
    return f"gateway:{doc_id}"
