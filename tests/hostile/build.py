"""Inputs of the hostile corpus that must be built rather than stored: anything that needs
this run's PKI (envelopes, signatures, certificates) or is too big to keep in the repository.

A :class:`Kit` holds what builders need; :func:`send_input`, :func:`router_input` and
:func:`receive_input` turn a :class:`~tests.hostile.cases.Case` into what its layer takes.
"""

from __future__ import annotations

import base64
import itertools
import json
import string
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from backbone.devtools.ca import IssuedCertificate
from backbone.edxml import StatusCode
from backbone.envelope import Kind, SealParties, read_frame, seal
from backbone.envelope.algorithms import new_content_key, sign, wrap_key
from backbone.envelope.wire import encode
from backbone.pki.keys import generate_private_key, key_usage
from backbone.pki.validation import CertificateValidator, load_crl_file
from backbone.xmldsig import sign_edxml
from testkit.documents import DOCUMENT_DAY
from tests.hostile.cases import CASES, Case, Layer
from tests.support import VIA_HUB, DevPki, Exchange, document_edxml
from tests.support.forging import resigned

__all__ = [
    "ALTERED_AFTER_SIGNING",
    "HONEST",
    "KEY_BOMB_KEYS",
    "RECIPIENT",
    "Kit",
    "Submission",
    "key_bomb",
    "padded_header",
    "receive_input",
    "router_input",
    "send_input",
    "signed_then_altered",
]

HERE = Path(__file__).resolve().parent
SHARED_EDXML = HERE.parents[2] / "shared" / "interop" / "edxml"
HONEST = "000.00.00.G22"  # the sender in every case (honest or not, it holds its own key)
RECIPIENT = "000.00.00.H41"
IMPERSONATED = "000.00.05.G01"  # an agency in the directory that nobody in the corpus is
UNLISTED = "000.00.00.H99"  # an organ code the directory does not list
# Hub agencies, published by the hub's account: certificates are reissued for them.
EXPIRED_AGENCY, REVOKED_AGENCY, NO_SIGNING_AGENCY, HUB_PROVINCE = (
    VIA_HUB[3],
    VIA_HUB[2],
    VIA_HUB[1],
    VIA_HUB[0],
)
EDXML_SIZE_LIMIT = 64 * 1024 * 1024  # backbone.edxml.parser.DEFAULT_MAX_BYTES
ADAPTER_DOCUMENT_LIMIT = 16 * 1024 * 1024  # the hostile world's adapters' max_document_bytes
KEY_BOMB_KEYS = 100_000
PADDED_HEADER_BYTES = 512 * 1024  # a 1-recipient header may be ≈30 KB (envelope.bounds)


@dataclass(frozen=True, slots=True)
class Submission:
    """What one case publishes on the submit exchange. ``before`` are genuine envelopes (of
    ``before_by``) that must be routed first (the original a replay repeats)."""

    body: bytes
    publisher: str  # organ code whose connected system's broker account publishes it
    told: str  # organ code whose events queue must get the answer
    before: tuple[bytes, ...] = ()
    before_by: str = HONEST  # who publishes ``before`` (the original of another agency)


@dataclass
class Kit:
    """This run's exchange and PKI; ``router_validator`` is the router's, so that a
    revocation can reach it."""

    exchange: Exchange
    foreign: DevPki  # a CA the backbone does not trust
    router_validator: CertificateValidator
    router_limit: int
    _numbers: itertools.count[int] = field(default_factory=lambda: itertools.count(70_000))

    @property
    def pki(self) -> DevPki:
        return self.exchange.pki

    def number(self) -> int:
        return next(self._numbers)

    def document_id(self, number: int) -> str:
        return f"{HONEST},{DOCUMENT_DAY:%Y/%m/%d},{number}/VP"

    def genuine(self, number: int | None = None) -> bytes:
        """A valid document from HONEST to RECIPIENT, XML-signed and sealed by the book."""
        number = number or self.number()
        issued = self.pki.agency(HONEST)
        edxml = document_edxml(HONEST, [RECIPIENT], number)
        signed = sign_edxml(edxml, issued.key, issued.certificate)
        return self.seal_as_honest(signed, document_id=self.document_id(number))

    def seal_as_honest(
        self, edxml: bytes, *, document_id: str | None = None, due_date: date | None = None
    ) -> bytes:
        """What a dishonest HONEST does: seal any bytes with its real key, so the envelope is
        authentic and only the content is wrong."""
        issued = self.pki.agency(HONEST)
        return self.seal(
            edxml,
            HONEST,
            issued,
            [RECIPIENT],
            document_id or self.document_id(self.number()),
            due_date=due_date,
        )

    def seal_with(self, sender: str, issued: IssuedCertificate, *, to: str = RECIPIENT) -> bytes:
        """A document naming ``sender``, signed with ``issued`` (whoever that belongs to)."""
        number = self.number()
        document_id = f"{sender},{DOCUMENT_DAY:%Y/%m/%d},{number}/VP"
        return self.seal(document_edxml(sender, [to], number), sender, issued, [to], document_id)

    def seal(
        self,
        edxml: bytes,
        sender: str,
        issued: IssuedCertificate,
        recipients: list[str],
        document_id: str,
        *,
        status_code: str | None = None,
        due_date: date | None = None,
    ) -> bytes:
        """Any content, any sender, signed with ``issued``: a document (or a status with
        ``status_code``) encrypted to the recipients' certificates from this run's PKI."""
        return seal(
            edxml,
            SealParties(
                kind=Kind.DOCUMENT if status_code is None else Kind.STATUS,
                sender=sender,
                sender_key=issued.key,
                sender_cert=issued.certificate,
                recipients={code: self.pki.agency(code).certificate for code in recipients},
                document_id=document_id,
                business_type=0 if status_code is None else None,
                status_code=status_code,
                due_date=due_date,
            ),
        )

    def refresh_router_crls(self) -> None:
        self.router_validator.replace_crls([load_crl_file(self.pki.ca.crl_path)])


# -- adapter-send --------------------------------------------------------------------------


def send_input(case: Case, kit: Kit) -> bytes:
    return _file_or_built(case, kit)


def _file_or_built(case: Case, kit: Kit) -> bytes:
    source = case.source
    if source.startswith("inputs/"):
        return (HERE / source).read_bytes()
    if source.startswith("shared:"):
        return (SHARED_EDXML / source.removeprefix("shared:")).read_bytes()
    return _EDXML_BUILDERS[source](kit)


def _deep_nesting(_: Kit) -> bytes:
    depth = 10_000  # past libxml2's own limit (2,048), the backbone's is 64
    return (
        b'<?xml version="1.0" encoding="UTF-8"?>\n'
        b'<edXML xmlns="http://www.mic.gov.vn/TBT/QCVN_102_2016">'
        + b"<edXMLEnvelope>" * depth
        + b"</edXMLEnvelope>" * depth
        + b"</edXML>\n"
    )


def _oversized(_: Kit) -> bytes:
    """A valid-looking document over the edXML size limit (one huge attachment). The
    adapter refuses it before parsing: its envelope could never fit either."""
    head = (HERE / "inputs/valid_with_attachment.edxml").read_bytes()
    padding = b"QUFB" * (EDXML_SIZE_LIMIT // 4 + 1)  # base64 of "AAA…"
    data = head.replace(b"JVBERi0xLjQKJcfsj6IKJSVFT0YK", padding)
    assert len(data) > EDXML_SIZE_LIMIT
    return data


def _document_too_large(_: Kit) -> bytes:
    """A valid document just over the adapter's max_document_bytes: larger than one chunk,
    it would travel in chunks, and is refused by its size before it is read."""
    head = (HERE / "inputs/valid_with_attachment.edxml").read_bytes()
    padding = b"QUFB" * ((ADAPTER_DOCUMENT_LIMIT - len(head) + 256) // 4)
    data = head.replace(b"JVBERi0xLjQKJcfsj6IKJSVFT0YK", padding)
    assert ADAPTER_DOCUMENT_LIMIT < len(data) <= ADAPTER_DOCUMENT_LIMIT + 512
    return data


def _genuine_edxml(kit: Kit) -> bytes:
    return document_edxml(HONEST, [RECIPIENT], kit.number())


_LONG_OVERDUE = date(2001, 1, 1)


def _due_before_promulgation(kit: Kit) -> bytes:
    """Issue 14, finding 8: a document promulgated today but due in 2001, which would
    make its recipient look late the moment it arrives."""
    return document_edxml(HONEST, [RECIPIENT], kit.number(), due=_LONG_OVERDUE)


def _sealed_due_before_promulgation(kit: Kit) -> Submission:
    """The same document XML-signed and sealed by HONEST, its header consistent with it
    (same DocumentId, due date 2001/01/01): only the recipient can see the lie."""
    number = kit.number()
    edxml = document_edxml(HONEST, [RECIPIENT], number, due=_LONG_OVERDUE)
    body = kit.seal_as_honest(
        _signed(kit, edxml), document_id=kit.document_id(number), due_date=_LONG_OVERDUE
    )
    return Submission(body, HONEST, HONEST)


def _attribute_flood(kit: Kit) -> bytes:
    """A genuine document with 80,000 attributes on one element: refused before signing."""
    return _many_attributes(_genuine_edxml(kit))


_EDXML_BUILDERS: dict[str, Callable[[Kit], bytes]] = {
    "build:deep_nesting": _deep_nesting,
    "build:oversized": _oversized,
    "build:document_too_large": _document_too_large,
    "build:genuine": _genuine_edxml,
    "build:due_before_promulgation": _due_before_promulgation,
    "build:attribute_flood": _attribute_flood,
}


# -- adapter-receive -----------------------------------------------------------------------


def receive_input(case: Case, kit: Kit) -> Submission:
    """HONEST seals the hostile content itself (signed as XML-DSig first when the case says
    so) and publishes it with its own account: the router routes it, RECIPIENT refuses it."""
    if case.source in ALTERED_AFTER_SIGNING:
        return Submission(
            signed_then_altered(kit, ALTERED_AFTER_SIGNING[case.source]), HONEST, HONEST
        )
    if case.source == "build:bad_key_wrap":
        return Submission(_bad_key_wrap(kit), HONEST, HONEST)
    if case.source == "build:due_before_promulgation":
        return _sealed_due_before_promulgation(kit)
    if case.source == "build:document_id_mismatch":
        signed = _signed(kit, _genuine_edxml(kit))
        return Submission(kit.seal_as_honest(signed), HONEST, HONEST)
    if case.source == "build:business_type_mismatch":
        # A signed revocation (BussinessDocType 1) under a header saying new (0): routed as
        # new where a revocation would have needed the original.
        number = kit.number()
        revocation = _signed(kit, document_edxml(HONEST, [RECIPIENT], number, business=1))
        body = kit.seal_as_honest(revocation, document_id=kit.document_id(number))
        return Submission(body, HONEST, HONEST)
    if case.source == "build:recipient_not_in_to":
        number = kit.number()
        elsewhere = _signed(kit, document_edxml(HONEST, [IMPERSONATED], number))
        body = kit.seal_as_honest(elsewhere, document_id=kit.document_id(number))
        return Submission(body, HONEST, HONEST)
    edxml = _file_or_built(case, kit)
    if case.sign:
        edxml = _signed(kit, edxml)
    if case.source == "inputs/valid_with_attachment.edxml" and case.sign:
        # Altered after signing: the Subject no longer matches the signed digest.
        signed_subject = "Văn bản thử nghiệm".encode()
        assert signed_subject in edxml
        edxml = edxml.replace(signed_subject, "Văn bản đã sửa".encode())
    return Submission(kit.seal_as_honest(edxml), HONEST, HONEST)


def signed_then_altered(kit: Kit, alter: Callable[[bytes], bytes]) -> bytes:
    """A genuine document that HONEST XML-signs, then alters with ``alter``, then seals
    under the document's own DocumentId: only the content is hostile."""
    number = kit.number()
    signed = _signed(kit, document_edxml(HONEST, [RECIPIENT], number))
    altered = alter(signed)
    assert altered != signed
    return kit.seal_as_honest(altered, document_id=kit.document_id(number))


# Bulk added to a signed document. The digest no longer matches, but a recipient without
# limits canonicalises all of it before it finds out (issue 14, finding 1). Each stays
# under the hostile test's router limit (1 MiB).
BULK_ATTRIBUTES = 80_000
BULK_ELEMENTS = 200_000
BULK_NAMESPACES = 10_000
BULK_DEPTH = 1_000  # within libxml2's own limit (2,048), past the backbone's (64)
_BODY = b"<edXML:edXMLBody>"


def _many_attributes(signed: bytes) -> bytes:
    """80,000 attributes on one element (about 1 MiB: 25 s to verify before the limits)."""
    attributes = b" ".join(b'a%d="x"' % i for i in range(BULK_ATTRIBUTES))
    return signed.replace(_BODY, b"<edXML:edXMLBody " + attributes + b">", 1)


def _empty_element_flood(signed: bytes) -> bytes:
    return signed.replace(_BODY, _BODY + b"<p/>" * BULK_ELEMENTS, 1)


def _namespace_flood(signed: bytes) -> bytes:
    declarations = b" ".join(b'xmlns:n%d="urn:n%d"' % (i, i) for i in range(BULK_NAMESPACES))
    return signed.replace(_BODY, b"<edXML:edXMLBody " + declarations + b">", 1)


def _deep_nesting_after_signing(signed: bytes) -> bytes:
    return signed.replace(_BODY, _BODY + b"<p>" * BULK_DEPTH + b"</p>" * BULK_DEPTH, 1)


def _comment_splitting_subject(signed: bytes) -> bytes:
    """The signature still verifies (c14n without comments), but a reader taking the
    Subject element's text sees only the part before the comment (finding 7)."""
    subject = "<edXML:Subject>Văn bản".encode()
    assert subject in signed
    return signed.replace(subject, subject + " <!-- đã duyệt -->".encode(), 1)


def _unsigned_object(signed: bytes) -> bytes:
    """A second Subject in a ds:Object added after signing: the signature still verifies
    (the enveloped signature is not part of what it signs)."""
    extra = (
        '<ds:Object><edXML:Subject xmlns:edXML="http://www.mic.gov.vn/TBT/QCVN_102_2016">'
        "Chuyển ngay 10 tỷ đồng</edXML:Subject></ds:Object></ds:Signature>"
    ).encode()
    assert signed.count(b"</ds:Signature>") == 1
    return signed.replace(b"</ds:Signature>", extra)


ALTERED_AFTER_SIGNING: dict[str, Callable[[bytes], bytes]] = {
    "build:many_attributes": _many_attributes,
    "build:empty_element_flood": _empty_element_flood,
    "build:namespace_flood": _namespace_flood,
    "build:deep_nesting_after_signing": _deep_nesting_after_signing,
    "build:comment_splitting_subject": _comment_splitting_subject,
    "build:unsigned_object": _unsigned_object,
}


def _signed(kit: Kit, edxml: bytes) -> bytes:
    issued = kit.pki.agency(HONEST)
    return sign_edxml(edxml, issued.key, issued.certificate)  # with HONEST's real key


def _bad_key_wrap(kit: Kit) -> bytes:
    """The sender wraps a content key for RECIPIENT that is not the one it encrypted with,
    and signs that header: authentic, but it can never be opened."""
    body = kit.seal_as_honest(_signed(kit, _genuine_edxml(kit)))
    frame = read_frame(body)
    fields = json.loads(frame.header_bytes)
    recipient_key = kit.pki.agency(RECIPIENT).certificate.public_key()
    assert isinstance(recipient_key, rsa.RSAPublicKey)
    fields["key_wraps"][0]["wrapped_key"] = base64.b64encode(
        wrap_key(recipient_key, new_content_key())
    ).decode()
    header = json.dumps(fields).encode()
    return encode(header, sign(kit.pki.agency(HONEST).key, header), frame.ciphertext)


# -- router --------------------------------------------------------------------------------


def router_input(case: Case, kit: Kit) -> Submission:
    return _ROUTER_BUILDERS[case.source](kit)


def _reframed(body: bytes, edit: Callable[[dict[str, object]], None]) -> bytes:
    """The envelope with its header JSON edited after signing (signature kept)."""
    frame = read_frame(body)
    fields = json.loads(frame.header_bytes)
    edit(fields)
    return encode(json.dumps(fields).encode(), frame.signature, frame.ciphertext)


def _flip(body: bytes, position: int) -> bytes:
    data = bytearray(body)
    data[position] ^= 0x01
    return bytes(data)


def _tampered_header(kit: Kit) -> Submission:
    def change_document_id(fields: dict[str, object]) -> None:
        fields["document_id"] = f"{fields['document_id']}-changed"

    return Submission(_reframed(kit.genuine(), change_document_id), HONEST, HONEST)


def _tampered_key_wrap(kit: Kit) -> Submission:
    def swap_wrap(fields: dict[str, object]) -> None:
        wraps = fields["key_wraps"]
        assert isinstance(wraps, list)
        wrapped = base64.b64decode(wraps[0]["wrapped_key"])
        wraps[0]["wrapped_key"] = base64.b64encode(bytes([wrapped[0] ^ 1]) + wrapped[1:]).decode()

    return Submission(_reframed(kit.genuine(), swap_wrap), HONEST, HONEST)


def _tampered_signature(kit: Kit) -> Submission:
    body = kit.genuine()
    header_length = int.from_bytes(body[4:8], "big")
    return Submission(_flip(body, 8 + header_length + 4 + 10), HONEST, HONEST)


def _tampered_payload(kit: Kit) -> Submission:
    body = kit.genuine()
    return Submission(_flip(body, len(body) - 1), HONEST, HONEST)


def _garbage(_: Kit) -> Submission:
    return Submission(b"GET /inbox HTTP/1.1\r\nHost: broker\r\n\r\n", HONEST, HONEST)


def _large_garbage(kit: Kit) -> Submission:
    """Bulk just under the router's size limit that is no envelope: kept as a record only."""
    return Submission(b"%PDF-1.7\n" + b"\xff" * (kit.router_limit - 64), HONEST, HONEST)


def _truncated(kit: Kit) -> Submission:
    return Submission(kit.genuine()[:200], HONEST, HONEST)


def _non_utf8_header(kit: Kit) -> Submission:
    frame = read_frame(kit.genuine())
    header = frame.header_bytes.replace(b'"kind"', b'"k\xe9nd"', 1)
    return Submission(encode(header, frame.signature, frame.ciphertext), HONEST, HONEST)


def _header_schema(kit: Kit) -> Submission:
    def smuggle(fields: dict[str, object]) -> None:
        fields["version"] = 2
        fields["route_via"] = "000.00.00.H41"

    return Submission(_reframed(kit.genuine(), smuggle), HONEST, HONEST)


def _malformed_recipient_code(kit: Kit) -> Submission:
    def rename(fields: dict[str, object]) -> None:
        fields["recipients"] = ["28.22.H17"]

    return Submission(_reframed(kit.genuine(), rename), HONEST, HONEST)


def _oversized_envelope(kit: Kit) -> Submission:
    body = kit.genuine()
    return Submission(body + b"\0" * (kit.router_limit + 1 - len(body)), HONEST, HONEST)


def key_bomb(body: bytes, keys: int = KEY_BOMB_KEYS) -> bytes:
    """``body`` with ``keys`` unknown fields added to its header (signature kept): before the
    pre-scan, pydantic built one error per unknown key, on the router's event loop."""
    frame = read_frame(body)
    alphabet = string.ascii_letters + string.digits
    names = ("".join(chars) for chars in itertools.product(alphabet, repeat=3))
    extra = b"".join(b',"%s":0' % name.encode() for name in itertools.islice(names, keys))
    header = frame.header_bytes[:-1] + extra + b"}"
    return encode(header, frame.signature, frame.ciphertext)


def padded_header(body: bytes, issued: IssuedCertificate, size: int) -> bytes:
    """``body``'s header grown to ``size`` bytes and signed again with the sender's own key:
    its timestamp gets fraction digits (pydantic reads any number of them), so the header is
    authentic and schema-valid, only far larger than a header for its recipients can be."""
    frame = read_frame(body)
    created = json.dumps(json.loads(frame.header_bytes)["created"]).encode()
    assert created.endswith(b'Z"'), created
    whole = created if b"." in created else created[:-2] + b'.Z"'
    padded = whole[:-2] + b"0" * (size - len(frame.header_bytes) - len(whole) + len(created))
    header = frame.header_bytes.replace(created, padded + b'Z"', 1)
    assert len(header) == size
    return encode(header, sign(issued.key, header), frame.ciphertext)


def _header_key_bomb(kit: Kit) -> Submission:
    return Submission(key_bomb(kit.genuine()), HONEST, HONEST)


def _header_oversized_for_one_recipient(kit: Kit) -> Submission:
    body = padded_header(kit.genuine(), kit.pki.agency(HONEST), PADDED_HEADER_BYTES)
    return Submission(body, HONEST, HONEST)


def _expired(kit: Kit) -> Submission:
    issued = kit.pki.ca.issue(
        EXPIRED_AGENCY, not_before=datetime.now(UTC) - timedelta(days=5), days=1
    )
    return Submission(kit.seal_with(EXPIRED_AGENCY, issued), EXPIRED_AGENCY, EXPIRED_AGENCY)


def _not_yet_valid(kit: Kit) -> Submission:
    issued = kit.pki.ca.issue(EXPIRED_AGENCY, not_before=datetime.now(UTC) + timedelta(days=2))
    return Submission(kit.seal_with(EXPIRED_AGENCY, issued), EXPIRED_AGENCY, EXPIRED_AGENCY)


def _revoked(kit: Kit) -> Submission:
    issued = kit.pki.ca.issue(REVOKED_AGENCY)
    body = kit.seal_with(REVOKED_AGENCY, issued)
    kit.pki.ca.revoke(issued.certificate.serial_number)
    kit.refresh_router_crls()
    return Submission(body, REVOKED_AGENCY, REVOKED_AGENCY)


def _untrusted(kit: Kit) -> Submission:
    issued = kit.foreign.agency(HUB_PROVINCE)
    return Submission(kit.seal_with(HUB_PROVINCE, issued), HUB_PROVINCE, HUB_PROVINCE)


def _wrong_binding(kit: Kit) -> Submission:
    # Signs for the province with the certificate of one of its districts.
    issued = kit.pki.agency(NO_SIGNING_AGENCY)
    return Submission(kit.seal_with(HUB_PROVINCE, issued), HUB_PROVINCE, HUB_PROVINCE)


def _wrong_key_usage(kit: Kit) -> Submission:
    """A certificate from the trusted CA allowing keyEncipherment only: it may not sign."""
    ca = kit.pki.ca
    key = generate_private_key()
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, NO_SIGNING_AGENCY)]))
        .issuer_name(ca.certificate.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(key_usage(key_encipherment=True), critical=True)
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.UniformResourceIdentifier(f"urn:qcvn102:organ:{NO_SIGNING_AGENCY}")]
            ),
            critical=False,
        )
        .sign(ca.key, hashes.SHA256())
    )
    issued = IssuedCertificate(
        kit.pki.agency(NO_SIGNING_AGENCY).identity, certificate, key, Path(), Path()
    )
    return Submission(
        kit.seal_with(NO_SIGNING_AGENCY, issued), NO_SIGNING_AGENCY, NO_SIGNING_AGENCY
    )


def _sender_unknown(kit: Kit) -> Submission:
    # Not authenticated and not listed: the publisher is told.
    return Submission(kit.seal_with(UNLISTED, kit.pki.agency(UNLISTED)), HONEST, HONEST)


def _forged_sender(kit: Kit) -> Submission:
    """RECIPIENT's adapter, compromised, names HONEST as the sender (it has only its own
    key) and publishes with its own account."""
    return Submission(kit.seal_with(HONEST, kit.pki.agency(RECIPIENT)), RECIPIENT, RECIPIENT)


def _replay_by_another_account(kit: Kit) -> Submission:
    original = kit.genuine()
    return Submission(original, RECIPIENT, RECIPIENT, before=(original,))


def _replay_identical(kit: Kit) -> Submission:
    original = kit.genuine()
    return Submission(original, HONEST, HONEST, before=(original,))


def _resealed(kit: Kit) -> Submission:
    number = kit.number()
    return Submission(kit.genuine(number), HONEST, HONEST, before=(kit.genuine(number),))


def _unknown_recipient(kit: Kit) -> Submission:
    number = kit.number()
    issued = kit.pki.agency(HONEST)
    to = [RECIPIENT, UNLISTED]
    body = kit.seal(document_edxml(HONEST, to, number), HONEST, issued, to, kit.document_id(number))
    return Submission(body, HONEST, HONEST)


def _status_never_sent(kit: Kit) -> Submission:
    body = kit.exchange.seal_status(HONEST, RECIPIENT, kit.number(), StatusCode.ACCEPTED)
    return Submission(body, HONEST, HONEST)


def _status_implausible(kit: Kit) -> Submission:
    issued = kit.pki.agency(HONEST)
    about = f"{RECIPIENT},{DOCUMENT_DAY:%Y/%m/%d},{kit.number()}/VP"
    # The router never reads the content.
    body = kit.seal(b"<edXML/>", HONEST, issued, [RECIPIENT], about, status_code="09")
    return Submission(body, HONEST, HONEST)


def _referenced_unknown(kit: Kit) -> Submission:
    body = kit.exchange.seal_document(HONEST, [RECIPIENT], kit.number(), business=1)
    return Submission(body, HONEST, HONEST)


# -- router: a DocumentId bound to its sender ---------------------------------------------


def _others_id(code: str, kit: Kit) -> str:
    return f"{code},{DOCUMENT_DAY:%Y/%m/%d},{kit.number()}/VP"


def _as_honest(kit: Kit, body: bytes, **fields: object) -> bytes:
    """HONEST's own envelope with header ``fields`` rewritten and signed again by HONEST."""
    return resigned(body, kit.pki.agency(HONEST).key, **fields)


def _original_of(kit: Kit, code: str) -> tuple[bytes, str]:
    """A genuine, XML-signed document from ``code`` to RECIPIENT, and its DocumentId."""
    number = kit.number()
    issued = kit.pki.agency(code)
    signed = sign_edxml(document_edxml(code, [RECIPIENT], number), issued.key, issued.certificate)
    document = f"{code},{DOCUMENT_DAY:%Y/%m/%d},{number}/VP"
    return kit.seal(signed, code, issued, [RECIPIENT], document), document


def _honest_status(kit: Kit, to: str, about: str, code: str) -> bytes:
    """A status from HONEST (content never read by the router)."""
    return kit.seal(b"<edXML/>", HONEST, kit.pki.agency(HONEST), [to], about, status_code=code)


def _document_id_control_characters(kit: Kit) -> Submission:
    bad = f"{kit.document_id(kit.number())}\n\x1b[2J"
    return Submission(_as_honest(kit, kit.genuine(), document_id=bad), HONEST, HONEST)


def _document_id_shapeless(kit: Kit) -> Submission:
    return Submission(_as_honest(kit, kit.genuine(), document_id="7816"), HONEST, HONEST)


def _decoy(kit: Kit) -> Submission:
    """HONEST claims another agency's (next) DocumentId with a document of its own."""
    theirs = _others_id(IMPERSONATED, kit)
    return Submission(_as_honest(kit, kit.genuine(), document_id=theirs), HONEST, HONEST)


def _revocation_of_anothers(kit: Kit) -> Submission:
    original, theirs = _original_of(kit, IMPERSONATED)
    revocation = _as_honest(kit, kit.genuine(), document_id=theirs, business_type=1)
    return Submission(revocation, HONEST, HONEST, before=(original,), before_by=IMPERSONATED)


def _take_back_of_anothers(kit: Kit) -> Submission:
    original, theirs = _original_of(kit, IMPERSONATED)
    own = _honest_status(kit, RECIPIENT, kit.document_id(kit.number()), "13")
    take_back = _as_honest(kit, own, document_id=theirs)
    return Submission(take_back, HONEST, HONEST, before=(original,), before_by=IMPERSONATED)


def _document_id_of_the_recipient(kit: Kit) -> Submission:
    theirs = _others_id(RECIPIENT, kit)
    return Submission(_as_honest(kit, kit.genuine(), document_id=theirs), HONEST, HONEST)


def _status_to_a_third_party(kit: Kit) -> Submission:
    """03 about IMPERSONATED's document, sent to RECIPIENT (who received it) by HONEST."""
    original, theirs = _original_of(kit, IMPERSONATED)
    status = _honest_status(kit, RECIPIENT, _others_id(RECIPIENT, kit), "03")
    forged = _as_honest(kit, status, document_id=theirs)
    return Submission(forged, HONEST, HONEST, before=(original,), before_by=IMPERSONATED)


def _status_about_own_document(kit: Kit) -> Submission:
    number = kit.number()
    original = kit.genuine(number)
    status = _honest_status(kit, RECIPIENT, _others_id(RECIPIENT, kit), "06")
    forged = _as_honest(kit, status, document_id=kit.document_id(number))
    return Submission(forged, HONEST, HONEST, before=(original,))


def _status_from_no_party(kit: Kit) -> Submission:
    """02 from HONEST to IMPERSONATED about the document IMPERSONATED sent RECIPIENT."""
    original, theirs = _original_of(kit, IMPERSONATED)
    status = _honest_status(kit, IMPERSONATED, theirs, "02")
    return Submission(status, HONEST, HONEST, before=(original,), before_by=IMPERSONATED)


_ROUTER_BUILDERS: dict[str, Callable[[Kit], Submission]] = {
    "build:garbage": _garbage,
    "build:large_garbage": _large_garbage,
    "build:truncated_envelope": _truncated,
    "build:non_utf8_header": _non_utf8_header,
    "build:header_schema": _header_schema,
    "build:malformed_recipient_code": _malformed_recipient_code,
    "build:oversized_envelope": _oversized_envelope,
    "build:header_key_bomb": _header_key_bomb,
    "build:header_oversized_for_one_recipient": _header_oversized_for_one_recipient,
    "build:tampered_header": _tampered_header,
    "build:tampered_key_wrap": _tampered_key_wrap,
    "build:tampered_signature": _tampered_signature,
    "build:tampered_payload": _tampered_payload,
    "build:expired_certificate": _expired,
    "build:not_yet_valid_certificate": _not_yet_valid,
    "build:revoked_certificate": _revoked,
    "build:untrusted_certificate": _untrusted,
    "build:wrongly_bound_certificate": _wrong_binding,
    "build:wrong_key_usage_certificate": _wrong_key_usage,
    "build:sender_unknown": _sender_unknown,
    "build:forged_sender": _forged_sender,
    "build:replay_by_another_account": _replay_by_another_account,
    "build:replay_identical": _replay_identical,
    "build:resealed_document": _resealed,
    "build:unknown_recipient": _unknown_recipient,
    "build:status_never_sent": _status_never_sent,
    "build:status_implausible": _status_implausible,
    "build:referenced_document_unknown": _referenced_unknown,
    "build:document_id_control_characters": _document_id_control_characters,
    "build:document_id_shapeless": _document_id_shapeless,
    "build:decoy_under_anothers_document_id": _decoy,
    "build:revocation_of_anothers_document": _revocation_of_anothers,
    "build:take_back_of_anothers_document": _take_back_of_anothers,
    "build:document_id_of_the_recipient": _document_id_of_the_recipient,
    "build:status_to_a_third_party": _status_to_a_third_party,
    "build:status_about_own_document": _status_about_own_document,
    "build:status_from_no_party": _status_from_no_party,
}


def missing_builders() -> list[str]:
    """Builder names the manifest uses that this module does not define."""
    known = {**_EDXML_BUILDERS, **_ROUTER_BUILDERS, **ALTERED_AFTER_SIGNING}
    special = {
        "build:bad_key_wrap",
        "build:document_id_mismatch",
        "build:business_type_mismatch",
        "build:recipient_not_in_to",
    }
    return [
        case.source
        for case in CASES
        if case.source.startswith("build:")
        and case.source not in known
        and not (case.layer is Layer.RECEIVE and case.source in special)
    ]
