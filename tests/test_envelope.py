"""The secure envelope: round trips, and every alteration refused with a specific error."""

from __future__ import annotations

import base64
import json
import struct
from datetime import UTC, datetime, timedelta

import pytest
from cryptography.hazmat.primitives import hashes
from hypothesis import given, settings
from hypothesis import strategies as st

from backbone.devtools.ca import IssuedCertificate
from backbone.edxml import EdxmlDocument, validate
from backbone.envelope import EnvelopeHeader, SealParties, open_envelope, read_frame, seal, verify
from backbone.envelope.algorithms import sign, wrap_key
from backbone.envelope.schema import SCHEMA_PATH, header_json_schema
from backbone.envelope.wire import encode
from backbone.errors import (
    BackboneError,
    CertificateBindingError,
    CertificateExpiredError,
    CertificateRevokedError,
    CertificateUntrustedError,
    DecryptionError,
    EnvelopeError,
    EnvelopeMalformedError,
    HeaderMismatchError,
    NotARecipientError,
    PayloadTamperedError,
    Reason,
    SignatureInvalidError,
)
from tests.support import DevPki, document_edxml, make_pki

pytestmark = pytest.mark.clock  # scripts/clock-check runs it at fixed instants

SENDER = "000.00.00.G22"
RECIPIENTS = ("000.00.00.H41", "000.00.00.H14", "000.00.00.G17")
DOCUMENT_ID = "000.00.00.G22,2015/09/30,7816/VPCP-TTĐT"
EDXML = b'<?xml version="1.0" encoding="UTF-8"?><edXML>' + b"x" * 4000 + b"</edXML>"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> DevPki:
    return make_pki(tmp_path_factory.mktemp("pki"))


def _seal(
    pki: DevPki,
    recipients: tuple[str, ...] = RECIPIENTS,
    *,
    sender: str = SENDER,
    issued: IssuedCertificate | None = None,
    edxml: bytes = EDXML,
) -> bytes:
    signer = issued or pki.agency(sender)
    return seal(
        edxml,
        SealParties(
            kind="document",
            sender=sender,
            sender_key=signer.key,
            sender_cert=signer.certificate,
            recipients={code: pki.agency(code).certificate for code in recipients},
            document_id=DOCUMENT_ID.replace(SENDER, sender),  # a DocumentId is its sender's
            business_type=0,
        ),
    )


@pytest.fixture(scope="module")
def body(pki: DevPki) -> bytes:
    return _seal(pki)


def _open(pki: DevPki, body: bytes, recipient: str = RECIPIENTS[0]) -> bytes:
    opened = open_envelope(
        body,
        recipient=recipient,
        recipient_key=pki.agency(recipient).key,
        validator=pki.validator(),
    )
    return opened.edxml


def _flip(body: bytes, position: int, mask: int = 0x01) -> bytes:
    return body[:position] + bytes([body[position] ^ mask]) + body[position + 1 :]


def _header_span(body: bytes) -> tuple[int, int]:
    (length,) = struct.unpack_from(">I", body, 4)
    return 8, 8 + length


# -- round trips -------------------------------------------------------------------------


def test_one_recipient_round_trip(pki: DevPki) -> None:
    body = _seal(pki, RECIPIENTS[:1])
    verified = verify(body, pki.validator())
    assert verified.header.recipients == [RECIPIENTS[0]]
    assert str(verified.sender.identity) == SENDER
    assert _open(pki, body) == EDXML


def test_three_recipients_each_open_the_same_payload(pki: DevPki, body: bytes) -> None:
    header = verify(body, pki.validator()).header
    assert header.recipients == list(RECIPIENTS)
    assert [wrap.recipient for wrap in header.key_wraps] == list(RECIPIENTS)
    for code in RECIPIENTS:
        assert _open(pki, body, code) == EDXML


def test_the_header_describes_the_document_and_commits_to_the_payload(
    pki: DevPki, body: bytes
) -> None:
    header, _, _, ciphertext = read_frame(body)
    assert (header.kind, header.sender, header.document_id) == ("document", SENDER, DOCUMENT_ID)
    assert (header.business_type, header.status_code) == (0, None)
    assert header.payload_size == len(ciphertext) == len(EDXML) + 16
    assert header.created.tzinfo is not None
    wrap = header.key_wraps[0]
    recipient_cert = pki.agency(RECIPIENTS[0]).certificate
    assert wrap.cert_sha256 == recipient_cert.fingerprint(hashes.SHA256()).hex()
    assert EDXML not in body


def test_a_status_round_trips_without_a_business_type(pki: DevPki) -> None:
    sender = pki.agency(RECIPIENTS[0])
    body = seal(
        b"<edXML><Status/></edXML>",
        SealParties(
            kind="status",
            sender=RECIPIENTS[0],
            sender_key=sender.key,
            sender_cert=sender.certificate,
            recipients={SENDER: pki.agency(SENDER).certificate},
            document_id=DOCUMENT_ID,
            status_code="03",
        ),
    )
    opened = open_envelope(
        body, recipient=SENDER, recipient_key=pki.agency(SENDER).key, validator=pki.validator()
    )
    assert (opened.header.kind, opened.header.status_code) == ("status", "03")
    assert opened.edxml == b"<edXML><Status/></edXML>"


def test_every_envelope_has_its_own_id_nonce_and_key(pki: DevPki) -> None:
    first, second = (read_frame(_seal(pki, RECIPIENTS[:1])).header for _ in range(2))
    assert first.envelope_id != second.envelope_id
    assert first.nonce != second.nonce
    assert first.key_commitment != second.key_commitment


# -- single-byte alterations --------------------------------------------------------------


def test_a_changed_letter_in_a_header_string_breaks_the_signature(pki: DevPki, body: bytes) -> None:
    position = body.index(b"VPCP-TT")  # inside document_id
    with pytest.raises(SignatureInvalidError) as caught:
        verify(_flip(body, position), pki.validator())
    assert caught.value.reason is Reason.SIGNATURE_INVALID
    assert caught.value.message.startswith("envelope signature does not verify")


def test_a_changed_key_wrap_breaks_the_signature(pki: DevPki, body: bytes) -> None:
    wrapped = read_frame(body).header.key_wraps[1].wrapped_key
    position = body.index(wrapped.encode()) + 10
    altered = body[:position] + (b"A" if body[position : position + 1] != b"A" else b"B")
    altered += body[position + 1 :]
    with pytest.raises(SignatureInvalidError):
        verify(altered, pki.validator())


def test_a_changed_json_structure_byte_is_malformed(pki: DevPki, body: bytes) -> None:
    start, _ = _header_span(body)
    assert body[start : start + 1] == b"{"
    with pytest.raises(EnvelopeMalformedError, match="header does not match the envelope schema"):
        verify(body[:start] + b"[" + body[start + 1 :], pki.validator())


def test_a_changed_payload_byte_is_tampering(pki: DevPki, body: bytes) -> None:
    with pytest.raises(PayloadTamperedError) as caught:
        verify(_flip(body, len(body) - 100), pki.validator())
    assert caught.value.reason is Reason.PAYLOAD_TAMPERED


def test_a_truncated_or_extended_payload_is_tampering(pki: DevPki, body: bytes) -> None:
    with pytest.raises(PayloadTamperedError, match="payload is"):
        verify(body[:-1], pki.validator())
    with pytest.raises(PayloadTamperedError, match="payload is"):
        verify(body + b"\x00", pki.validator())


def test_a_changed_signature_byte_breaks_the_signature(pki: DevPki, body: bytes) -> None:
    _, end = _header_span(body)
    with pytest.raises(SignatureInvalidError):
        verify(_flip(body, end + 4 + 100), pki.validator())


def test_a_header_from_another_envelope_does_not_fit_this_payload(pki: DevPki, body: bytes) -> None:
    other = read_frame(_seal(pki))
    mine = read_frame(body)
    swapped = encode(other.header_bytes, other.signature, mine.ciphertext)
    with pytest.raises(PayloadTamperedError, match="SHA-256 does not match"):
        verify(swapped, pki.validator())


@settings(max_examples=400, deadline=None)
@given(data=st.data())
def test_no_single_byte_change_anywhere_survives_verify_and_open(
    pki: DevPki, body: bytes, data: st.DataObject
) -> None:
    position = data.draw(st.integers(0, len(body) - 1), label="position")
    mask = data.draw(st.integers(1, 255), label="mask")
    with pytest.raises(BackboneError):
        _open(pki, _flip(body, position, mask))


def test_flipping_the_low_bit_of_every_byte_is_refused(pki: DevPki) -> None:
    body = _seal(pki, RECIPIENTS[:1], edxml=b"<edXML/>")
    validator = pki.validator()
    key = pki.agency(RECIPIENTS[0]).key
    for position in range(len(body)):
        with pytest.raises(BackboneError):
            open_envelope(
                _flip(body, position),
                recipient=RECIPIENTS[0],
                recipient_key=key,
                validator=validator,
            )


# -- framing ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cut", "message"),
    [
        (3, "envelope is 3 bytes, too short for the magic and header length (8)"),
        (7, "envelope is 7 bytes, too short for the magic and header length (8)"),
        (8, "header length"),
        (100, "header length"),
    ],
)
def test_truncated_framing_is_malformed(body: bytes, cut: int, message: str) -> None:
    with pytest.raises(EnvelopeMalformedError) as caught:
        read_frame(body[:cut])
    assert caught.value.message.startswith(message)


def test_a_body_ending_inside_the_signature_is_malformed(body: bytes) -> None:
    _, end = _header_span(body)
    with pytest.raises(EnvelopeMalformedError) as caught:
        read_frame(body[: end + 4 + 10])
    assert caught.value.message == (
        "signature length 256 exceeds body (10 bytes follow the signature length field)"
    )
    with pytest.raises(EnvelopeMalformedError) as caught:
        read_frame(body[: end + 2])
    assert caught.value.message.startswith(f"header length {end - 8} exceeds body")


def test_a_header_length_beyond_the_body_is_named(body: bytes) -> None:
    altered = body[:4] + struct.pack(">I", 9999) + body[8:100]
    with pytest.raises(EnvelopeMalformedError) as caught:
        read_frame(altered)
    assert caught.value.message.startswith("header length 9999 exceeds body (92 bytes")


def test_a_wrong_magic_is_malformed(body: bytes) -> None:
    with pytest.raises(EnvelopeMalformedError) as caught:
        read_frame(b"VDX2" + body[4:])
    assert caught.value.message == "envelope starts with b'VDX2', not the magic b'VDX1'"


def test_a_zero_length_signature_is_malformed(body: bytes) -> None:
    _, end = _header_span(body)
    altered = body[:end] + struct.pack(">I", 0) + body[end + 4 :]
    with pytest.raises(EnvelopeMalformedError, match="signature length 0 is outside"):
        read_frame(altered)


def test_a_body_over_the_size_limit_is_refused_before_parsing(body: bytes) -> None:
    with pytest.raises(EnvelopeMalformedError) as caught:
        read_frame(body, max_size=1000)
    assert caught.value.reason is Reason.ENVELOPE_TOO_LARGE


# -- recipients ----------------------------------------------------------------------------


def test_an_agency_not_addressed_is_not_a_recipient(pki: DevPki, body: bytes) -> None:
    with pytest.raises(NotARecipientError) as caught:
        _open(pki, body, "000.00.00.H53")
    assert caught.value.reason is Reason.NOT_A_RECIPIENT


def test_a_recipient_with_the_wrong_key_cannot_decrypt(pki: DevPki, body: bytes) -> None:
    with pytest.raises(DecryptionError) as caught:
        open_envelope(
            body,
            recipient=RECIPIENTS[0],
            recipient_key=pki.agency(RECIPIENTS[1]).key,
            validator=pki.validator(),
        )
    assert caught.value.reason is Reason.DECRYPTION_FAILED


def test_a_sender_giving_recipients_different_keys_is_caught_by_the_key_commitment(
    pki: DevPki, body: bytes
) -> None:
    """A malicious sender re-signs a header whose second wrap holds another key."""
    frame = read_frame(body)
    fields = json.loads(frame.header_bytes)
    other_key = wrap_key(
        pki.agency(RECIPIENTS[1]).certificate.public_key(),  # type: ignore[arg-type]
        b"\x01" * 32,
    )
    fields["key_wraps"][1]["wrapped_key"] = base64.b64encode(other_key).decode()
    header_bytes = json.dumps(fields, ensure_ascii=False, separators=(",", ":")).encode()
    forged = encode(header_bytes, sign(pki.agency(SENDER).key, header_bytes), frame.ciphertext)
    assert _open(pki, forged, RECIPIENTS[0]) == EDXML
    with pytest.raises(DecryptionError, match="not the one the header commits to"):
        _open(pki, forged, RECIPIENTS[1])


# -- the sender's certificate --------------------------------------------------------------


def test_an_expired_sender_certificate_is_refused(pki: DevPki) -> None:
    code = "000.00.00.H20"
    expired = pki.ca.issue(code, not_before=datetime.now(UTC) - timedelta(days=5), days=1)
    with pytest.raises(CertificateExpiredError):
        verify(_seal(pki, sender=code, issued=expired), pki.validator())


def test_a_revoked_sender_certificate_is_refused(pki: DevPki) -> None:
    code = "000.00.00.H21"
    body = _seal(pki, sender=code, issued=pki.ca.issue(code))
    verify(body, pki.validator())
    pki.ca.revoke(code)
    with pytest.raises(CertificateRevokedError):
        verify(body, pki.validator())


def test_a_sender_certificate_from_a_foreign_ca_is_refused(
    pki: DevPki, tmp_path_factory: pytest.TempPathFactory
) -> None:
    foreign = make_pki(tmp_path_factory.mktemp("foreign"))
    with pytest.raises(CertificateUntrustedError):
        verify(_seal(pki, issued=foreign.agency(SENDER)), pki.validator())


def test_a_sender_signing_with_another_agencys_certificate_is_refused(pki: DevPki) -> None:
    with pytest.raises(CertificateBindingError):
        verify(_seal(pki, sender="000.00.00.H53", issued=pki.agency(SENDER)), pki.validator())


# -- sealing -------------------------------------------------------------------------------


def test_seal_with_a_validator_refuses_a_recipient_certificate_of_another_agency(
    pki: DevPki,
) -> None:
    sender = pki.agency(SENDER)
    with pytest.raises(CertificateBindingError, match=r"bound to 000\.00\.00\.H14"):
        seal(
            EDXML,
            SealParties(
                kind="document",
                sender=SENDER,
                sender_key=sender.key,
                sender_cert=sender.certificate,
                recipients={RECIPIENTS[0]: pki.agency(RECIPIENTS[1]).certificate},
                document_id=DOCUMENT_ID,
                business_type=0,
            ),
            validator=pki.validator(),
        )


def test_seal_refuses_a_key_that_is_not_the_certificates(pki: DevPki) -> None:
    with pytest.raises(CertificateBindingError, match="not the key of its certificate"):
        seal(
            EDXML,
            SealParties(
                kind="document",
                sender=SENDER,
                sender_key=pki.agency(RECIPIENTS[0]).key,
                sender_cert=pki.agency(SENDER).certificate,
                recipients={RECIPIENTS[0]: pki.agency(RECIPIENTS[0]).certificate},
                document_id=DOCUMENT_ID,
                business_type=0,
            ),
        )


def test_seal_refuses_a_document_without_a_business_type(pki: DevPki) -> None:
    sender = pki.agency(SENDER)
    with pytest.raises(EnvelopeError, match="a document needs business_type"):
        seal(
            EDXML,
            SealParties(
                kind="document",
                sender=SENDER,
                sender_key=sender.key,
                sender_cert=sender.certificate,
                recipients={RECIPIENTS[0]: pki.agency(RECIPIENTS[0]).certificate},
                document_id=DOCUMENT_ID,
            ),
        )


def _seal_claims(
    pki: DevPki, *, sender: str = SENDER, to: str = RECIPIENTS[0], **claims: object
) -> bytes:
    issued = pki.agency(sender)
    fields: dict[str, object] = {"kind": "document", "document_id": DOCUMENT_ID, "business_type": 0}
    fields.update(claims)
    return seal(
        EDXML,
        SealParties(
            sender=sender,
            sender_key=issued.key,
            sender_cert=issued.certificate,
            recipients={to: pki.agency(to).certificate},
            **fields,  # type: ignore[arg-type]
        ),
    )


ADDRESSEES = DOCUMENT_ID.replace(SENDER, RECIPIENTS[0])  # the recipient's own DocumentId
THIRD = DOCUMENT_ID.replace(SENDER, RECIPIENTS[1])  # an agency's not party to the envelope
STATUS = {"kind": "status", "business_type": None}


@pytest.mark.parametrize(
    ("claims", "reason"),
    [
        ({"document_id": DOCUMENT_ID + "\n\x1b[2J"}, Reason.DOCUMENT_ID_MALFORMED),
        ({"document_id": "7816/VPCP-TTĐT"}, Reason.DOCUMENT_ID_MALFORMED),
        ({"document_id": ADDRESSEES}, Reason.DOCUMENT_ID_NOT_SENDER),
        ({"business_type": 1, "document_id": THIRD}, Reason.DOCUMENT_ID_NOT_SENDER),
        ({**STATUS, "status_code": "13", "document_id": THIRD}, Reason.DOCUMENT_ID_NOT_SENDER),
        ({**STATUS, "status_code": "03"}, Reason.STATUS_MISADDRESSED),
        ({**STATUS, "status_code": "03", "document_id": THIRD}, Reason.STATUS_MISADDRESSED),
    ],
    ids=[
        "control-characters",
        "no-organ",
        "recipients-id",
        "revoking-anothers",
        "taking-back-anothers",
        "status-about-own",
        "status-to-a-third-party",
    ],
)
def test_seal_refuses_a_header_whose_document_id_is_not_bound_to_its_parties(
    pki: DevPki, claims: dict[str, object], reason: Reason
) -> None:
    with pytest.raises(BackboneError) as caught:
        _seal_claims(pki, **claims)
    assert caught.value.reason is reason


def test_seal_binds_a_status_to_the_original_sender_and_a_take_back_to_its_own(
    pki: DevPki,
) -> None:
    answer = _seal_claims(pki, sender=RECIPIENTS[0], to=SENDER, status_code="03", **STATUS)
    assert read_frame(answer).header.document_id == DOCUMENT_ID
    take_back = _seal_claims(pki, status_code="13", **STATUS)
    assert read_frame(take_back).header.recipients == [RECIPIENTS[0]]


def test_seal_given_the_edxml_refuses_a_header_that_says_otherwise(pki: DevPki) -> None:
    document = validate(document_edxml(SENDER, [RECIPIENTS[0]], 3, business=2))
    assert isinstance(document, EdxmlDocument)
    claims = {"document_id": document.document_id, "message": document}
    _seal_claims(pki, business_type=2, **claims)  # what the edXML says: sealed
    with pytest.raises(HeaderMismatchError, match="BussinessDocType is 2, the header's 0"):
        _seal_claims(pki, business_type=0, **claims)
    with pytest.raises(HeaderMismatchError, match="not among the edXML's To"):
        _seal_claims(pki, to=RECIPIENTS[1], business_type=2, **claims)


# -- the header schema ----------------------------------------------------------------------


def test_the_header_schema_refuses_key_wraps_that_do_not_match_the_recipients(
    body: bytes,
) -> None:
    fields = json.loads(read_frame(body).header_bytes)
    fields["key_wraps"] = fields["key_wraps"][:2]
    with pytest.raises(ValueError, match="exactly one wrap per recipient"):
        EnvelopeHeader.model_validate_json(json.dumps(fields))


def test_the_header_schema_refuses_a_non_utc_creation_time(body: bytes) -> None:
    fields = json.loads(read_frame(body).header_bytes)
    fields["created"] = "2026-01-01T07:00:00+07:00"
    with pytest.raises(ValueError, match="must be in UTC"):
        EnvelopeHeader.model_validate_json(json.dumps(fields))


def test_the_published_schema_is_the_one_the_model_generates() -> None:
    assert SCHEMA_PATH.read_text(encoding="utf-8") == header_json_schema(), (
        "regenerate it: python -m backbone.envelope.schema"
    )
