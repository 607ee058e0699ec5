"""Semantic checks the schemas cannot express: organ codes, DocumentId, due date,
manifest ↔ attachments.

They read the tree defensively, so that they can run (and report) even when the schema has
already found the structure wrong.
"""

from __future__ import annotations

import re
from collections import Counter

from lxml import etree

from backbone.edxml.dates import parse_date
from backbone.edxml.issues import Issue, issue_at
from backbone.edxml.models import Kind
from backbone.edxml.names import q, qpath
from backbone.errors import OrganCodeError, Reason
from backbone.organ import OrganCode

__all__ = ["check"]

_DOCUMENT_ID_SHAPE = (
    "<OrganId>,<yyyy/MM/dd>,<Number>/<Notation> (e.g. 000.00.00.G22,2015/09/30,7816/VPCP-TTĐT)"
)
_NUMBER_NOTATION = re.compile(r"[^/]+/.+")


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
        issues.extend(_document_id(element))
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


def _document_id(element: etree._Element) -> list[Issue]:
    text = element.text or ""
    parts = text.split(",")
    if len(parts) != 3:
        return [
            issue_at(
                element,
                f"DocumentId {text!r} has {len(parts)} comma-separated part(s); "
                f"expected {_DOCUMENT_ID_SHAPE}",
            )
        ]
    organ_id, day, number_notation = parts
    problems: list[str] = []
    try:
        OrganCode.parse(organ_id)
    except OrganCodeError as exc:
        problems.append(exc.message)
    try:
        parse_date(day)
    except ValueError as exc:
        problems.append(str(exc))
    if not _NUMBER_NOTATION.fullmatch(number_notation):
        problems.append(f"{number_notation!r} is not <Number>/<Notation>")
    return [issue_at(element, f"DocumentId {text!r}: {problem}") for problem in problems]


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
