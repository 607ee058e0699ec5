"""edXML messages as frozen value objects.

Field names are the edXML element names in snake_case, except ``sender`` (``From``) and
``recipients`` (``To``). An optional element that is absent is ``None``; a repeated one is
a tuple, empty when absent. Code lists that sources disagree on stay strings. The header's
Signature is not modelled: the XML-DSig layer owns it.
"""

from __future__ import annotations

from datetime import date, datetime
from enum import IntEnum, StrEnum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "Attachment",
    "Business",
    "BusinessDocType",
    "BusinessDocumentInfo",
    "Code",
    "DocumentType",
    "EdxmlDocument",
    "EdxmlMessage",
    "EdxmlStatus",
    "Kind",
    "Organization",
    "OtherInfo",
    "PromulgationInfo",
    "Receiver",
    "Reference",
    "ReplacementInfo",
    "ResponseFor",
    "SignerInfo",
    "StaffInfo",
    "StatusCode",
    "TraceHeader",
]


class Kind(StrEnum):
    DOCUMENT = "document"
    STATUS = "status"


class StatusCode(StrEnum):
    """Business status of a document, sent back to its sender (``StatusCode``)."""

    ARRIVED = "01"  # the receiving software has it; the clerk has not handled it yet
    REJECTED = "02"  # wrong recipient or errors, with a reason
    ACCEPTED = "03"  # registered in the incoming book
    ASSIGNED = "04"  # assigned by a leader
    PROCESSING = "05"
    COMPLETED = "06"
    TAKE_BACK_REQUESTED = "13"  # by the original sender, with a reason
    REQUEST_AGREED = "15"  # to an update or take-back request
    REQUEST_REFUSED = "16"  # to an update or take-back request


class BusinessDocType(IntEnum):
    """What a document message does (``BussinessDocType``)."""

    NEW = 0
    REVOCATION = 1
    UPDATE = 2
    REPLACEMENT = 3


class _Value(BaseModel):
    model_config = ConfigDict(
        frozen=True, extra="forbid", ser_json_bytes="base64", val_json_bytes="base64"
    )


class Organization(_Value):
    organ_id: str
    organization_in_charge: str | None = None
    organ_name: str | None = None
    organ_add: str | None = None
    email: str | None = None
    telephone: str | None = None
    fax: str | None = None
    website: str | None = None


class Code(_Value):
    code_number: str
    code_notation: str


class PromulgationInfo(_Value):
    place: str
    promulgation_date: date


class DocumentType(_Value):
    type: str
    type_detail: str | None = None
    type_name: str | None = None


class SignerInfo(_Value):
    full_name: str
    competence: str | None = None
    position: str | None = None


class OtherInfo(_Value):
    priority: str | None = None
    sphere_of_promulgation: str | None = None
    typer_notation: str | None = None
    promulgation_amount: int | None = Field(default=None, ge=0)
    page_amount: int | None = Field(default=None, ge=0)
    direction: bool | None = None
    appendixes: tuple[str, ...] = ()


class ResponseFor(_Value):
    organ_id: str
    document_id: str
    code: str | None = None
    promulgation_date: date | None = None


class StaffInfo(_Value):
    department: str | None = None
    staff: str | None = None
    mobile: str | None = None
    email: str | None = None


class TraceHeader(_Value):
    organ_id: str
    timestamp: datetime


class Receiver(_Value):
    organ_id: str
    receiver_type: str | None = None


class BusinessDocumentInfo(_Value):
    """For an update: which parts changed, and the recipients concerned."""

    document_info: str | None = None
    document_receiver: str | None = None
    receivers: tuple[Receiver, ...] = ()


class ReplacementInfo(_Value):
    """For a replacement: a replaced document and the organs that received it."""

    document_id: str
    organ_ids: tuple[str, ...] = ()


class Business(_Value):
    """``TraceHeaderList/Bussiness`` (spelled so in the standard)."""

    business_doc_type: BusinessDocType
    document_id: str | None = None
    business_doc_reason: str | None = None
    business_document_info: BusinessDocumentInfo | None = None
    paper: str | None = None
    staff_info: StaffInfo | None = None
    replacements: tuple[ReplacementInfo, ...] = ()


class Reference(_Value):
    """A manifest entry (``edXMLManifest/Reference``) naming an attachment by ContentId."""

    content_id: str = Field(min_length=1)
    content_type: str | None = None
    description: str | None = None
    attachment_name: str | None = None


class Attachment(_Value):
    """``AttachmentEncoded/Attachment``; ``content`` is the decoded file."""

    content_id: str = Field(min_length=1)
    content: bytes = Field(repr=False)
    attachment_name: str | None = None
    description: str | None = None
    content_type: str | None = None


class EdxmlDocument(_Value):
    kind: Literal[Kind.DOCUMENT] = Kind.DOCUMENT
    sender: Organization
    recipients: tuple[Organization, ...] = Field(min_length=1)
    document_id: str = Field(min_length=1)
    code: Code
    promulgation_info: PromulgationInfo
    document_type: DocumentType
    subject: str
    business: Business
    content: str | None = None
    signer_info: SignerInfo | None = None
    due_date: date | None = None
    other_info: OtherInfo | None = None
    response_for: tuple[ResponseFor, ...] = ()
    steering_type: str | None = None
    to_places: tuple[str, ...] = ()
    trace_headers: tuple[TraceHeader, ...] = ()
    references: tuple[Reference, ...] = ()
    attachments: tuple[Attachment, ...] = ()


class EdxmlStatus(_Value):
    kind: Literal[Kind.STATUS] = Kind.STATUS
    sender: Organization
    response_for: ResponseFor
    status_code: StatusCode
    timestamp: datetime
    staff_info: StaffInfo | None = None
    description: str | None = None


EdxmlMessage = Annotated[EdxmlDocument | EdxmlStatus, Field(discriminator="kind")]
