"""Opening received envelopes (``adapters.opening``): pure, so no broker and no event loop.
Real envelopes from the development PKI; every verdict the receive loop acts on."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime
from typing import Any

import pytest

from adapters import opening
from adapters.abc import Received, Refused
from adapters.config import ServedIdentity
from adapters.opening import EnvelopeOpener, check_matches
from backbone.edxml import (
    EdxmlDocument,
    EdxmlStatus,
    Organization,
    ResponseFor,
    StatusCode,
    read,
    validate,
)
from backbone.envelope import EnvelopeHeader, Kind, SealParties, read_frame, seal
from backbone.errors import BackboneError, HeaderMismatchError, NotARecipientError, Reason
from backbone.organ import OrganCode
from backbone.xmldsig import sign_edxml, verify_edxml
from tests.support import DevPki, document_edxml, document_id, make_pki
from tests.support.forging import resigned

pytestmark = pytest.mark.clock  # document ids carry the Vietnam date, from backbone.clock

G22, H41, H53, H53_DISTRICT = "000.00.00.G22", "000.00.00.H41", "000.00.00.H53", "000.00.32.H53"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> DevPki:
    return make_pki(tmp_path_factory.mktemp("opening-pki"))


def opener(pki: DevPki, *served: str, max_envelope_bytes: int = 1 << 24) -> EnvelopeOpener:
    agencies = {
        code: ServedIdentity(code, pki.agency(code).key, pki.agency(code).certificate, None)
        for code in served
    }
    return EnvelopeOpener(
        agencies, pki.validator(), max_envelope_bytes=max_envelope_bytes, system="test-system"
    )


def envelope(
    pki: DevPki,
    edxml: bytes,
    recipients: list[str],
    *,
    sign: bool = True,
    document: str | None = None,
) -> bytes:
    """What a sender's adapter publishes: ``edxml`` (XML-DSig signed unless ``sign`` is
    false) sealed from G22 to ``recipients``; ``document`` overrides the header's id."""
    sender = pki.agency(G22)
    content = sign_edxml(edxml, sender.key, sender.certificate) if sign else edxml
    return seal(
        content,
        SealParties(
            kind=Kind.DOCUMENT,
            sender=G22,
            sender_key=sender.key,
            sender_cert=sender.certificate,
            recipients={code: pki.agency(code).certificate for code in recipients},
            document_id=document or validate(edxml).document_id,  # type: ignore[union-attr]
            business_type=0,
        ),
    )


def test_the_model_handed_over_is_the_one_read_from_the_signed_content_alone(
    pki: DevPki,
) -> None:
    # One read at the recipient (issue 21): the model it validated is the tree verified in
    # place; it must equal what a reader of the signed canonical bytes alone finds.
    edxml = document_edxml(G22, [H41], 3)
    body = envelope(pki, edxml, [H41])

    [item], _ = opener(pki, H41).open(body)

    assert isinstance(item, Received)
    rebuilt = verify_edxml(item.edxml, pki.validator(), OrganCode.parse(G22))
    assert item.message == read(rebuilt.signed_xml)


def test_a_signed_document_opens_into_one_received_item_for_the_served_recipient(
    pki: DevPki,
) -> None:
    edxml = document_edxml(G22, [H41], 1)
    body = envelope(pki, edxml, [H41])

    items, refusals = opener(pki, H41).open(body)

    assert refusals == []
    [item] = items
    assert isinstance(item, Received)
    assert item.recipient == H41
    assert item.envelope_id == read_frame(body).header.envelope_id
    assert isinstance(item.message, EdxmlDocument)
    assert item.message.document_id == document_id(G22, 1)
    assert validate(item.edxml).document_id == document_id(G22, 1)  # type: ignore[union-attr]
    assert item.signer_certificate_pem.startswith("-----BEGIN CERTIFICATE-----")


def test_a_hub_opens_one_item_per_served_recipient_and_ignores_the_others(pki: DevPki) -> None:
    edxml = document_edxml(G22, [H53, H53_DISTRICT, H41], 2)
    body = envelope(pki, edxml, [H53, H53_DISTRICT, H41])

    items, refusals = opener(pki, H53, H53_DISTRICT).open(body)

    assert refusals == []
    assert sorted(item.recipient for item in items) == sorted([H53, H53_DISTRICT])


def test_an_envelope_for_no_served_agency_is_not_ours(pki: DevPki) -> None:
    body = envelope(pki, document_edxml(G22, [H41], 3), [H41])

    with pytest.raises(NotARecipientError, match="serves none of them"):
        opener(pki, H53).open(body)


def test_a_changed_byte_makes_the_envelope_unauthentic(pki: DevPki) -> None:
    body = bytearray(envelope(pki, document_edxml(G22, [H41], 4), [H41]))
    body[len(body) // 2] ^= 0x01

    with pytest.raises(BackboneError):
        opener(pki, H41).open(bytes(body))


def test_an_envelope_over_the_size_limit_is_refused_before_anything_else(pki: DevPki) -> None:
    body = envelope(pki, document_edxml(G22, [H41], 5), [H41])

    with pytest.raises(BackboneError):
        opener(pki, H41, max_envelope_bytes=len(body) - 1).open(body)


def test_unsigned_content_is_refused_with_its_plaintext_kept(pki: DevPki) -> None:
    edxml = document_edxml(G22, [H41], 6)
    body = envelope(pki, edxml, [H41], sign=False)

    items, refusals = opener(pki, H41).open(body)

    assert items == []
    [refusal] = refusals
    assert isinstance(refusal, Refused)
    assert refusal.recipient == H41
    assert refusal.edxml == edxml
    assert refusal.body == body
    assert refusal.header.envelope_id == read_frame(body).header.envelope_id


def test_content_saying_another_document_id_than_the_signed_header_is_refused(
    pki: DevPki,
) -> None:
    body = envelope(pki, document_edxml(G22, [H41], 7), [H41], document=document_id(G22, 8))

    items, [refusal] = opener(pki, H41).open(body)

    assert items == []
    assert refusal.reason == Reason.HEADER_MISMATCH
    assert "DocumentId" in refusal.message


def test_check_matches_names_what_differs(pki: DevPki) -> None:
    body = envelope(pki, document_edxml(G22, [H41], 9), [H41])
    header = read_frame(body).header
    message = validate(document_edxml(G22, [H41], 9))

    check_matches(header, message, H41)  # the same: no complaint
    with pytest.raises(HeaderMismatchError, match="not among the edXML's To"):
        check_matches(header, message, H53)
    other = validate(document_edxml(H41, [G22], 9))
    with pytest.raises(HeaderMismatchError, match=r"the edXML's From is '000\.00\.00\.H41'"):
        check_matches(header, other, H41)


def _status_header(pki: DevPki, code: str, *, note: str | None = None) -> EnvelopeHeader:
    """The header of H41's status ``code`` about G22's document 9, as sealed."""
    about = document_id(G22, 9)
    issued = pki.agency(H41)
    body = seal(
        b"<edXML/>",
        SealParties(
            kind=Kind.STATUS,
            sender=H41,
            sender_key=issued.key,
            sender_cert=issued.certificate,
            recipients={G22: pki.agency(G22).certificate},
            document_id=about,
            status_code=code,
            status_note=note,
        ),
    )
    return read_frame(body).header


def _status(code: StatusCode, description: str | None = None) -> EdxmlStatus:
    return EdxmlStatus(
        sender=Organization(organ_id=H41),
        response_for=ResponseFor(organ_id=G22, document_id=document_id(G22, 9)),
        status_code=code,
        timestamp=datetime(2026, 11, 2, 9, 0),
        description=description,
    )


@pytest.mark.parametrize(
    ("claimed", "signed", "what"),
    [
        ("03", StatusCode.REQUEST_AGREED, "StatusCode is '15', the header's '03'"),
        ("06", StatusCode.REJECTED, "StatusCode is '02', the header's '06'"),
    ],
)
def test_a_status_header_claiming_another_code_than_the_signed_one_is_a_mismatch(
    pki: DevPki, claimed: str, signed: StatusCode, what: str
) -> None:
    header = _status_header(pki, claimed)
    check_matches(header, _status(StatusCode(claimed)), G22)  # the same code: fine
    with pytest.raises(HeaderMismatchError, match=re.escape(what)):
        check_matches(header, _status(signed), G22)


def test_a_status_note_not_the_signed_description_is_a_mismatch(pki: DevPki) -> None:
    header = _status_header(pki, "02", note="Gửi nhầm đơn vị")
    check_matches(header, _status(StatusCode.REJECTED, "  Gửi nhầm đơn vị "), G22)
    with pytest.raises(HeaderMismatchError, match="Description"):
        check_matches(header, _status(StatusCode.REJECTED, "Đã hoàn thành"), G22)


def test_a_document_header_claiming_another_business_type_is_a_mismatch(pki: DevPki) -> None:
    edxml = document_edxml(G22, [H41], 10, business=1)  # a revocation …
    body = envelope(pki, edxml, [H41])  # … sealed under business type 0

    items, [refusal] = opener(pki, H41).open(body)

    assert items == []
    assert refusal.reason is Reason.HEADER_MISMATCH
    assert "BussinessDocType is 1, the header's 0" in refusal.message


def test_a_document_under_its_recipients_document_id_is_refused_by_the_recipient(
    pki: DevPki,
) -> None:
    """(A router would refuse it first; a recipient trusts no one on the path.)"""
    body = envelope(pki, document_edxml(G22, [H41], 11), [H41])
    forged = resigned(body, pki.agency(G22).key, document_id=document_id(H41, 11))

    items, [refusal] = opener(pki, H41).open(forged)

    assert items == []
    assert refusal.reason is Reason.DOCUMENT_ID_NOT_SENDER


# -- the content is judged once per envelope, cheap checks first (issue 14, finding 1) -------


class Calls:
    """Counts the calls of a function it wraps."""

    def __init__(self, function: Callable[..., Any]) -> None:
        self.function = function
        self.count = 0

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self.count += 1
        return self.function(*args, **kwargs)


@pytest.fixture
def verifications(monkeypatch: pytest.MonkeyPatch) -> Calls:
    calls = Calls(opening.verify_edxml)
    monkeypatch.setattr(opening, "verify_edxml", calls)
    return calls


@pytest.fixture
def decryptions(monkeypatch: pytest.MonkeyPatch) -> Calls:
    calls = Calls(opening.decrypt_payload)
    monkeypatch.setattr(opening, "decrypt_payload", calls)
    return calls


def test_a_hub_decrypts_and_verifies_the_xml_signature_once_for_all_served_recipients(
    pki: DevPki, verifications: Calls, decryptions: Calls
) -> None:
    recipients = [H53, H53_DISTRICT, H41]
    body = envelope(pki, document_edxml(G22, recipients, 10), recipients)

    items, refusals = opener(pki, *recipients).open(body)

    assert refusals == []
    assert sorted(item.recipient for item in items) == sorted(recipients)
    assert verifications.count == 1
    assert decryptions.count == 1


def test_a_refusal_is_judged_once_and_given_to_every_served_recipient(
    pki: DevPki, verifications: Calls
) -> None:
    body = envelope(
        pki, document_edxml(G22, [H53, H53_DISTRICT], 11), [H53, H53_DISTRICT], sign=False
    )

    items, refusals = opener(pki, H53, H53_DISTRICT).open(body)

    assert items == []
    assert sorted(refusal.recipient for refusal in refusals) == sorted([H53, H53_DISTRICT])
    assert {refusal.reason for refusal in refusals} == {Reason.XML_SIGNATURE_INVALID}
    assert verifications.count == 1


def test_bulk_added_after_signing_is_refused_by_the_pre_scan_before_any_xml_signature_work(
    pki: DevPki, verifications: Calls
) -> None:
    sender = pki.agency(G22)
    edxml = document_edxml(G22, [H41], 12)
    signed = sign_edxml(edxml, sender.key, sender.certificate)
    bulk = " ".join(f'a{i}="x"' for i in range(80_000))
    altered = signed.replace(b"<edXML:edXMLBody>", f"<edXML:edXMLBody {bulk}>".encode())
    body = seal(
        altered,
        SealParties(
            kind=Kind.DOCUMENT,
            sender=G22,
            sender_key=sender.key,
            sender_cert=sender.certificate,
            recipients={H41: pki.agency(H41).certificate},
            document_id=document_id(G22, 12),
            business_type=0,
        ),
    )

    items, [refusal] = opener(pki, H41).open(body)

    assert items == []
    assert refusal.reason is Reason.EDXML_TOO_COMPLEX
    assert "80000 attributes" in refusal.message
    assert refusal.edxml == altered  # kept as it came, for the operator
    assert verifications.count == 0


def test_invalid_edxml_is_refused_before_its_xml_signature_is_looked_at(
    pki: DevPki, verifications: Calls
) -> None:
    edxml = document_edxml(G22, [H41], 13).replace(
        b"<edXML:Subject>", b"<edXML:Unknown/><edXML:Subject>"
    )
    body = envelope(pki, edxml, [H41], sign=False, document=document_id(G22, 13))

    _, [refusal] = opener(pki, H41).open(body)

    assert refusal.reason is Reason.EDXML_INVALID  # not xml_signature_invalid: it is unsigned
    assert verifications.count == 0
