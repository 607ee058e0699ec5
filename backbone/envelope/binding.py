"""What binds an envelope to its parties, and its header to the signed edXML inside.

:func:`check_binding` reads the header alone, so the router (which never sees plaintext),
the sealer and the recipient all run it:

- the DocumentId has the standard's shape (:class:`~backbone.edxml.document_id.DocumentId`);
- a document (any business type) and a take-back request (13) come from the organ their
  DocumentId names: nobody revokes, updates, replaces or takes back another's document;
- every other status goes from a recipient back to that organ, the original sender, alone,
  and never to its own sender.

With the binding, a DocumentId names its original sender, so the store's dedup keys and
journeys (keyed by DocumentId) are keyed by the original sender too.

:func:`check_agreement` compares the header with the signed edXML (the sealer before
signing, the recipient after verifying): kind, sender, DocumentId, business type, status
code and note, recipients, due date.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Final

from backbone.edxml import EdxmlDocument, EdxmlStatus, StatusCode
from backbone.edxml.document_id import DocumentId
from backbone.envelope.model import MAX_STATUS_NOTE, EnvelopeHeader, Kind
from backbone.errors import DocumentBindingError, HeaderMismatchError, Reason

__all__ = ["check_agreement", "check_binding", "status_note_of"]

_TAKE_BACK: Final = StatusCode.TAKE_BACK_REQUESTED.value


def check_binding(header: EnvelopeHeader) -> DocumentId:
    """The header's DocumentId, parsed; raise :class:`~backbone.errors.DocumentIdError` or
    :class:`~backbone.errors.DocumentBindingError` when it is not bound as it must be."""
    document_id = DocumentId.parse(header.document_id)
    original = document_id.sender
    if header.kind == Kind.DOCUMENT or header.status_code == _TAKE_BACK:
        what = "document" if header.kind == Kind.DOCUMENT else "take-back request (13)"
        if original != header.sender:
            raise DocumentBindingError(
                f"{header.sender} sent a {what} under DocumentId {document_id.text!r}, which "
                f"is {original}'s: a DocumentId starts with its sender's organ code, and only "
                "the original sender revokes, updates, replaces or takes back a document"
            )
        if header.kind == Kind.STATUS and header.sender in header.recipients:
            raise DocumentBindingError(
                f"take-back request (13) from {header.sender} is addressed to itself",
                reason=Reason.STATUS_MISADDRESSED,
            )
        return document_id
    if header.sender == original:
        raise DocumentBindingError(
            f"status {header.status_code} from {header.sender} is about its own document "
            f"{document_id.text!r}: the sender of a document asks for it back with 13 and "
            "sends no other status about it",
            reason=Reason.STATUS_MISADDRESSED,
        )
    if list(header.recipients) != [original]:
        raise DocumentBindingError(
            f"status {header.status_code} about {document_id.text!r} is addressed to "
            f"{', '.join(header.recipients)}; a status goes to the document's original "
            f"sender {original} alone",
            reason=Reason.STATUS_MISADDRESSED,
        )
    return document_id


def check_agreement(
    header: EnvelopeHeader,
    message: EdxmlDocument | EdxmlStatus,
    recipients: Collection[str] | None = None,
) -> None:
    """Raise :class:`~backbone.errors.HeaderMismatchError` when the header claims what the
    edXML does not say. ``recipients``: the header's recipients to compare with the edXML's
    To (the ones a recipient serves); all of them when None."""
    mismatches: list[str] = []

    def differs(what: str, edxml: object, claimed: object) -> None:
        if edxml != claimed:
            mismatches.append(f"the edXML's {what} is {edxml!r}, the header's {claimed!r}")

    differs("kind", str(message.kind), str(header.kind))
    differs("From", message.sender.organ_id, header.sender)
    targets = list(header.recipients if recipients is None else recipients)
    if isinstance(message, EdxmlDocument):
        differs("DocumentId", message.document_id, header.document_id)
        differs("BussinessDocType", int(message.business.business_doc_type), header.business_type)
        if header.due_date is not None:
            differs("DueDate", message.due_date, header.due_date)
        to = {organ.organ_id for organ in message.recipients}
        missing = [code for code in targets if code not in to]
        if missing:
            mismatches.append(f"{', '.join(missing)} not among the edXML's To")
    else:
        about = message.response_for
        differs("ResponseFor/DocumentId", about.document_id, header.document_id)
        differs("StatusCode", message.status_code.value, header.status_code)
        if header.status_note is not None:
            differs("Description", status_note_of(message.description), header.status_note)
        if message.status_code.value != _TAKE_BACK:
            stray = [code for code in targets if code != about.organ_id]
            if stray:
                mismatches.append(
                    f"the status is for ResponseFor/OrganId {about.organ_id}, the header "
                    f"also addresses {', '.join(stray)}"
                )
    if mismatches:
        raise HeaderMismatchError(
            f"envelope {header.envelope_id}: the signed header and the signed edXML disagree: "
            + "; ".join(mismatches)
        )


def status_note_of(description: str | None) -> str | None:
    """A status's Description as the header's ``status_note``: stripped, cut to its limit."""
    text = (description or "").strip()
    return text[:MAX_STATUS_NOTE] or None
