"""Semantic checks the schemas cannot express: organ codes, DocumentId (its shape, and its
organ bound to the sender or the status's addressee), due date, manifest ↔ attachments.

They read the tree defensively, so that they can run (and report) even when the schema has
already found the structure wrong.
"""

from __future__ import annotations

from collections import Counter

from lxml import etree

from backbone.edxml.dates import parse_date
from backbone.edxml.document_id import DocumentId
from backbone.edxml.issues import Issue, issue_at
from backbone.edxml.models import Kind
from backbone.edxml.names import q, qpath
from backbone.errors import DocumentIdError, OrganCodeError, Reason
from backbone.organ import OrganCode

__all__ = ["check"]

_TAKE_BACK = "13"


_MESSAGE_HEADER = qpath("edXMLEnvelope", "edXMLHeader", "MessageHeader")
_REFERENCE_IDS = qpath("edXMLEnvelope", "edXMLBody", "edXMLManifest", "Reference", "ContentId")
_ATTACHMENT_IDS = qpath("AttachmentEncoded", "Attachment", "ContentId")


def check(root: etree._Element, kind: Kind) -> list[Issue]:
    """Every semantic problem in a message of the given kind."""
    header = root.find(_MESSAGE_HEADER)
    if header is None:
        return []  # the schema reports the missing header
    issues: list[Issue] = []
    organ_ids = header.findall(qpath("From", "OrganId"))
    if kind is Kind.DOCUMENT:
        organ_ids += header.findall(qpath("To", "OrganId"))
        document_ids = header.findall(q("DocumentId"))
    else:
        document_ids = header.findall(qpath("ResponseFor", "DocumentId"))
    for element in organ_ids:
        issues.extend(_organ_code(element))
    for element in document_ids:
        issues.extend(_document_id_issues(element))
    issues.extend(_binding(header, kind))
    if kind is Kind.DOCUMENT:
        issues.extend(_due_date(header))
        issues.extend(_manifest(root))
    return issues


def _organ_code(element: etree._Element) -> list[Issue]:
    try:
        OrganCode.parse(element.text or "")
    except OrganCodeError as exc:
        return [issue_at(element, exc.message)]
    return []


def _document_id(element: etree._Element) -> DocumentId | None:
    try:
        return DocumentId.parse(element.text or "")
    except DocumentIdError:
        return None


def _document_id_issues(element: etree._Element) -> list[Issue]:
    try:
        DocumentId.parse(element.text or "")
    except DocumentIdError as exc:
        return [issue_at(element, exc.message, exc.reason)]
    return []


def _binding(header: etree._Element, kind: Kind) -> list[Issue]:
    """The DocumentId's organ is the From of a document and of a take-back request (13),
    and the ResponseFor/OrganId of any status; a status other than 13 never comes from it.
    (Malformed or missing parts are reported by the other checks.)"""
    sender = header.find(qpath("From", "OrganId"))
    if sender is None:
        return []
    problem = (_document_binding if kind is Kind.DOCUMENT else _status_binding)(header, sender)
    return [] if problem is None else [problem]


def _document_binding(header: etree._Element, sender: etree._Element) -> Issue | None:
    element = header.find(q("DocumentId"))
    document_id = None if element is None else _document_id(element)
    if element is None or document_id is None or document_id.sender == sender.text:
        return None
    return issue_at(
        element,
        f"DocumentId {document_id.text!r} is {document_id.sender}'s, but the document is "
        f"From {sender.text}: a DocumentId starts with its sender's organ code",
        Reason.DOCUMENT_ID_NOT_SENDER,
    )


def _status_binding(header: etree._Element, sender: etree._Element) -> Issue | None:
    element = header.find(qpath("ResponseFor", "DocumentId"))
    organ = header.find(qpath("ResponseFor", "OrganId"))
    document_id = None if element is None else _document_id(element)
    if organ is None or document_id is None:
        return None
    if organ.text != document_id.sender:
        return issue_at(
            organ,
            f"ResponseFor/OrganId {organ.text} is not the organ of its DocumentId "
            f"{document_id.text!r} ({document_id.sender}): a status names the document's "
            "original sender",
            Reason.DOCUMENT_ID_NOT_SENDER,
        )
    code = header.find(q("StatusCode"))
    take_back = code is not None and code.text == _TAKE_BACK
    if take_back and sender.text != organ.text:
        return issue_at(
            sender,
            f"take-back request (13) From {sender.text} about {document_id.text!r}, which is "
            f"{organ.text}'s: only the original sender takes a document back",
            Reason.DOCUMENT_ID_NOT_SENDER,
        )
    if not take_back and sender.text == organ.text:
        return issue_at(
            sender,
            f"status From {sender.text} about its own document {document_id.text!r}: a status "
            "goes from a recipient back to the original sender",
            Reason.STATUS_MISADDRESSED,
        )
    return None


def _due_date(header: etree._Element) -> list[Issue]:
    """A document cannot be due before it was promulgated: such a DueDate would make its
    recipients look late the moment it arrives (issue 14, finding 8)."""
    due = header.find(q("DueDate"))
    promulgated = header.find(qpath("PromulgationInfo", "PromulgationDate"))
    if due is None or not due.text or promulgated is None:
        return []  # no due date, or the schema reports the missing PromulgationDate
    try:
        due_day, promulgation_day = parse_date(due.text), parse_date(promulgated.text or "")
    except ValueError:
        return []  # the schema reports a malformed date
    if due_day >= promulgation_day:
        return []
    message = f"DueDate {due.text} is before the document's PromulgationDate {promulgated.text}"
    return [issue_at(due, message, Reason.DUE_DATE_BEFORE_DOCUMENT)]


def _manifest(root: etree._Element) -> list[Issue]:
    """Each manifest Reference names exactly one Attachment, and each Attachment is listed."""
    references = root.findall(_REFERENCE_IDS)
    attachments = root.findall(_ATTACHMENT_IDS)
    if not references and not attachments:
        return []
    referenced = Counter(element.text or "" for element in references)
    attached = Counter(element.text or "" for element in attachments)
    issues: list[Issue] = []
    for element in references:
        content_id = element.text or ""
        if not attached[content_id]:
            issues.append(issue_at(element, f"manifest Reference {content_id!r} has no Attachment"))
        elif referenced[content_id] > 1:
            issues.append(
                issue_at(element, f"manifest lists ContentId {content_id!r} more than once")
            )
    for element in attachments:
        content_id = element.text or ""
        if not referenced[content_id]:
            issues.append(
                issue_at(element, f"Attachment {content_id!r} is not listed in the manifest")
            )
        elif attached[content_id] > 1:
            issues.append(
                issue_at(element, f"more than one Attachment has ContentId {content_id!r}")
            )
    return issues
