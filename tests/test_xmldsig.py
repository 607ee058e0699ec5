"""XML-DSig inside edXML: sign → verify, and every alteration or wrong signer refused."""

from __future__ import annotations

import base64
import re
from collections.abc import Callable
from copy import deepcopy
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.serialization import Encoding
from lxml import etree

from backbone.edxml import parse_xml, read
from backbone.errors import (
    CertificateBindingError,
    CertificateRevokedError,
    EdxmlError,
    Reason,
    XmlSignatureError,
)
from backbone.organ import OrganCode
from backbone.xmldsig import DS_NS, EDXML_NS, sign_edxml, verify_edxml
from testkit import document_with_attachment
from tests.support import DevPki, make_pki

G22 = OrganCode.parse("000.00.00.G22")
H41 = OrganCode.parse("000.00.00.H41")
ATTACHMENT = "UEsDBBQACAgIAFaTPE0AAAAAAAAAAAAAAAAqAAAAYTM2NjE1NjQ="

BUILT = f"""<?xml version="1.0" encoding="UTF-8"?>
<edXML xmlns="{EDXML_NS}">
  <edXML:edXMLEnvelope xmlns:edXML="{EDXML_NS}">
    <edXML:edXMLHeader>
      <edXML:MessageHeader>
        <edXML:From><edXML:OrganId>000.00.00.G22</edXML:OrganId></edXML:From>
        <edXML:To><edXML:OrganId>000.00.00.H41</edXML:OrganId></edXML:To>
        <edXML:DocumentId>000.00.00.G22,2024/05/02,12/VPCP-TTĐT</edXML:DocumentId>
        <edXML:Subject>V/v kết nối liên thông</edXML:Subject>
      </edXML:MessageHeader>
    </edXML:edXMLHeader>
    <edXML:edXMLBody>
      <edXML:edXMLManifest version="1.0">
        <edXML:Reference><edXML:ContentId>cid:1</edXML:ContentId></edXML:Reference>
      </edXML:edXMLManifest>
    </edXML:edXMLBody>
  </edXML:edXMLEnvelope>
  <AttachmentEncoded>
    <Attachment>
      <ContentId>cid:1</ContentId>
      <edXML:ContentTransferEncoded
          xmlns:edXML="{EDXML_NS}">{ATTACHMENT}</edXML:ContentTransferEncoded>
    </Attachment>
  </AttachmentEncoded>
</edXML>
""".encode()


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> DevPki:
    return make_pki(tmp_path_factory.mktemp("pki"))


def _sign(pki: DevPki, edxml: bytes, signer: str = "000.00.00.G22") -> bytes:
    issued = pki.agency(signer)
    return sign_edxml(edxml, issued.key, issued.certificate)


def _signatures(edxml: bytes) -> list[etree._Element]:
    return list(etree.fromstring(edxml).iter(f"{{{DS_NS}}}Signature"))


def _header_tags(edxml: bytes) -> list[str]:
    header = etree.fromstring(edxml).find(f"{{{EDXML_NS}}}edXMLEnvelope/{{{EDXML_NS}}}edXMLHeader")
    assert header is not None
    return [str(child.tag) for child in header]


def test_a_built_edxml_round_trips_and_the_attachment_is_signed(pki: DevPki) -> None:
    signed = _sign(pki, BUILT)
    verified = verify_edxml(signed, pki.validator(), G22)
    assert verified.sender == G22
    assert verified.certificate.identity == G22
    transferred = verified.signed_xml.findtext(f".//{{{EDXML_NS}}}ContentTransferEncoded")
    assert transferred == ATTACHMENT
    assert verified.signed_xml.find(f".//{{{DS_NS}}}Signature") is None


def test_the_signature_is_rsa_sha256_with_exclusive_c14n_over_the_whole_document(
    pki: DevPki,
) -> None:
    (signature,) = _signatures(_sign(pki, BUILT))
    ds = {"ds": DS_NS}
    assert signature.xpath("ds:SignedInfo/ds:SignatureMethod/@Algorithm", namespaces=ds) == [
        "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"
    ]
    assert signature.xpath("ds:SignedInfo/ds:CanonicalizationMethod/@Algorithm", namespaces=ds) == [
        "http://www.w3.org/2001/10/xml-exc-c14n#"
    ]
    assert signature.xpath("ds:SignedInfo/ds:Reference/@URI", namespaces=ds) == [""]
    assert signature.xpath(
        "ds:SignedInfo/ds:Reference/ds:DigestMethod/@Algorithm", namespaces=ds
    ) == ["http://www.w3.org/2001/04/xmlenc#sha256"]
    parent = signature.getparent()
    assert parent is not None
    assert parent.tag == f"{{{EDXML_NS}}}edXMLHeader"


def test_the_real_sample_signs_in_place_of_its_placeholder_and_verifies(
    pki: DevPki, shared_edxml: Path
) -> None:
    sample = (shared_edxml / "edoc_revocation.edxml").read_bytes()
    before = _header_tags(sample)
    assert f"{{{EDXML_NS}}}Signature" in before
    signed = _sign(pki, sample)
    assert _header_tags(signed) == [
        f"{{{DS_NS}}}Signature" if tag == f"{{{EDXML_NS}}}Signature" else tag for tag in before
    ]
    verified = verify_edxml(signed, pki.validator(), G22)
    assert verified.signed_xml.findtext(f".//{{{EDXML_NS}}}DocumentId") == (
        "000.00.00.G22,2015/09/30,7816/VPCP-TTĐT"
    )


def test_the_vendor_placeholder_signature_is_not_a_signature(
    pki: DevPki, shared_edxml: Path
) -> None:
    sample = (shared_edxml / "edoc_revocation.edxml").read_bytes()
    with pytest.raises(XmlSignatureError, match="carries 0 XML signatures"):
        verify_edxml(sample, pki.validator(), G22)


def test_a_changed_attachment_byte_is_refused(pki: DevPki) -> None:
    signed = _sign(pki, BUILT)
    tampered = signed.replace(ATTACHMENT.encode(), ATTACHMENT.replace("UEsD", "UEsE").encode())
    assert tampered != signed
    with pytest.raises(XmlSignatureError) as caught:
        verify_edxml(tampered, pki.validator(), G22)
    assert caught.value.reason is Reason.XML_SIGNATURE_INVALID


def test_a_changed_header_field_is_refused(pki: DevPki) -> None:
    signed = _sign(pki, BUILT)
    tampered = signed.replace("liên thông".encode(), "liên thong".encode())
    assert tampered != signed
    with pytest.raises(XmlSignatureError, match="does not verify"):
        verify_edxml(tampered, pki.validator(), G22)


def test_a_certificate_not_bound_to_the_from_organ_code_is_refused(pki: DevPki) -> None:
    signed_by_h41 = _sign(pki, BUILT, signer="000.00.00.H41")
    with pytest.raises(CertificateBindingError):
        verify_edxml(signed_by_h41, pki.validator(), G22)


def test_a_signer_claiming_its_own_code_for_a_document_from_another_is_refused(
    pki: DevPki,
) -> None:
    signed_by_h41 = _sign(pki, BUILT, signer="000.00.00.H41")
    with pytest.raises(
        CertificateBindingError, match=r"the signed edXML is from '000\.00\.00\.G22'"
    ):
        verify_edxml(signed_by_h41, pki.validator(), H41)


def test_a_revoked_signer_is_refused(pki: DevPki, tmp_path: Path) -> None:
    own = make_pki(tmp_path / "pki")
    signed = _sign(own, BUILT)
    own.ca.revoke("000.00.00.G22")
    with pytest.raises(CertificateRevokedError):
        verify_edxml(signed, own.validator(), G22)


def test_signing_again_replaces_the_earlier_signature(pki: DevPki) -> None:
    twice = _sign(pki, _sign(pki, BUILT))
    assert len(_signatures(twice)) == 1
    verify_edxml(twice, pki.validator(), G22)


def test_a_second_signature_outside_the_header_is_refused(pki: DevPki) -> None:
    signed = _sign(pki, BUILT)
    root = etree.fromstring(signed)
    (signature,) = _signatures(signed)
    root.append(etree.fromstring(etree.tostring(signature)))
    with pytest.raises(XmlSignatureError, match="carries 2 XML signatures"):
        verify_edxml(etree.tostring(root), pki.validator(), G22)


def test_a_signature_moved_out_of_the_header_is_refused(pki: DevPki) -> None:
    root = etree.fromstring(_sign(pki, BUILT))
    (signature,) = root.iter(f"{{{DS_NS}}}Signature")
    root.append(signature)
    with pytest.raises(XmlSignatureError, match="is in edXML, not in edXMLHeader"):
        verify_edxml(etree.tostring(root), pki.validator(), G22)


def test_xml_with_a_doctype_never_reaches_the_verifier(pki: DevPki) -> None:
    signed = _sign(pki, BUILT)
    with_doctype = signed.replace(b"?>", b'?><!DOCTYPE edXML [<!ENTITY x "y">]>', 1)
    with pytest.raises(EdxmlError) as caught:
        verify_edxml(with_doctype, pki.validator(), G22)
    assert caught.value.reason is Reason.EDXML_UNSAFE


def test_a_multi_megabyte_attachment_signs_and_verifies(pki: DevPki) -> None:
    # ~9 MiB decoded, ~12 MB of base64: a scanned PDF, above libxml2's default text-node cap.
    big = "QUJD" * 3_000_000
    signed = _sign(pki, BUILT.replace(ATTACHMENT.encode(), big.encode()))
    verified = verify_edxml(signed, pki.validator(), G22)
    assert verified.signed_xml.findtext(f".//{{{EDXML_NS}}}ContentTransferEncoded") == big


# -- only what the signature covers travels (issue 14, finding 7) ----------------------------


def _refused_as_unsigned(pki: DevPki, edxml: bytes) -> EdxmlError:
    with pytest.raises(EdxmlError) as caught:
        verify_edxml(edxml, pki.validator(), G22)
    assert caught.value.reason is Reason.EDXML_UNSIGNED_CONTENT
    return caught.value


def test_a_comment_splitting_a_signed_text_is_refused_though_the_digest_still_matches(
    pki: DevPki,
) -> None:
    signed = _sign(pki, BUILT)
    split = signed.replace("V/v kết".encode(), "V/v <!-- không -->kết".encode())
    # c14n without comments: the signature alone would accept it.
    assert etree.tostring(etree.fromstring(split), method="c14n", with_comments=False) == (
        etree.tostring(etree.fromstring(signed), method="c14n", with_comments=False)
    )
    error = _refused_as_unsigned(pki, split)
    assert "comment" in error.message
    assert error.line == split[: split.index(b"<!--")].count(b"\n") + 1


def test_a_comment_before_the_root_element_is_refused_too(pki: DevPki) -> None:
    signed = _sign(pki, BUILT)
    declaration_end = signed.index(b"?>") + 2
    commented = signed[:declaration_end] + b"\n<!-- Subject: other -->" + signed[declaration_end:]
    _refused_as_unsigned(pki, commented)


@pytest.mark.parametrize(
    ("where", "added"),
    [
        ("</ds:Signature>", "<ds:Object><Subject>Chuyển tiền</Subject></ds:Object>"),
        ("</ds:Signature>", "Chuyển tiền"),
        ("</ds:KeyInfo>", "<ds:KeyName>Chuyển tiền</ds:KeyName>"),
        ("</ds:X509Data>", "<ds:X509SubjectName>CN=Chuyển tiền</ds:X509SubjectName>"),
        ("</ds:SignatureValue>", "<?subject Chuyển tiền?>"),
    ],
    ids=["object", "text", "key-name", "x509-subject", "processing-instruction"],
)
def test_anything_unsigned_in_the_signature_is_refused(pki: DevPki, where: str, added: str) -> None:
    signed = _sign(pki, BUILT)
    assert signed.count(where.encode()) == 1
    altered = signed.replace(where.encode(), (added + where).encode())
    error = _refused_as_unsigned(pki, altered)
    assert "does not sign" in error.message


def test_signing_strips_comments_so_that_what_travels_is_what_is_signed(pki: DevPki) -> None:
    commented = BUILT.replace(b"<edXML:edXMLBody>", b"<!-- draft --><edXML:edXMLBody>").replace(
        "V/v kết".encode(), "V/v <!-- x -->kết".encode()
    )
    signed = _sign(pki, commented)
    assert b"<!--" not in signed
    verified = verify_edxml(signed, pki.validator(), G22)
    assert verified.signed_xml.findtext(f".//{{{EDXML_NS}}}Subject") == "V/v kết nối liên thông"


# -- the signed document is the sender's file, signed -----------------------------------------

OUR_SIGNATURE = re.compile(rb"<ds:Signature\b.*?</ds:Signature>", re.S)
VENDOR_SIGNATURE = re.compile(rb"<Signature>.*?</Signature>", re.S)


@pytest.mark.parametrize(
    ("name", "signer"),
    [
        ("status_inbox__01.edxml", "000.00.00.H41"),
        ("status_rejection_02.edxml", "000.00.00.H41"),
        ("status_acceptance_03.edxml", "000.00.00.H41"),
        ("status_finish_06.edxml", "000.00.00.H41"),
        ("edoc_revocation.edxml", "000.00.00.G22"),
    ],
)
def test_signing_a_vendor_file_changes_no_byte_but_its_signature(
    pki: DevPki, shared_edxml: Path, name: str, signer: str
) -> None:
    original = (shared_edxml / name).read_bytes()
    signed = _sign(pki, original, signer)

    assert len(OUR_SIGNATURE.findall(signed)) == 1
    # Unsigned files get the signature put in; a signed one has its signature swapped.
    assert OUR_SIGNATURE.sub(b"", signed) == VENDOR_SIGNATURE.sub(b"", original)
    if not VENDOR_SIGNATURE.search(original):
        assert OUR_SIGNATURE.sub(b"", signed) == original  # CRLF, declaration, tabs and all
    verify_edxml(signed, pki.validator(), OrganCode.parse(signer))


def test_a_declaration_in_another_encoding_is_replaced_by_the_utf8_one(pki: DevPki) -> None:
    latin = BUILT.replace(b'encoding="UTF-8"', b'encoding="ISO-8859-1"', 1)
    assert latin != BUILT
    # The signed document is written in UTF-8, so it says so whatever the original said.
    assert _sign(pki, latin).startswith(b'<?xml version="1.0" encoding="UTF-8"?>\n<edXML')


# -- the signature's shape is the profile's, closed list (issue 21: no signxml schema) --------

EC_NS = "http://www.w3.org/2001/10/xml-exc-c14n#"


def _signed_with(pki: DevPki, alter: Callable[[etree._Element], None]) -> bytes:
    """BUILT signed by G22, then its signature altered by ``alter``: the shape is checked
    before libxmlsec1 is called, so the refusal's message says it was the shape's."""
    issued = pki.agency("000.00.00.G22")
    root = parse_xml(sign_edxml(BUILT, issued.key, issued.certificate))
    (signature,) = root.iter(f"{{{DS_NS}}}Signature")
    alter(signature)
    return bytes(etree.tostring(root))


def _ds(element: etree._Element, path: str) -> etree._Element:
    found = element.find(path.replace("ds:", f"{{{DS_NS}}}"))
    assert found is not None
    return found


def _set(path: str, algorithm: str) -> Callable[[etree._Element], None]:
    return lambda signature: _ds(signature, path).set("Algorithm", algorithm)


def _add_transform(algorithm: str) -> Callable[[etree._Element], None]:
    def add(signature: etree._Element) -> None:
        transforms = _ds(signature, "ds:SignedInfo/ds:Reference/ds:Transforms")
        etree.SubElement(transforms, f"{{{DS_NS}}}Transform", Algorithm=algorithm)

    return add


def _swap_transforms(signature: etree._Element) -> None:
    transforms = _ds(signature, "ds:SignedInfo/ds:Reference/ds:Transforms")
    transforms[:] = list(reversed(transforms))


def _second_reference(signature: etree._Element) -> None:
    _ds(signature, "ds:SignedInfo").append(deepcopy(_ds(signature, "ds:SignedInfo/ds:Reference")))


def _drop_transforms(signature: etree._Element) -> None:
    reference = _ds(signature, "ds:SignedInfo/ds:Reference")
    reference.remove(_ds(reference, "ds:Transforms"))


def _drop_enveloped(signature: etree._Element) -> None:
    transforms = _ds(signature, "ds:SignedInfo/ds:Reference/ds:Transforms")
    transforms.remove(transforms[0])


def _inclusive_namespaces(signature: etree._Element) -> None:
    method = _ds(signature, "ds:SignedInfo/ds:CanonicalizationMethod")
    etree.SubElement(method, f"{{{EC_NS}}}InclusiveNamespaces", PrefixList="edXML")


def _text(signature: etree._Element) -> None:
    _ds(signature, "ds:SignedInfo").text = "Chuyển tiền"


def _processing_instruction(signature: etree._Element) -> None:
    _ds(signature, "ds:SignedInfo").insert(0, etree.ProcessingInstruction("subject", "x"))


def _second_key_info(signature: etree._Element) -> None:
    signature.append(deepcopy(_ds(signature, "ds:KeyInfo")))


SHAPES = {
    "xpath-transform": (
        _add_transform("http://www.w3.org/TR/1999/REC-xpath-19991116"),
        "Transforms must be",
    ),
    "transforms-swapped": (_swap_transforms, "first transform"),
    "no-enveloped-transform": (_drop_enveloped, "first transform"),
    "no-transforms": (_drop_transforms, "holds DigestMethod, DigestValue"),
    "second-reference": (_second_reference, "Reference, Reference"),
    "inclusive-namespaces": (_inclusive_namespaces, "parameters"),
    "c14n-1.1": (
        _set("ds:SignedInfo/ds:CanonicalizationMethod", "http://www.w3.org/2006/12/xml-c14n11"),
        "canonicalisation",
    ),
    "rsa-sha1": (
        _set("ds:SignedInfo/ds:SignatureMethod", "http://www.w3.org/2000/09/xmldsig#rsa-sha1"),
        "signature method",
    ),
    "hmac-sha256": (
        _set(
            "ds:SignedInfo/ds:SignatureMethod",
            "http://www.w3.org/2001/04/xmldsig-more#hmac-sha256",
        ),
        "signature method",
    ),
    "sha512-digest": (
        _set(
            "ds:SignedInfo/ds:Reference/ds:DigestMethod",
            "http://www.w3.org/2001/04/xmlenc#sha512",
        ),
        "digest method",
    ),
    "text": (_text, "text in SignedInfo"),
    "processing-instruction": (_processing_instruction, "processing instruction"),
    "second-key-info": (_second_key_info, "KeyInfo, KeyInfo"),
    "reference-to-an-id": (
        lambda signature: _ds(signature, "ds:SignedInfo/ds:Reference").set("URI", "#body"),
        'Reference URI="" expected',
    ),
}


@pytest.mark.parametrize("shape", list(SHAPES))
def test_a_signature_of_another_shape_than_the_profile_s_is_refused_before_the_library(
    pki: DevPki, shape: str
) -> None:
    alter, message = SHAPES[shape]
    with pytest.raises(XmlSignatureError, match=re.escape(message)):
        verify_edxml(_signed_with(pki, alter), pki.validator(), G22)


def test_the_profile_s_own_shape_verifies_so_the_refusals_above_are_the_shape_s(
    pki: DevPki,
) -> None:
    verify_edxml(_signed_with(pki, lambda signature: None), pki.validator(), G22)


def test_a_signature_value_that_is_not_base64_is_refused(pki: DevPki) -> None:
    signed = _sign(pki, BUILT)
    start = signed.index(b"<ds:SignatureValue>") + len(b"<ds:SignatureValue>")
    with pytest.raises(XmlSignatureError, match="SignatureValue is not base64"):
        verify_edxml(signed[:start] + b"!" + signed[start + 1 :], pki.validator(), G22)


@pytest.mark.parametrize("tamper", [False, True], ids=["verified", "refused"])
def test_verifying_a_tree_leaves_it_as_it_was(pki: DevPki, tamper: bool) -> None:
    signed = _sign(pki, BUILT)
    if tamper:
        signed = signed.replace("liên thông".encode(), "liên thong".encode())
    root = parse_xml(signed)
    before = etree.tostring(root)
    try:
        verify_edxml(root, pki.validator(), G22)
    except XmlSignatureError:
        assert tamper
    assert etree.tostring(root) == before


def test_the_text_after_the_signature_is_signed_where_the_signature_comes_first(
    pki: DevPki,
) -> None:
    first = BUILT.replace(b"<edXML:edXMLHeader>", b"<edXML:edXMLHeader><Signature/>\n  ", 1)
    signed = _sign(pki, first)
    (signature,) = _signatures(signed)
    parent = signature.getparent()
    assert parent is not None
    assert parent.index(signature) == 0
    verify_edxml(signed, pki.validator(), G22)
    # The enveloped-signature transform removes the element, not the line break after it.
    moved = signed.replace(b"</ds:Signature>\n  ", b"</ds:Signature>\n   ", 1)
    assert moved != signed
    with pytest.raises(XmlSignatureError, match="changed after signing"):
        verify_edxml(moved, pki.validator(), G22)


# -- libxmlsec1 checks with the validated certificate's key, and no other (issue 21) ----------


def test_a_signature_by_another_key_than_the_embedded_certificate_s_is_refused(
    pki: DevPki,
) -> None:
    """H41 signs; the KeyInfo then shows G22's valid certificate. libxmlsec1 is given G22's
    key (the validated certificate's), never one it might find in KeyInfo itself."""
    root = parse_xml(_sign(pki, BUILT, signer="000.00.00.H41"))
    (certificate,) = root.iter(f"{{{DS_NS}}}X509Certificate")
    g22 = pki.agency("000.00.00.G22").certificate.public_bytes(Encoding.DER)
    certificate.text = base64.b64encode(g22).decode("ascii")
    with pytest.raises(XmlSignatureError, match="does not verify with its certificate's key"):
        verify_edxml(root, pki.validator(), G22)


# -- verified in place: a large document's one parsed tree (issue 18) ------------------------


def test_a_document_verified_in_place_reads_as_the_one_rebuilt_from_the_signed_bytes(
    pki: DevPki,
) -> None:
    signed = _sign(pki, document_with_attachment(str(G22), [str(H41)], 1, b"%PDF-1.7 annex"))
    rebuilt = verify_edxml(signed, pki.validator(), G22)
    tree = parse_xml(signed)
    in_place = verify_edxml(tree, pki.validator(), G22, in_place=True)
    assert in_place.signed_xml is tree  # no second tree, no canonical bytes kept
    assert in_place.signed_data is None
    assert read(in_place.signed_xml) == read(rebuilt.signed_xml)


def test_a_document_verified_in_place_and_bound_to_the_digest_makes_the_same_signed_bytes(
    pki: DevPki,
) -> None:
    signed = _sign(pki, document_with_attachment(str(G22), [str(H41)], 1, b"%PDF-1.7 annex"))
    rebuilt = verify_edxml(signed, pki.validator(), G22)
    tree = parse_xml(signed)
    bound = verify_edxml(tree, pki.validator(), G22, in_place=True, digest_bound=True)
    assert bound.signed_xml is tree  # the model is read from this tree, not a second one
    assert bound.signed_data == rebuilt.signed_data  # made and held to the DigestValue
    assert read(bound.signed_xml) == read(rebuilt.signed_xml)


def test_the_signed_bytes_are_never_left_out_of_a_rebuilt_verification(pki: DevPki) -> None:
    with pytest.raises(ValueError, match="in_place"):
        verify_edxml(_sign(pki, BUILT), pki.validator(), G22, digest_bound=False)


@pytest.mark.parametrize(
    ("tamper", "error"),
    [
        (lambda signed: signed.replace(b"UEsD", b"UEsE"), XmlSignatureError),
        (
            lambda signed: signed.replace("V/v kết".encode(), "V/v <!-- x -->kết".encode()),
            EdxmlError,
        ),
    ],
    ids=["attachment-byte", "comment"],
)
def test_verifying_in_place_refuses_what_the_rebuilt_verification_refuses(
    pki: DevPki, tamper: Callable[[bytes], bytes], error: type[Exception]
) -> None:
    tampered = tamper(_sign(pki, BUILT))
    with pytest.raises(error):
        verify_edxml(parse_xml(tampered), pki.validator(), G22, in_place=True)
    with pytest.raises(error):
        verify_edxml(parse_xml(tampered), pki.validator(), G22, in_place=True, digest_bound=True)
