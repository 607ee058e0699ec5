"""The envelope header: what the router may read, and what the sender's signature covers.

Field by field meaning, and the framing around the header, are in
``schemas/envelope/README.md``; ``schemas/envelope/envelope-header.schema.json`` is generated
from these models (:mod:`backbone.envelope.schema`).
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Annotated, Literal, Self

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)

from backbone.edxml.models import Kind
from backbone.errors import OrganCodeError
from backbone.organ import MAX_CODE_LENGTH, OrganCode

__all__ = [
    "MAX_RECIPIENTS",
    "MAX_STATUS_NOTE",
    "EnvelopeHeader",
    "KeyWrap",
    "Kind",
    "Sha256Hex",
    "summarize",
]

MAX_RECIPIENTS = 1000
MAX_STATUS_NOTE = 500  # characters of a status's Description the router may read


def _organ_code(text: str) -> str:
    try:
        OrganCode.parse(text)
    except OrganCodeError as exc:
        raise ValueError(exc.message) from None  # pydantic reports ValueError, not our errors
    return text


def _utc(moment: datetime) -> datetime:
    if moment.utcoffset() != timedelta(0):
        raise ValueError("must be in UTC (a 'Z' or '+00:00' offset)")
    return moment


OrganCodeText = Annotated[
    str,
    Field(
        # QCVN 102 (right to left) or Decision 20/2020 (left to right); parsed below.
        pattern=r"^(?:[0-9]{3}\.[0-9]{2}\.[0-9]{2}\.[A-Z][0-9]{2}|[A-Z][0-9]{2}(?:\.[0-9A-Z]+)*)$",
        max_length=MAX_CODE_LENGTH,
        examples=["000.00.32.H53", "H01.151"],
    ),
    AfterValidator(_organ_code),
]
Sha256Hex = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$", description="SHA-256, lowercase hex")]
Base64Text = Annotated[
    str,
    Field(
        pattern=r"^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$",
        description="standard base64 (RFC 4648 §4) with padding, no line breaks",
    ),
]
_STRICT = ConfigDict(frozen=True, extra="forbid", strict=True)


class KeyWrap(BaseModel):
    """The content key, encrypted to one recipient's certificate."""

    model_config = _STRICT

    recipient: OrganCodeText
    cert_sha256: Sha256Hex = Field(
        description="SHA-256 fingerprint of the recipient certificate whose key wrapped the key"
    )
    alg: Literal["RSA-OAEP-256"] = Field(description="RSAES-OAEP, SHA-256, MGF1-SHA-256")
    wrapped_key: Annotated[Base64Text, Field(min_length=4, max_length=1368)]


class EnvelopeHeader(BaseModel):
    """Routing metadata and the cryptographic parameters of one envelope."""

    model_config = _STRICT

    version: Literal[1]
    envelope_id: str = Field(
        pattern=r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$",
        description="lowercase UUID, unique per envelope; its ASCII bytes are the AES-GCM AAD",
    )
    kind: Kind
    sender: OrganCodeText
    # fail_fast: the first bad item is reported, not one error per item (see ``bounds``).
    recipients: list[OrganCodeText] = Field(min_length=1, max_length=MAX_RECIPIENTS, fail_fast=True)
    document_id: str = Field(
        min_length=1,
        max_length=512,
        description="edXML DocumentId; for a status, the DocumentId the status is about",
    )
    business_type: Annotated[int, Field(ge=0, le=3)] | None = Field(
        description="BussinessDocType of a document (0 new, 1 revocation, 2 update, "
        "3 replacement); null for a status"
    )
    status_code: Annotated[str, Field(pattern=r"^[0-9]{2}$")] | None = Field(
        description="status code such as '03'; null for a document"
    )
    created: Annotated[AwareDatetime, AfterValidator(_utc)]
    payload_size: int = Field(ge=16, description="ciphertext length in bytes, GCM tag included")
    payload_digest: Sha256Hex = Field(description="SHA-256 of the ciphertext")
    key_commitment: Sha256Hex = Field(
        description="SHA-256 of the content key: every recipient decrypts with the same key"
    )
    content_encryption: Literal["A256GCM"] = Field(description="AES-256-GCM")
    nonce: str = Field(pattern=r"^[A-Za-z0-9+/]{16}$", description="base64 of the 12-byte nonce")
    key_wraps: list[KeyWrap] = Field(min_length=1, max_length=MAX_RECIPIENTS, fail_fast=True)
    sender_certificate: Annotated[Base64Text, Field(min_length=4, max_length=16384)] = Field(
        description="base64 DER of the sender's X.509 certificate"
    )
    signature_alg: Literal["RSASSA-PSS-SHA256"] = Field(
        description="RSASSA-PSS, SHA-256, MGF1-SHA-256, 32-byte salt"
    )
    # Optional, for tracking; absent from the wire when null (older readers accept it).
    due_date: date | None = Field(
        default=None, description="a document's edXML DueDate; null for a status or none"
    )
    status_note: str | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_STATUS_NOTE,
        description="a status's edXML Description (a rejection's reason), cut to "
        f"{MAX_STATUS_NOTE} characters; null for a document or none",
    )

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.kind == "document" and (self.business_type is None or self.status_code):
            raise ValueError("a document needs business_type and no status_code")
        if self.kind == "status" and (self.status_code is None or self.business_type is not None):
            raise ValueError("a status needs status_code and no business_type")
        if self.kind == "document" and self.status_note is not None:
            raise ValueError("a document carries no status_note")
        if self.kind == "status" and self.due_date is not None:
            raise ValueError("a status carries no due_date")
        if len(set(self.recipients)) != len(self.recipients):
            raise ValueError("recipients are not unique")
        wrapped = [wrap.recipient for wrap in self.key_wraps]
        if len(set(wrapped)) != len(wrapped) or set(wrapped) != set(self.recipients):
            raise ValueError("key_wraps must hold exactly one wrap per recipient")
        return self


def summarize(error: ValidationError, limit: int = 3) -> str:
    """The first few problems of a validation error, by field, without the offending input."""
    problems = [
        f"{'.'.join(str(part) for part in item['loc']) or 'header'}: {item['msg']}"
        for item in error.errors(include_url=False, include_input=False)[:limit]
    ]
    more = error.error_count() - limit
    return "; ".join(problems) + (f"; and {more} more" if more > 0 else "")
