"""Element tree → models.

Expects a tree that the matching schema accepts (see :mod:`backbone.edxml.validate`): it
does not re-check the schema, but raises :class:`EdxmlError` where a required element is
missing rather than guess. Text is taken as is; the schema fixes the shape of dates,
numbers and codes, and the reader converts them, reporting dates that do not exist and
attachments that are not exact base64.
"""

from __future__ import annotations

import binascii
from collections.abc import Callable
from datetime import date, datetime
from typing import TypeVar

from lxml import etree

from backbone.edxml.dates import parse_date, parse_timestamp
from backbone.edxml.issues import Issue, issue_at, line_of, path_of
from backbone.edxml.models import (
    Attachment,
    Business,
    BusinessDocType,
    BusinessDocumentInfo,
    Code,
    DocumentType,
    EdxmlDocument,
    EdxmlMessage,
    EdxmlStatus,
    Kind,
    Organization,
    OtherInfo,
    PromulgationInfo,
    Receiver,
    Reference,
    ReplacementInfo,
    ResponseFor,
    SignerInfo,
    StaffInfo,
    StatusCode,
    TraceHeader,
)
from backbone.edxml.names import q, qpath
from backbone.errors import EdxmlError

__all__ = ["detect_kind", "read", "read_collecting"]

_T = TypeVar("_T")

_MESSAGE_HEADER = qpath("edXMLEnvelope", "edXMLHeader", "MessageHeader")
_STATUS_ONLY = (q("StatusCode"), q("Timestamp"))


def detect_kind(root: etree._Element) -> Kind:
    """A status message is one whose MessageHeader carries a StatusCode or a Timestamp.

    Documents carry neither (their timestamps are in TraceHeader), so a status message
    that lacks its StatusCode is still judged, and reported on, as a status message.
    """
    header = root.find(_MESSAGE_HEADER)
    if header is not None and next(header.iterchildren(*_STATUS_ONLY), None) is not None:
        return Kind.STATUS
    return Kind.DOCUMENT


def read(root: etree._Element) -> EdxmlMessage:
    """The model of a schema-valid edXML tree; :class:`EdxmlError` names the first problem."""
    message, issues = read_collecting(root)
    if message is None:
        raise issues[0].to_error()
    return message


def read_collecting(
    root: etree._Element, kind: Kind | None = None
) -> tuple[EdxmlMessage | None, list[Issue]]:
    """The model, or ``None`` with every value that could not be read (bad dates, base64).
    ``kind``: :func:`detect_kind` of ``root``, when the caller has it already."""
    reader = _Reader()
    try:
        message = reader.read(root, kind)
    except EdxmlError as exc:
        return None, [Issue.from_error(exc)]
    except ValueError as exc:  # includes pydantic's ValidationError
        return None, [Issue(f"edXML does not fit the message model: {exc}")]
    return (None, reader.issues) if reader.issues else (message, [])


def _child(parent: etree._Element, name: str) -> etree._Element | None:
    """The first child element ``name``: what ``parent.find(q(name))`` returns, without
    ElementPath's per-call cost."""
    return next(parent.iterchildren(q(name)), None)


def _need(parent: etree._Element, name: str) -> etree._Element:
    child = _child(parent, name)
    if child is None:
        raise EdxmlError(f"missing element {name}", line=line_of(parent), path=path_of(parent))
    return child


def _text(parent: etree._Element, name: str) -> str | None:
    child = _child(parent, name)
    return None if child is None else child.text or ""


def _need_text(parent: etree._Element, name: str) -> str:
    return _need(parent, name).text or ""


class _Children:
    """A parent's first child element of each name, found in one pass over its children:
    the element :func:`_child` would return for each name, for a parent read field by field
    (a lookup through lxml costs as much as indexing four children)."""

    __slots__ = ("_first", "parent")

    def __init__(self, parent: etree._Element) -> None:
        self.parent = parent
        # Backwards, so that the first of several same-named children is the one kept.
        # Comments and PIs have a function for a tag, never a name looked up.
        self._first: dict[object, etree._Element] = {child.tag: child for child in reversed(parent)}

    def get(self, name: str) -> etree._Element | None:
        return self._first.get(q(name))

    def need(self, name: str) -> etree._Element:
        child = self._first.get(q(name))
        if child is None:
            raise EdxmlError(
                f"missing element {name}", line=line_of(self.parent), path=path_of(self.parent)
            )
        return child

    def text(self, name: str) -> str | None:
        child = self._first.get(q(name))
        return None if child is None else child.text or ""

    def need_text(self, name: str) -> str:
        return self.need(name).text or ""


def _texts(parent: etree._Element | None, name: str) -> tuple[str, ...]:
    return (
        () if parent is None else tuple(child.text or "" for child in parent.iterchildren(q(name)))
    )


def _each(parent: etree._Element, *path: str) -> list[etree._Element]:
    return parent.findall(qpath(*path))


def _strict_base64(text: str) -> bytes:
    """Exact base64, so that a truncated attachment is refused rather than shortened.

    Whitespace (MIME line breaks, indentation) is allowed; it is only stripped when the
    text does not decode as it is, which spares the common single-line case a copy.
    """
    try:
        return binascii.a2b_base64(text, strict_mode=True)
    except binascii.Error:
        compact = "".join(text.split())
        if compact == text:
            raise
        return binascii.a2b_base64(compact, strict_mode=True)


class _Reader:
    """Reads one message, collecting values that cannot be converted instead of stopping."""

    def __init__(self) -> None:
        self.issues: list[Issue] = []

    def read(self, root: etree._Element, kind: Kind | None = None) -> EdxmlMessage:
        if root.tag != q("edXML"):
            raise EdxmlError(f"root element is {root.tag}, not edXML", line=line_of(root))
        header = _need(_need(root, "edXMLEnvelope"), "edXMLHeader")
        if (detect_kind(root) if kind is None else kind) is Kind.STATUS:
            return self._status(_need(header, "MessageHeader"))
        return self._document(root, header)

    def _status(self, header: etree._Element) -> EdxmlStatus:
        fields = _Children(header)
        return EdxmlStatus(
            sender=self._organization(fields.need("From")),
            response_for=self._response_for(fields.need("ResponseFor")),
            status_code=StatusCode(fields.need_text("StatusCode")),
            timestamp=self._timestamp(fields.need("Timestamp")),
            staff_info=self._staff_info(fields.get("StaffInfo")),
            description=fields.text("Description"),
        )

    def _document(self, root: etree._Element, header: etree._Element) -> EdxmlDocument:
        message = _need(header, "MessageHeader")
        fields = _Children(message)
        code = fields.need("Code")
        promulgation = fields.need("PromulgationInfo")
        document_type = _Children(fields.need("DocumentType"))
        signer = fields.get("SignerInfo")
        due_date = fields.get("DueDate")
        other = fields.get("OtherInfo")
        trace_list = _need(header, "TraceHeaderList")
        return EdxmlDocument(
            sender=self._organization(fields.need("From")),
            recipients=tuple(self._organization(to) for to in message.iterchildren(q("To"))),
            document_id=fields.need_text("DocumentId"),
            code=Code(
                code_number=_need_text(code, "CodeNumber"),
                code_notation=_need_text(code, "CodeNotation"),
            ),
            promulgation_info=PromulgationInfo(
                place=_need_text(promulgation, "Place"),
                promulgation_date=self._date(_need(promulgation, "PromulgationDate")),
            ),
            document_type=DocumentType(
                type=document_type.need_text("Type"),
                type_detail=document_type.text("TypeDetail"),
                type_name=document_type.text("TypeName"),
            ),
            subject=fields.need_text("Subject"),
            content=fields.text("Content"),
            signer_info=None if signer is None else self._signer_info(signer),
            # An empty DueDate means "no due date", as absence does.
            due_date=self._date(due_date) if due_date is not None and due_date.text else None,
            other_info=None if other is None else self._other_info(other),
            response_for=tuple(
                self._response_for(item) for item in message.iterchildren(q("ResponseFor"))
            ),
            steering_type=fields.text("SteeringType"),
            to_places=_texts(fields.get("ToPlaces"), "Place"),
            trace_headers=tuple(
                TraceHeader(
                    organ_id=_need_text(trace, "OrganId"),
                    timestamp=self._timestamp(_need(trace, "Timestamp")),
                )
                for trace in trace_list.iterchildren(q("TraceHeader"))
            ),
            business=self._business(_need(trace_list, "Bussiness")),
            references=tuple(
                self._reference(item)
                for item in _each(root, "edXMLEnvelope", "edXMLBody", "edXMLManifest", "Reference")
            ),
            attachments=tuple(
                self._attachment(item) for item in _each(root, "AttachmentEncoded", "Attachment")
            ),
        )

    def _signer_info(self, element: etree._Element) -> SignerInfo:
        fields = _Children(element)
        return SignerInfo(
            full_name=fields.need_text("FullName"),
            competence=fields.text("Competence"),
            position=fields.text("Position"),
        )

    def _reference(self, element: etree._Element) -> Reference:
        fields = _Children(element)
        return Reference(
            content_id=fields.need_text("ContentId"),
            content_type=fields.text("ContentType"),
            description=fields.text("Description"),
            attachment_name=fields.text("AttachmentName"),
        )

    def _organization(self, element: etree._Element) -> Organization:
        fields = _Children(element)
        return Organization(
            organ_id=fields.need_text("OrganId"),
            organization_in_charge=fields.text("OrganizationInCharge"),
            organ_name=fields.text("OrganName"),
            organ_add=fields.text("OrganAdd"),
            email=fields.text("Email"),
            telephone=fields.text("Telephone"),
            fax=fields.text("Fax"),
            website=fields.text("Website"),
        )

    def _response_for(self, element: etree._Element) -> ResponseFor:
        fields = _Children(element)
        promulgation_date = fields.get("PromulgationDate")
        return ResponseFor(
            organ_id=fields.need_text("OrganId"),
            document_id=fields.need_text("DocumentId"),
            code=fields.text("Code"),
            promulgation_date=None if promulgation_date is None else self._date(promulgation_date),
        )

    def _staff_info(self, element: etree._Element | None) -> StaffInfo | None:
        if element is None:
            return None
        fields = _Children(element)
        return StaffInfo(
            department=fields.text("Department"),
            staff=fields.text("Staff"),
            mobile=fields.text("Mobile"),
            email=fields.text("Email"),
        )

    def _other_info(self, element: etree._Element) -> OtherInfo:
        fields = _Children(element)
        promulgation_amount = fields.text("PromulgationAmount")
        page_amount = fields.text("PageAmount")
        direction = fields.text("Direction")
        return OtherInfo(
            priority=fields.text("Priority"),
            sphere_of_promulgation=fields.text("SphereOfPromulgation"),
            typer_notation=fields.text("TyperNotation"),
            promulgation_amount=None if promulgation_amount is None else int(promulgation_amount),
            page_amount=None if page_amount is None else int(page_amount),
            # xs:boolean: "true"/"1" or "false"/"0", surrounding whitespace allowed.
            direction=None if direction is None else direction.strip() in ("true", "1"),
            appendixes=_texts(fields.get("Appendixes"), "Appendix"),
        )

    def _business(self, element: etree._Element) -> Business:
        fields = _Children(element)
        info = fields.get("BussinessDocumentInfo")
        return Business(
            business_doc_type=BusinessDocType(int(fields.need_text("BussinessDocType"))),
            document_id=fields.text("DocumentId"),
            business_doc_reason=fields.text("BussinessDocReason"),
            business_document_info=None
            if info is None
            else BusinessDocumentInfo(
                document_info=_text(info, "DocumentInfo"),
                document_receiver=_text(info, "DocumentReceiver"),
                receivers=tuple(
                    Receiver(
                        organ_id=_need_text(receiver, "OrganId"),
                        receiver_type=_text(receiver, "ReceiverType"),
                    )
                    for receiver in _each(info, "ReceiverList", "Receiver")
                ),
            ),
            paper=fields.text("Paper"),
            staff_info=self._staff_info(fields.get("StaffInfo")),
            replacements=tuple(
                ReplacementInfo(
                    document_id=_need_text(replacement, "DocumentId"),
                    organ_ids=_texts(_child(replacement, "OrganIdList"), "OrganId"),
                )
                for replacement in _each(element, "ReplacementInfoList", "ReplacementInfo")
            ),
        )

    def _attachment(self, element: etree._Element) -> Attachment:
        fields = _Children(element)
        content_id = fields.need_text("ContentId")
        return Attachment(
            content_id=content_id,
            content=self._decode(fields.need("ContentTransferEncoded"), content_id),
            attachment_name=fields.text("AttachmentName"),
            description=fields.text("Description"),
            content_type=fields.text("ContentType"),
        )

    def _decode(self, element: etree._Element, content_id: str) -> bytes:
        try:
            return _strict_base64(element.text or "")
        except ValueError as exc:  # binascii.Error, or non-ASCII text
            self.issues.append(
                issue_at(element, f"attachment {content_id!r} is not valid base64: {exc}")
            )
            return b""

    def _date(self, element: etree._Element) -> date:
        return self._convert(element, parse_date, date.min)

    def _timestamp(self, element: etree._Element) -> datetime:
        return self._convert(element, parse_timestamp, datetime.min)

    def _convert(self, element: etree._Element, parse: Callable[[str], _T], placeholder: _T) -> _T:
        try:
            return parse(element.text or "")
        except ValueError as exc:
            self.issues.append(issue_at(element, str(exc)))
            return placeholder
