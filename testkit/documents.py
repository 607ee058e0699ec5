"""Minimal edXML documents for tests and the benchmark: one builder, parameterised for every
caller (sender and recipients, number, business type, due date, Content, attachments, the
notation of the document id)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date

from backbone.clock import edxml_now
from backbone.edxml import (
    Attachment,
    Business,
    BusinessDocType,
    Code,
    DocumentType,
    EdxmlDocument,
    EdxmlStatus,
    Organization,
    PromulgationInfo,
    Reference,
    ResponseFor,
    StatusCode,
    build,
)

__all__ = [
    "DOCUMENT_DAY",
    "document_edxml",
    "document_id",
    "document_with_attachment",
    "status_edxml",
]

# The day this process began, in Vietnam (edXML's dates are Vietnam's): every id and date
# made here uses it, so a run that crosses midnight there (17:00 UTC) never makes one
# document under two days, nor expects another day's id than the one it sent.
DOCUMENT_DAY = edxml_now().date()


def document_id(sender: str, number: int, notation: str = "VP") -> str:
    """The id of document ``number`` of ``sender``, dated :data:`DOCUMENT_DAY`."""
    return f"{sender},{DOCUMENT_DAY:%Y/%m/%d},{number}/{notation}"


def document_edxml(
    sender: str,
    recipients: Iterable[str],
    number: int,
    *,
    business: int = 0,
    notation: str = "VP",
    sender_name: str | None = None,
    subject: str | None = None,
    content: str | None = None,
    due: date | None = None,
    promulgated: date | None = None,
    references: Sequence[Reference] = (),
    attachments: Sequence[Attachment] = (),
) -> bytes:
    """Document ``number`` from ``sender`` (named "Agency <code>" unless ``sender_name``) to
    ``recipients``, dated :data:`DOCUMENT_DAY`, id :func:`document_id` with ``notation`` (the
    Code's notation stays "VP"), subject "Văn bản số <number>" unless ``subject``."""
    today = promulgated or DOCUMENT_DAY
    return build(
        EdxmlDocument(
            sender=Organization(organ_id=sender, organ_name=sender_name or f"Agency {sender}"),
            recipients=tuple(Organization(organ_id=code) for code in recipients),
            document_id=document_id(sender, number, notation),
            code=Code(code_number=str(number), code_notation="VP"),
            promulgation_info=PromulgationInfo(place="Hà Nội", promulgation_date=today),
            document_type=DocumentType(type="1", type_name="Công văn"),
            subject=subject or f"Văn bản số {number}",
            content=content,
            due_date=due,
            business=Business(business_doc_type=BusinessDocType(business)),
            references=tuple(references),
            attachments=tuple(attachments),
        )
    )


def status_edxml(
    sender: str,
    about: str,
    code: StatusCode,
    description: str | None = None,
    *,
    sender_name: str | None = None,
) -> bytes:
    """Status ``code`` from ``sender`` about document ``about`` (a DocumentId), back to its
    sender (the DocumentId's organ), timestamped now in Vietnam."""
    return build(
        EdxmlStatus(
            sender=Organization(organ_id=sender, organ_name=sender_name),
            response_for=ResponseFor(organ_id=about.split(",")[0], document_id=about),
            status_code=code,
            timestamp=edxml_now(),
            description=description,
        )
    )


def document_with_attachment(
    sender: str, recipients: Sequence[str], number: int, content: bytes
) -> bytes:
    """Document ``number`` carrying ``content`` as its one PDF attachment (base64 inside)."""
    return document_edxml(
        sender,
        recipients,
        number,
        subject=f"Văn bản số {number} kèm tệp",
        references=(
            Reference(content_id="cid:1", content_type="application/pdf", attachment_name="vb.pdf"),
        ),
        attachments=(
            Attachment(
                content_id="cid:1",
                content=content,
                attachment_name="vb.pdf",
                content_type="application/pdf",
            ),
        ),
    )
