"""The XML-DSig signature inside an edXML document (QCVN 102's ``edXMLHeader/Signature``).

One enveloped signature (W3C XML Signature 1.1) in ``edXMLHeader``: RSA-SHA256
(``http://www.w3.org/2001/04/xmldsig-more#rsa-sha256``, i.e. RSASSA-PKCS1-v1_5 with SHA-256),
SHA-256 digests, Exclusive XML Canonicalization 1.0 without comments
(``http://www.w3.org/2001/10/xml-exc-c14n#``) for both SignedInfo and the reference, and one
``Reference URI=""`` covering the whole document minus the signature (enveloped-signature
transform): the header, the body and the ``AttachmentEncoded`` attachments that lie outside
``edXMLEnvelope``. The signer's X.509 certificate is embedded in ``KeyInfo/X509Data``.

Only what the signature covers may travel: comments (which exclusive c14n without comments
leaves out, so one can split a signed text) are stripped before signing and refused when
verifying, and so is anything in ``ds:Signature`` besides ``SignedInfo``, ``SignatureValue``
and the certificate in ``KeyInfo`` (``edxml_unsigned_content``). The delivered bytes are then
the signed content plus the signature, and a plain reader of them sees nothing unsigned.

Exclusive c14n is chosen because it makes the signature independent of namespace
declarations inherited from outside the signed content, which matters when vendors re-wrap or
re-prefix edXML (real files mix the ``edXML:`` prefix with the default namespace).
"""

from __future__ import annotations

import base64
import binascii
import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import Encoding
from lxml import etree

from backbone.edxml.issues import line_of
from backbone.edxml.parser import hardened_parser, parse_xml
from backbone.errors import CertificateBindingError, EdxmlError, Reason, XmlSignatureError
from backbone.organ import OrganCode
from backbone.pki.validation import CertificateValidator, ValidatedCertificate
from backbone.xmldsig import libxmlsec
from backbone.xmldsig.profile import (
    DS_NS,
    check_canonicalisable,
    new_signature,
    read_signed_info,
    signed_bytes,
)
from backbone.xmldsig.splice import XML_DECLARATION, Splice, find_splice, write_spliced

__all__ = [
    "DS_NS",
    "EDXML_NS",
    "Framing",
    "VerifiedXml",
    "sign_edxml",
    "sign_edxml_into",
    "verify_edxml",
]

EDXML_NS = "http://www.mic.gov.vn/TBT/QCVN_102_2016"
_E = f"{{{EDXML_NS}}}"
_DS = f"{{{DS_NS}}}"
_HEADER_PATH = f"{_E}edXMLEnvelope/{_E}edXMLHeader"
_FROM_PATH = f"{_HEADER_PATH}/{_E}MessageHeader/{_E}From/{_E}OrganId"
_PLACEHOLDERS = (f"{_E}Signature", f"{_DS}Signature")
# What may be in the Signature outside SignedInfo (which the signature covers): the value and
# the certificate, as the backbone's signer writes them. Anything else is unsigned.
_UNSIGNED_ALLOWED = {
    f"{_DS}Signature": frozenset({f"{_DS}SignedInfo", f"{_DS}SignatureValue", f"{_DS}KeyInfo"}),
    f"{_DS}KeyInfo": frozenset({f"{_DS}X509Data"}),
    f"{_DS}X509Data": frozenset({f"{_DS}X509Certificate"}),
}

_DECLARATION = b'<?xml version="1.0" encoding="UTF-8"?>\n'


@dataclass(frozen=True, slots=True)
class VerifiedXml:
    """What the signature covers. Read the document from ``signed_xml`` only: it is rebuilt
    from the signed canonical bytes, so nothing unsigned (comments, the signature) is in it."""

    signed_xml: etree._Element
    # None when verified in place without them (``verify_edxml(in_place=True)``, a large
    # document): the signed canonical bytes were not made, and ``signed_xml`` is the
    # verified tree. With ``in_place=True, digest_bound=True`` they were made and held to the
    # digest, and ``signed_xml`` is still the verified tree.
    signed_data: bytes | None
    sender: OrganCode
    certificate: ValidatedCertificate


def sign_edxml(
    edxml: bytes,
    key: rsa.RSAPrivateKey,
    cert: x509.Certificate,
    *,
    tree: etree._Element | None = None,
) -> bytes:
    """Sign the whole document; the signature replaces any ``Signature`` in ``edXMLHeader``
    (vendor placeholders, or an earlier signature), at the same position, or else closes
    ``edXMLHeader``. Comments are removed first: the signature would not cover them (module
    docstring). Everything else keeps its bytes: the signed document is the original with
    the signature element put in (or swapped for the earlier one), so software on the
    other side gets the file its sender wrote, signed.

    ``tree`` is ``edxml`` as :func:`~backbone.edxml.parse_xml` (or ``examine``) returned it,
    so that a caller that validated the document first parses it once; it is changed in
    place (comments out, the signature in)."""
    root = parse_xml(edxml) if tree is None else tree
    _sign_in_place(root, key, cert)
    framing = Framing.of(edxml)
    body = bytes(etree.tostring(root, encoding="UTF-8"))
    if framing.crlf:
        body = body.replace(b"\n", b"\r\n")
    return framing.prolog + body + framing.epilog


def sign_edxml_into(
    target: Path,
    framing: Framing,
    tree: etree._Element,
    key: rsa.RSAPrivateKey,
    cert: x509.Certificate,
    original: BinaryIO | None = None,
) -> bool:
    """:func:`sign_edxml` written into the file ``target``, never whole in memory: for a
    large document, whose bytes the caller may drop once parsed (``framing`` keeps what the
    signed file takes from them). True when the file was written from the original's bytes
    (``original``, read again from its start) with the signature spliced in
    (:mod:`backbone.xmldsig.splice`; ``framing`` made with ``splice=True``); else, or if the
    bytes read there are not those parsed, libxml2 writes the signed tree to a file beside
    ``target`` by its name (through a Python file object, lxml hands over the escaped text
    of a large attachment in one more copy), which is then copied a block at a time behind
    the prolog, and the answer is False. Either file parses to the tree that was signed:
    for the splice, only if ``tree`` is ``original`` as parsed and left unchanged (signing
    itself aside), which the caller keeps (a tree changed in between would be signed as
    changed, while the bytes around the signature stay the original's)."""
    splice = framing.splice if original is not None else None
    if splice is not None and not _spliceable(tree, splice):
        splice = None
    signature = _sign_in_place(tree, key, cert)
    if splice is not None and original is not None:
        spliced = bytes(etree.tostring(signature, method="c14n", exclusive=True))
        if framing.crlf:
            spliced = spliced.replace(b"\n", b"\r\n")
        if write_spliced(target, original, splice, spliced):
            return True
    body = target.with_name(target.name + ".body")
    try:
        tree.getroottree().write(str(body), encoding="UTF-8", xml_declaration=False)
        with target.open("wb") as out, body.open("rb") as serialised:
            out.write(framing.prolog)
            while block := serialised.read(_COPY_BLOCK):
                out.write(block.replace(b"\n", b"\r\n") if framing.crlf else block)
            out.write(framing.epilog)
    finally:
        body.unlink(missing_ok=True)
    return False


_COPY_BLOCK = 1 << 20


@dataclass(frozen=True, slots=True)
class Framing:
    """What a signed document keeps of its original's bytes besides the tree: the XML
    declaration (:func:`_prolog`), the space after the root (:func:`_epilog`), whether
    its line breaks are CRLF, and (``splice=True``) where the signature can be spliced
    into them (:func:`~backbone.xmldsig.splice.find_splice`; None: nowhere safely)."""

    prolog: bytes
    epilog: bytes
    crlf: bool
    splice: Splice | None = None

    @classmethod
    def of(cls, edxml: bytes, *, splice: bool = False) -> Framing:
        # Written with CRLF: the parser read every line break as LF (XML's end-of-line rule),
        # so writing them back as CRLF changes no character any reader sees, nor the digest.
        # One byte looked for first: most files have no CR at all, and a byte's search is
        # several times faster than a pair's over a large document.
        crlf = (
            edxml.find(b"\r") >= 0
            and b"\r\n" in edxml
            and edxml.count(b"\r\n") == edxml.count(b"\n")
        )
        where = find_splice(edxml) if splice else None
        return cls(_prolog(edxml), _epilog(edxml), crlf, where)


def _spliceable(root: etree._Element, splice: Splice) -> bool:
    """The tree is the one :func:`~backbone.xmldsig.splice.find_splice` read the bytes of,
    as far as splicing needs: no comment (signing removes them from the tree, the bytes
    would keep them), and the header's placeholders and children as expat counted them."""
    if next(_comments(root), None) is not None:
        return False
    header = _header(root)
    placeholders = sum(1 for child in header if child.tag in _PLACEHOLDERS)
    return placeholders == splice.placeholders and len(header) == splice.header_children


def _comments(root: etree._Element) -> Iterator[etree._Element]:
    """Every comment of the document: before the root, in it, after it."""
    return itertools.chain(
        root.itersiblings(etree.Comment, preceding=True),
        root.iter(etree.Comment),
        root.itersiblings(etree.Comment),
    )


def _sign_in_place(
    root: etree._Element, key: rsa.RSAPrivateKey, cert: x509.Certificate
) -> etree._Element:
    """Comments out, the signature in (replacing any placeholder), signed; the signature."""
    etree.strip_tags(root.getroottree(), etree.Comment)
    header = _header(root)
    existing = [child for child in header if child.tag in _PLACEHOLDERS]
    position = header.index(existing[0]) if existing else len(header)
    tail = existing[0].tail if existing else None
    for element in existing:
        header.remove(element)
    signature = new_signature(cert.public_bytes(Encoding.DER))
    signature.tail = tail
    header.insert(position, signature)
    try:
        libxmlsec.sign(signature, key)
    except XmlSignatureError:
        check_canonicalisable(root)  # the one document-made failure, said as edxml_invalid
        raise
    return signature


def _prolog(edxml: bytes) -> bytes:
    """The original's XML declaration and the space after it, as written, if it declares
    UTF-8 (what the signed document is written in); the usual one otherwise."""
    found = XML_DECLARATION.match(edxml)
    if found is None or (found.group("encoding") or b"").lower() not in (b"", b"utf-8"):
        return _DECLARATION
    return found.group(0)


def _epilog(edxml: bytes) -> bytes:
    """The line break (or other space) after the root element, as written."""
    # From a window at the end, widened while it is all space: ``rstrip`` copies what it
    # keeps, the whole document (a GiB's copy for a large one, for a byte or two).
    window = _EPILOG_WINDOW
    while True:
        tail = edxml[-window:]
        kept = tail.rstrip(_SPACE)
        if kept or window >= len(edxml):
            return tail[len(kept) :]
        window *= 16


_SPACE = b" \t\r\n"
_EPILOG_WINDOW = 4096


def verify_edxml(
    edxml: bytes | etree._Element,
    validator: CertificateValidator,
    claimed_sender: OrganCode,
    *,
    in_place: bool = False,
    digest_bound: bool | None = None,
) -> VerifiedXml:
    """Verify the signature, that its certificate is valid for ``claimed_sender`` (the edXML
    ``From/OrganId``), and that the signed document names that sender. ``edxml`` is the
    document, or its tree as :func:`~backbone.edxml.parse_xml` returned it (so that a caller
    that validated it first parses it once). The tree is used in place, not copied: the
    signature is taken out while the document is canonicalised and put back after.

    ``in_place``: read the document from the verified tree itself (``signed_xml``, its
    signature still in it), the one whose canonical form libxmlsec1 digested, rather than
    from a tree rebuilt from the signed canonical bytes, which are neither made nor held:
    for a large document, held three times over otherwise (the canonical bytes cost as much
    again to make). What is unsigned in a tree (comments, content in the signature) is
    refused either way, and the reader reads nothing in the signature.

    ``digest_bound`` (by default: not ``in_place``): make the signed canonical bytes and hold
    them to the DigestValue libxmlsec1 checked (:func:`~backbone.xmldsig.profile.signed_bytes`).
    ``in_place=True, digest_bound=True`` is what the recipient of a single message does
    (issue 21): the same check of the tree's canonical form as without ``in_place``, without
    a second tree rebuilt from those bytes, so that the model it read from this very tree
    while validating it is the model of the signed content (nothing but the canonical form's
    quirks could differ between the two trees, and no reader sees those).

    Raises :class:`XmlSignatureError` (``xml_signature_invalid``) for a missing, misplaced or
    wrong signature, a :class:`CertificateError` subclass for the certificate, and
    :class:`EdxmlError` for XML that cannot be parsed or canonicalised (``edxml_invalid``: a
    relative namespace URI) or carries unsigned content (``edxml_unsigned_content``).
    """
    root = parse_xml(edxml) if isinstance(edxml, bytes) else edxml
    header = _header(root)
    signatures = list(root.iter(f"{_DS}Signature"))
    if len(signatures) != 1:
        raise XmlSignatureError(
            f"edXML carries {len(signatures)} XML signatures; exactly one is expected"
        )
    parent = signatures[0].getparent()
    if parent is not header:
        where = etree.QName(parent).localname if parent is not None else "nowhere"
        raise XmlSignatureError(f"the edXML signature is in {where}, not in edXMLHeader")
    _refuse_unsigned_content(root, signatures[0])
    certificate = validator.validate(
        _embedded_certificate(signatures[0]), claimed=claimed_sender, usage="sign"
    )
    signed_info = read_signed_info(signatures[0])  # the profile's shape, before the library
    if signed_info.reference_uri != "":
        raise XmlSignatureError(
            'edXML signature does not cover the whole document (Reference URI="" expected)'
        )
    try:
        libxmlsec.verify(signatures[0], certificate.certificate)
    except XmlSignatureError:
        check_canonicalisable(root)  # the one document-made failure, said as edxml_invalid
        raise
    bound = not in_place if digest_bound is None else digest_bound
    signed_data = signed_bytes(root, signatures[0], signed_info) if bound else None
    if in_place:  # libxmlsec1 digested this very tree: read it
        signed_xml = root
    elif signed_data is None:
        raise ValueError("digest_bound=False only with in_place=True: the tree is built from them")
    else:
        signed_xml = _signed_tree(signed_data)
    signed_from = signed_xml.findtext(_FROM_PATH)
    if signed_from is None or signed_from.strip() != str(claimed_sender):
        raise CertificateBindingError(
            f"the signed edXML is from {signed_from!r}, not from the claimed sender "
            f"{claimed_sender}"
        )
    return VerifiedXml(signed_xml, signed_data, claimed_sender, certificate)


def _signed_tree(signed_data: bytes) -> etree._Element:
    """The document rebuilt from the bytes the signature covers, so that nothing unsigned
    (comments, the signature itself, another serialisation's quirks) is in what is read."""
    try:
        return etree.fromstring(signed_data, hardened_parser())
    except etree.XMLSyntaxError as exc:  # canonical XML always parses; said if it ever did not
        raise XmlSignatureError(f"edXML signature's signed content does not parse: {exc}") from None


def _header(root: etree._Element) -> etree._Element:
    header = root.find(_HEADER_PATH)
    if root.tag != f"{_E}edXML" or header is None:
        raise EdxmlError(
            "not an edXML document: expected edXML/edXMLEnvelope/edXMLHeader in the "
            f"namespace {EDXML_NS}",
            reason=Reason.EDXML_INVALID,
        )
    return header


def _refuse_unsigned_content(root: etree._Element, signature: etree._Element) -> None:
    """Comments anywhere, and anything in the Signature but its signed parts (module
    docstring): a reader of the delivered file would take them for signed content."""
    comment = next(_comments(root), None)
    if comment is not None:
        raise EdxmlError(
            "the edXML carries a comment, which its XML signature does not cover (a comment "
            "can split a signed text): remove comments before signing",
            reason=Reason.EDXML_UNSIGNED_CONTENT,
            line=line_of(comment),
        )
    unsigned = _unsigned_in(signature)
    if unsigned is not None:
        raise EdxmlError(
            f"the edXML signature holds {unsigned}, which it does not sign; only SignedInfo, "
            "SignatureValue and KeyInfo/X509Data/X509Certificate may be there",
            reason=Reason.EDXML_UNSIGNED_CONTENT,
            line=line_of(signature),
        )


def _unsigned_in(element: etree._Element) -> str | None:
    """What ``element`` (part of a Signature, outside SignedInfo) holds beyond
    :data:`_UNSIGNED_ALLOWED`, described; None when nothing."""
    allowed = _UNSIGNED_ALLOWED.get(element.tag)
    texts = [element.text, *(child.tail for child in element)] if allowed is not None else []
    if any(text and text.strip() for text in texts):
        return f"text in {etree.QName(element).localname}"
    for child in element:
        if not isinstance(child.tag, str):
            return "a processing instruction"
        name = etree.QName(child).localname
        if allowed is None or child.tag not in allowed:
            return f"a {name} element in {etree.QName(element).localname}"
        if child.tag in _UNSIGNED_ALLOWED:
            found = _unsigned_in(child)
            if found is not None:
                return found
        elif child.tag != f"{_DS}SignedInfo" and len(child):
            return f"elements inside {name}"
    return None


def _embedded_certificate(signature: etree._Element) -> bytes:
    texts = signature.findall(f"{_DS}KeyInfo/{_DS}X509Data/{_DS}X509Certificate")
    if not texts or not texts[0].text:
        raise XmlSignatureError("edXML signature embeds no X.509 certificate in KeyInfo")
    try:
        return base64.b64decode("".join(texts[0].text.split()), validate=True)
    except binascii.Error as exc:
        raise XmlSignatureError(f"edXML signature's X509Certificate is not base64: {exc}") from None
