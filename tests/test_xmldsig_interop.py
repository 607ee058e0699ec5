"""XML-DSig interoperability, both ways: the backbone's signer and verifier (libxmlsec1 behind
the profile's checks, since issue 21) against signxml (the backbone's signer and verifier
before, which adapters not yet upgraded still run) and libxmlsec1 driven directly (python
``xmlsec``, as other SAML-style stacks use it), on a built document and the vendors' real
files; and the same algorithms accepted and refused as the signxml configuration the
backbone used."""

from __future__ import annotations

from pathlib import Path

import pytest
import xmlsec
from cryptography.hazmat.primitives import serialization
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

from backbone.edxml import parse_xml
from backbone.edxml.models import Attachment
from backbone.edxml.parser import hardened_parser
from backbone.errors import EdxmlError, Reason, XmlSignatureError
from backbone.organ import OrganCode
from backbone.xmldsig import DS_NS, EDXML_NS, libxmlsec, sign_edxml, verify_edxml
from testkit import document_edxml
from tests.support import DevPki, make_pki

E, DS = f"{{{EDXML_NS}}}", f"{{{DS_NS}}}"
G22, H41 = "000.00.00.G22", "000.00.00.H41"
HEADER = f"{E}edXMLEnvelope/{E}edXMLHeader"
# What the backbone asked of signxml before issue 21 (backbone/xmldsig.py then).
SIGNXML_EXPECTED = SignatureConfiguration(
    require_x509=True,
    location=f"./{HEADER}/",
    expect_references=1,
    signature_methods=frozenset({SignatureMethod.RSA_SHA256}),
    digest_algorithms=frozenset({DigestAlgorithm.SHA256}),
)
X = xmlsec.constants

C14N = {
    CanonicalizationMethod.CANONICAL_XML_1_0: X.TransformInclC14N,
    CanonicalizationMethod.CANONICAL_XML_1_0_WITH_COMMENTS: X.TransformInclC14NWithComments,
    CanonicalizationMethod.CANONICAL_XML_1_1: X.TransformInclC14N11,
    CanonicalizationMethod.CANONICAL_XML_1_1_WITH_COMMENTS: X.TransformInclC14N11WithComments,
    CanonicalizationMethod.EXCLUSIVE_XML_CANONICALIZATION_1_0: X.TransformExclC14N,
    CanonicalizationMethod.EXCLUSIVE_XML_CANONICALIZATION_1_0_WITH_COMMENTS: (
        X.TransformExclC14NWithComments
    ),
}
# libxmlsec1 signs with SHA-1 too, which signxml's signer no longer does.
METHODS = {
    "rsa-sha256": X.TransformRsaSha256,
    "rsa-sha1": X.TransformRsaSha1,
    "rsa-sha512": X.TransformRsaSha512,
}
DIGESTS = {"sha256": X.TransformSha256, "sha1": X.TransformSha1, "sha512": X.TransformSha512}

# Documents: (name, signer). "built" is made here; the others are the vendors' files.
DOCUMENTS = [
    ("built", G22),
    ("edoc_revocation.edxml", G22),  # 360 KiB, CRLF, a vendor placeholder Signature
    ("status_inbox__01.edxml", H41),
    ("status_finish_06.edxml", H41),
]


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> DevPki:
    return make_pki(tmp_path_factory.mktemp("pki"))


def _document(name: str, shared_edxml: Path) -> bytes:
    if name != "built":
        return (shared_edxml / name).read_bytes()
    attachment = Attachment(
        content_id="cid:1", content=b"%PDF-1.4 " + bytes(range(256)) * 8, attachment_name="a.pdf"
    )
    return document_edxml(G22, [H41], 21, content="Nội dung " * 300, attachments=[attachment])


def _placed(edxml: bytes, placeholder: etree._Element | None = None) -> etree._Element:
    """The document parsed, comments stripped and its Signature placeholders replaced by
    ``placeholder`` (a ds:Signature skeleton), as each signer here needs it."""
    root = parse_xml(edxml)
    etree.strip_tags(root.getroottree(), etree.Comment)
    header = root.find(HEADER)
    assert header is not None
    old = [child for child in header if child.tag in (f"{E}Signature", f"{DS}Signature")]
    position = header.index(old[0]) if old else len(header)
    for element in old:
        header.remove(element)
    if placeholder is None:
        placeholder = etree.Element(f"{DS}Signature", Id="placeholder", nsmap={"ds": DS_NS})
    header.insert(position, placeholder)
    return root


def signxml_sign(
    edxml: bytes,
    pki: DevPki,
    signer: str = G22,
    *,
    method: SignatureMethod = SignatureMethod.RSA_SHA256,
    digest: DigestAlgorithm = DigestAlgorithm.SHA256,
    c14n: CanonicalizationMethod = CanonicalizationMethod.EXCLUSIVE_XML_CANONICALIZATION_1_0,
) -> bytes:
    """The backbone's sign_edxml before issue 21 (signxml), with other algorithms if asked."""
    issued = pki.agency(signer)
    signed = XMLSigner(
        method=SignatureConstructionMethod.enveloped,
        signature_algorithm=method,
        digest_algorithm=digest,
        c14n_algorithm=c14n,
    ).sign(_placed(edxml), key=issued.key, cert=[issued.certificate])
    return bytes(etree.tostring(signed, xml_declaration=True, encoding="UTF-8"))


def signxml_verify(edxml: bytes, pki: DevPki, signer: str = G22) -> VerifyResult:
    """The backbone's verification before issue 21 (signxml, same configuration)."""
    result = XMLVerifier().verify(
        edxml,
        parser=hardened_parser(),
        x509_cert=pki.agency(signer).certificate,
        expect_config=SIGNXML_EXPECTED,
    )
    assert isinstance(result, VerifyResult)
    return result


def xmlsec_sign(
    edxml: bytes,
    pki: DevPki,
    signer: str = G22,
    *,
    method: str = "rsa-sha256",
    digest: str = "sha256",
    c14n: CanonicalizationMethod = CanonicalizationMethod.EXCLUSIVE_XML_CANONICALIZATION_1_0,
) -> bytes:
    """libxmlsec1's enveloped signature over the whole document, certificate in KeyInfo."""
    signature = etree.Element(f"{DS}Signature", nsmap={"ds": DS_NS})  # template below
    root = _placed(edxml, signature)
    template = xmlsec.template.create(root, C14N[c14n], METHODS[method], ns="ds")
    reference = xmlsec.template.add_reference(template, DIGESTS[digest], uri="")
    xmlsec.template.add_transform(reference, X.TransformEnveloped)
    xmlsec.template.add_transform(reference, C14N[c14n])
    xmlsec.template.x509_data_add_certificate(
        xmlsec.template.add_x509_data(xmlsec.template.ensure_key_info(template))
    )
    signature.getparent().replace(signature, template)  # type: ignore[union-attr]
    issued = pki.agency(signer)
    key = xmlsec.Key.from_memory(
        issued.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
        X.KeyDataFormatPem,
    )
    key.load_cert_from_memory(
        issued.certificate.public_bytes(serialization.Encoding.DER), X.KeyDataFormatCertDer
    )
    context = xmlsec.SignatureContext()
    context.key = key
    context.sign(template)
    return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8"))


def xmlsec_verify(edxml: bytes, pki: DevPki, signer: str = G22) -> None:
    """libxmlsec1's verification with the signer's certificate, the profile's algorithms only."""
    root = parse_xml(edxml)
    (signature,) = root.iter(f"{DS}Signature")
    context = xmlsec.SignatureContext()
    context.key = xmlsec.Key.from_memory(
        pki.agency(signer).certificate.public_bytes(serialization.Encoding.DER),
        X.KeyDataFormatCertDer,
    )
    for transform in (X.TransformEnveloped, X.TransformExclC14N, X.TransformSha256):
        context.enable_reference_transform(transform)
    for transform in (X.TransformExclC14N, X.TransformRsaSha256):
        context.enable_signature_transform(transform)
    context.verify(signature)


def _verify(edxml: bytes, pki: DevPki, signer: str) -> bytes:
    return verify_edxml(edxml, pki.validator(), OrganCode.parse(signer)).signed_data


@pytest.mark.parametrize(("name", "signer"), DOCUMENTS)
def test_signxml_signatures_verify_here_and_ours_with_signxml_with_the_same_signed_bytes(
    pki: DevPki, shared_edxml: Path, name: str, signer: str
) -> None:
    edxml = _document(name, shared_edxml)
    by_signxml = signxml_sign(edxml, pki, signer)
    assert _verify(by_signxml, pki, signer) == signxml_verify(by_signxml, pki, signer).signed_data
    ours = sign_edxml(edxml, pki.agency(signer).key, pki.agency(signer).certificate)
    assert signxml_verify(ours, pki, signer).signed_data == _verify(ours, pki, signer)


@pytest.mark.parametrize(("name", "signer"), DOCUMENTS)
def test_xmlsec_signatures_verify_here_and_ours_with_xmlsec(
    pki: DevPki, shared_edxml: Path, name: str, signer: str
) -> None:
    edxml = _document(name, shared_edxml)
    _verify(xmlsec_sign(edxml, pki, signer), pki, signer)
    xmlsec_verify(
        sign_edxml(edxml, pki.agency(signer).key, pki.agency(signer).certificate), pki, signer
    )


def test_xmlsec_and_signxml_verify_each_other_s_signatures(pki: DevPki, shared_edxml: Path) -> None:
    edxml = _document("edoc_revocation.edxml", shared_edxml)
    signxml_verify(xmlsec_sign(edxml, pki), pki)
    xmlsec_verify(signxml_sign(edxml, pki), pki)


@pytest.mark.parametrize("signed_by", ["backbone", "signxml", "xmlsec"])
def test_a_byte_changed_after_signing_is_refused_by_all_three(
    pki: DevPki, shared_edxml: Path, signed_by: str
) -> None:
    edxml = _document("edoc_revocation.edxml", shared_edxml)
    signers = {
        "backbone": lambda: sign_edxml(edxml, pki.agency(G22).key, pki.agency(G22).certificate),
        "signxml": lambda: signxml_sign(edxml, pki),
        "xmlsec": lambda: xmlsec_sign(edxml, pki),
    }
    signed = signers[signed_by]()
    tampered = signed.replace(b"7816/VPCP", b"7817/VPCP", 1)
    assert tampered != signed
    with pytest.raises(XmlSignatureError, match="changed after signing"):
        _verify(tampered, pki, G22)
    with pytest.raises(SignXMLException):
        signxml_verify(tampered, pki)
    with pytest.raises(xmlsec.Error):
        xmlsec_verify(tampered, pki)


# -- the same algorithms accepted and refused as with signxml ---------------------------------


def _accepted(signed: bytes, pki: DevPki) -> bool:
    try:
        _verify(signed, pki, G22)
    except XmlSignatureError:  # any other error fails the test
        return False
    return True


@pytest.mark.parametrize("c14n", list(C14N), ids=lambda c: c.name)
@pytest.mark.parametrize("method", list(METHODS))
@pytest.mark.parametrize("digest", list(DIGESTS))
def test_a_signature_is_accepted_exactly_when_signxml_accepted_it(
    pki: DevPki, c14n: CanonicalizationMethod, method: str, digest: str
) -> None:
    edxml = _document("built", Path())
    try:
        signed = xmlsec_sign(edxml, pki, method=method, digest=digest, c14n=c14n)
    except xmlsec.Error:
        pytest.fail(f"libxmlsec1 did not sign with {method}, {digest}, {c14n.name}")
    try:
        signxml_verify(signed, pki)
        before = True
    except (SignXMLException, etree.DocumentInvalid, ValueError):
        before = False
    now = _accepted(signed, pki)
    if "1_1" in c14n.name and before:
        # signxml ran C14N 1.1 as 1.0; refused now, rather than digested another way.
        assert not now
    else:
        assert now == before
    assert now == (method == "rsa-sha256" and digest == "sha256" and "1_1" not in c14n.name)


def test_a_relative_namespace_uri_is_refused_as_invalid_edxml_at_both_ends(pki: DevPki) -> None:
    edxml = _document("built", Path())
    relative = edxml.replace(b"<edXML:edXMLBody", b'<edXML:edXMLBody xmlns:r="rel"', 1)
    assert relative != edxml
    issued = pki.agency(G22)
    with pytest.raises(EdxmlError) as signing:
        sign_edxml(relative, issued.key, issued.certificate)
    signed = sign_edxml(edxml, issued.key, issued.certificate)
    with pytest.raises(EdxmlError) as verifying:
        _verify(signed.replace(b"<edXML:edXMLBody", b'<edXML:edXMLBody xmlns:r="rel"', 1), pki, G22)
    assert signing.value.reason is verifying.value.reason is Reason.EDXML_INVALID
    assert "relative namespace" in verifying.value.message


def test_a_signature_whose_prefix_is_declared_on_the_root_verifies_with_all_three(
    pki: DevPki,
) -> None:
    issued = pki.agency(G22)
    signed = sign_edxml(_document("built", Path()), issued.key, issued.certificate)
    declaration = f' xmlns:ds="{DS_NS}"'.encode()
    assert signed.count(declaration) == 1
    # As other toolkits may write it: the ds prefix declared once, on the root element.
    moved = signed.replace(declaration, b"").replace(
        b"<edXML:edXML ", b"<edXML:edXML" + declaration + b" ", 1
    )
    root = parse_xml(moved)
    before = etree.tostring(root)
    verify_edxml(root, pki.validator(), OrganCode.parse(G22))
    assert etree.tostring(root) == before  # the signature went back as it was
    signxml_verify(moved, pki)
    xmlsec_verify(moved, pki)


def test_each_signer_signs_with_its_own_key_when_signers_alternate(pki: DevPki) -> None:
    """The key loaded into libxmlsec1 is kept per key: alternating signers each get theirs,
    as libxmlsec1 checking with each signer's certificate shows."""
    edxml = _document("built", Path())
    signers = [G22, H41, G22]
    signed = [sign_edxml(edxml, pki.agency(s).key, pki.agency(s).certificate) for s in signers]
    for document, signer in zip(signed, signers, strict=True):
        xmlsec_verify(document, pki, signer)
    with pytest.raises(xmlsec.Error):
        xmlsec_verify(signed[1], pki, G22)
    assert signed[0] == signed[2]


@pytest.mark.parametrize(("method", "digest"), [("rsa-sha512", "sha256"), ("rsa-sha256", "sha512")])
def test_libxmlsec1_itself_is_held_to_the_profile_s_algorithms(
    pki: DevPki, method: str, digest: str
) -> None:
    """Behind the shape check, the library has only the profile's transforms enabled: a
    valid signature with another algorithm fails inside it too, as XmlSignatureError."""
    signed = xmlsec_sign(_document("built", Path()), pki, method=method, digest=digest)
    (signature,) = parse_xml(signed).iter(f"{DS}Signature")
    with pytest.raises(XmlSignatureError, match="libxmlsec1"):
        libxmlsec.verify(signature, pki.agency(G22).certificate)
