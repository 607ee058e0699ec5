"""The XML-DSig signature inside an edXML document (QCVN 102's ``edXMLHeader/Signature``).

One enveloped signature (W3C XML Signature 1.1) in ``edXMLHeader``: RSA-SHA256
(``http://www.w3.org/2001/04/xmldsig-more#rsa-sha256``, i.e. RSASSA-PKCS1-v1_5 with SHA-256),
SHA-256 digests, Exclusive XML Canonicalization 1.0 without comments
(``http://www.w3.org/2001/10/xml-exc-c14n#``) for both SignedInfo and the reference, and one
``Reference URI=""`` covering the whole document minus the signature (enveloped-signature
transform): the header, the body and the ``AttachmentEncoded`` attachments that lie outside
``edXMLEnvelope``. The signer's X.509 certificate is embedded in ``KeyInfo/X509Data``.

Exclusive c14n is chosen because it makes the signature independent of namespace
declarations inherited from outside the signed content, which matters when vendors re-wrap or
re-prefix edXML (real files mix the ``edXML:`` prefix with the default namespace).
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa
from lxml import etree
from signxml.algorithms import (
    CanonicalizationMethod,
    DigestAlgorithm,
    SignatureConstructionMethod,
    SignatureMethod,
)
from signxml.exceptions import SignXMLException
from signxml.signer import XMLSigner
from signxml.verifier import SignatureConfiguration, VerifyResult, XMLVerifier

from backbone.edxml.parser import hardened_parser, parse_xml
from backbone.errors import CertificateBindingError, EdxmlError, Reason, XmlSignatureError
from backbone.organ import OrganCode
from backbone.pki.validation import CertificateValidator, ValidatedCertificate

__all__ = ["VerifiedXml", "sign_edxml", "verify_edxml"]

EDXML_NS = "http://www.mic.gov.vn/TBT/QCVN_102_2016"
DS_NS = "http://www.w3.org/2000/09/xmldsig#"
_E = f"{{{EDXML_NS}}}"
_DS = f"{{{DS_NS}}}"
_HEADER_PATH = f"{_E}edXMLEnvelope/{_E}edXMLHeader"
_FROM_PATH = f"{_HEADER_PATH}/{_E}MessageHeader/{_E}From/{_E}OrganId"
_PLACEHOLDERS = (f"{_E}Signature", f"{_DS}Signature")

_EXPECTED = SignatureConfiguration(
    require_x509=True,
    location=f"./{_HEADER_PATH}/",
    expect_references=1,
    signature_methods=frozenset({SignatureMethod.RSA_SHA256}),
    digest_algorithms=frozenset({DigestAlgorithm.SHA256}),
)


@dataclass(frozen=True, slots=True)
class VerifiedXml:
    """What the signature covers. Read the document from ``signed_xml`` only: it is rebuilt
    from the signed canonical bytes, so nothing unsigned (comments, the signature) is in it."""

    signed_xml: etree._Element
    signed_data: bytes
    sender: OrganCode
    certificate: ValidatedCertificate


class _HardenedSigner(XMLSigner):
    """signxml re-parses what it signs; make it use our parser (large attachments, no DTDs)."""

    @property
    def parser(self) -> etree.XMLParser:
        return hardened_parser()


def sign_edxml(edxml: bytes, key: rsa.RSAPrivateKey, cert: x509.Certificate) -> bytes:
    """Sign the whole document; the signature replaces any ``Signature`` in ``edXMLHeader``
    (vendor placeholders, or an earlier signature), at the same position."""
    root = parse_xml(edxml)
    header = _header(root)
    existing = [child for child in header if child.tag in _PLACEHOLDERS]
    position = header.index(existing[0]) if existing else len(header)
    tail = existing[0].tail if existing else header.text
    for element in existing:
        header.remove(element)
    placeholder = etree.Element(f"{_DS}Signature", Id="placeholder", nsmap={"ds": DS_NS})
    placeholder.tail = tail
    header.insert(position, placeholder)
    signer = _HardenedSigner(
        method=SignatureConstructionMethod.enveloped,
        signature_algorithm=SignatureMethod.RSA_SHA256,
        digest_algorithm=DigestAlgorithm.SHA256,
        c14n_algorithm=CanonicalizationMethod.EXCLUSIVE_XML_CANONICALIZATION_1_0,
    )
    signed = signer.sign(root, key=key, cert=[cert])
    return bytes(etree.tostring(signed, xml_declaration=True, encoding="UTF-8"))


def verify_edxml(
    edxml: bytes, validator: CertificateValidator, claimed_sender: OrganCode
) -> VerifiedXml:
    """Verify the signature, that its certificate is valid for ``claimed_sender`` (the edXML
    ``From/OrganId``), and that the signed document names that sender.

    Raises :class:`XmlSignatureError` (``xml_signature_invalid``) for a missing, misplaced or
    wrong signature, a :class:`CertificateError` subclass for the certificate, and
    :class:`EdxmlError` for XML that cannot be parsed.
    """
    root = parse_xml(edxml)
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
    certificate = validator.validate(
        _embedded_certificate(signatures[0]), claimed=claimed_sender, usage="sign"
    )
    try:
        result = XMLVerifier().verify(
            root,
            parser=hardened_parser(),
            x509_cert=certificate.certificate,
            expect_config=_EXPECTED,
        )
    except (SignXMLException, etree.DocumentInvalid, ValueError) as exc:
        raise XmlSignatureError(f"edXML signature does not verify: {exc}") from None
    assert isinstance(result, VerifyResult)  # expect_references=1 yields a single result
    reference = result.signature_xml.find(f"{_DS}SignedInfo/{_DS}Reference")
    if result.signed_xml is None or reference is None or reference.get("URI") != "":
        raise XmlSignatureError(
            'edXML signature does not cover the whole document (Reference URI="" expected)'
        )
    signed_from = result.signed_xml.findtext(_FROM_PATH)
    if signed_from is None or signed_from.strip() != str(claimed_sender):
        raise CertificateBindingError(
            f"the signed edXML is from {signed_from!r}, not from the claimed sender "
            f"{claimed_sender}"
        )
    return VerifiedXml(result.signed_xml, result.signed_data, claimed_sender, certificate)


def _header(root: etree._Element) -> etree._Element:
    header = root.find(_HEADER_PATH)
    if root.tag != f"{_E}edXML" or header is None:
        raise EdxmlError(
            "not an edXML document: expected edXML/edXMLEnvelope/edXMLHeader in the "
            f"namespace {EDXML_NS}",
            reason=Reason.EDXML_INVALID,
        )
    return header


def _embedded_certificate(signature: etree._Element) -> bytes:
    texts = signature.findall(f"{_DS}KeyInfo/{_DS}X509Data/{_DS}X509Certificate")
    if not texts or not texts[0].text:
        raise XmlSignatureError("edXML signature embeds no X.509 certificate in KeyInfo")
    try:
        return base64.b64decode("".join(texts[0].text.split()), validate=True)
    except binascii.Error as exc:
        raise XmlSignatureError(f"edXML signature's X509Certificate is not base64: {exc}") from None
