"""The backbone's XML-DSig profile, everything but the cryptography (which libxmlsec1 does,
:mod:`backbone.xmldsig.libxmlsec`): the signature template the signer fills in, the closed
list of shapes a signature may have, and the bytes an accepted signature covers.

The profile (:mod:`backbone.xmldsig.document`): RSA-SHA256 (RSASSA-PKCS1-v1_5), a SHA-256
digest, one ``Reference URI=""`` with the enveloped-signature transform and a
canonicalisation. :func:`read_signed_info` refuses any other element, algorithm, transform,
text or processing instruction in ``SignedInfo`` (the part the signature covers) with
:class:`~backbone.errors.XmlSignatureError` before the library is called, so that what
libxmlsec1 checks is always the whole document and nothing else (no signature wrapping).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Container, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from lxml import etree

from backbone.edxml.parser import hardened_parser
from backbone.errors import EdxmlError, Reason, XmlSignatureError

__all__ = [
    "DS_NS",
    "SignedInfo",
    "check_canonicalisable",
    "new_signature",
    "read_signed_info",
    "signed_bytes",
]

DS_NS = "http://www.w3.org/2000/09/xmldsig#"
_DS = f"{{{DS_NS}}}"
RSA_SHA256 = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"
SHA256 = "http://www.w3.org/2001/04/xmlenc#sha256"
ENVELOPED = "http://www.w3.org/2000/09/xmldsig#enveloped-signature"
EXCLUSIVE_C14N = "http://www.w3.org/2001/10/xml-exc-c14n#"
_EXCLUSIVE_C14N_WITH_COMMENTS = "http://www.w3.org/2001/10/xml-exc-c14n#WithComments"
_INCLUSIVE_C14N = "http://www.w3.org/TR/2001/REC-xml-c14n-20010315"
_INCLUSIVE_C14N_WITH_COMMENTS = _INCLUSIVE_C14N + "#WithComments"


@dataclass(frozen=True, slots=True)
class Canonicalization:
    """XML C14N 1.0, inclusive or exclusive, as lxml (libxml2) runs it."""

    exclusive: bool
    with_comments: bool

    def of(self, node: etree._Element | etree._ElementTree) -> bytes:
        try:
            return bytes(
                etree.tostring(
                    node, method="c14n", exclusive=self.exclusive, with_comments=self.with_comments
                )
            )
        except etree.C14NError:
            # libxml2 refuses a relative namespace URI (deprecated since 2000), and so would
            # any other signer's or verifier's C14N.
            raise EdxmlError(
                "the edXML cannot be canonicalised for its XML signature (XML C14N refuses "
                'a relative namespace URI, such as xmlns:x="x")',
                reason=Reason.EDXML_INVALID,
            ) from None


# The canonicalisations accepted in a signature (the backbone writes exclusive C14N without
# comments; comments are refused anyway, module backbone.xmldsig). C14N 1.1 is not: the
# backbone never signed with it, and signxml, its verifier before issue 21, ran it as 1.0
# (not what a 1.1 signer digested); the signed bytes are made here with lxml's C14N 1.0.
_CANONICALIZATIONS = {
    EXCLUSIVE_C14N: Canonicalization(exclusive=True, with_comments=False),
    _EXCLUSIVE_C14N_WITH_COMMENTS: Canonicalization(exclusive=True, with_comments=True),
    _INCLUSIVE_C14N: Canonicalization(exclusive=False, with_comments=False),
    _INCLUSIVE_C14N_WITH_COMMENTS: Canonicalization(exclusive=False, with_comments=True),
}
# XML-DSig's default for a Reference without a canonicalisation transform (node-set to octets).
_DEFAULT_REFERENCE_C14N = _CANONICALIZATIONS[_INCLUSIVE_C14N]
_SHA256_BYTES = 32


@dataclass(frozen=True, slots=True)
class SignedInfo:
    """What a ``ds:SignedInfo`` of the profile says (:func:`read_signed_info`)."""

    element: etree._Element
    canonicalization: Canonicalization  # of SignedInfo itself
    reference_uri: str | None
    reference_canonicalization: Canonicalization
    digest: bytes  # SHA-256 of the referenced document


def new_signature(certificate_der: bytes) -> etree._Element:
    """A ``ds:Signature`` of the profile (exclusive C14N) for the signer's certificate, its
    DigestValue and SignatureValue empty until libxmlsec1 fills them in
    (:mod:`~backbone.xmldsig.libxmlsec`)."""
    # Parsing the template costs a quarter of building its 14 elements one by one.
    signature = etree.fromstring(_TEMPLATE, hardened_parser())
    next(signature.iter(f"{_DS}X509Certificate")).text = _b64(certificate_der)
    return signature


def _template() -> bytes:
    """The profile's signature with no certificate, serialised (:func:`new_signature`)."""
    signature = etree.Element(f"{_DS}Signature", nsmap={"ds": DS_NS})
    signed_info = _add(signature, "SignedInfo")
    _add(signed_info, "CanonicalizationMethod", Algorithm=EXCLUSIVE_C14N)
    _add(signed_info, "SignatureMethod", Algorithm=RSA_SHA256)
    reference = _add(signed_info, "Reference", URI="")
    transforms = _add(reference, "Transforms")
    _add(transforms, "Transform", Algorithm=ENVELOPED)
    _add(transforms, "Transform", Algorithm=EXCLUSIVE_C14N)
    _add(reference, "DigestMethod", Algorithm=SHA256)
    _add(reference, "DigestValue")
    _add(signature, "SignatureValue")
    _add(_add(_add(signature, "KeyInfo"), "X509Data"), "X509Certificate")
    return bytes(etree.tostring(signature))


def read_signed_info(signature: etree._Element) -> SignedInfo:
    """The SignedInfo of ``signature``, if it has exactly the profile's shape: one
    CanonicalizationMethod and one RSA-SHA256 SignatureMethod, one Reference with the
    enveloped-signature transform (then at most a canonicalisation), SHA-256, and nothing
    else. Raises :class:`XmlSignatureError` naming what differs."""
    signed_info, value, _ = _children(signature, "SignedInfo", "SignatureValue", "KeyInfo")
    _base64(value, "SignatureValue")
    c14n_method, signature_method, reference = _children(
        signed_info, "CanonicalizationMethod", "SignatureMethod", "Reference"
    )
    canonicalization = _canonicalization(c14n_method)
    _algorithm(signature_method, {RSA_SHA256}, "signature method (RSA-SHA256 expected)")
    transforms, digest_method, digest_value = _children(
        reference, "Transforms", "DigestMethod", "DigestValue"
    )
    _algorithm(digest_method, {SHA256}, "digest method (SHA-256 expected)")
    steps = _elements(transforms)
    if not 1 <= len(steps) <= 2 or any(step.tag != f"{_DS}Transform" for step in steps):
        raise _invalid(
            "its Transforms must be the enveloped-signature transform, then at most a "
            "canonicalisation"
        )
    _algorithm(steps[0], {ENVELOPED}, "first transform (enveloped-signature expected)")
    reference_c14n = _canonicalization(steps[1]) if len(steps) == 2 else _DEFAULT_REFERENCE_C14N
    digest = _base64(digest_value, "DigestValue")
    if len(digest) != _SHA256_BYTES:
        raise _invalid(
            f"its DigestValue has {len(digest)} bytes, not the {_SHA256_BYTES} of SHA-256"
        )
    return SignedInfo(signed_info, canonicalization, reference.get("URI"), reference_c14n, digest)


def signed_bytes(root: etree._Element, signature: etree._Element, signed_info: SignedInfo) -> bytes:
    """The bytes ``signature`` covers: the document (``Reference URI=""``: with any processing
    instruction outside the root) canonicalised as its Reference says, without the signature
    (the enveloped-signature transform). What the recipient reads is rebuilt from them.

    They are held to the DigestValue libxmlsec1 checked: one SHA-256 of bytes already made,
    so that the content handed on is provably the content signed, whatever the two
    canonicalisations' (libxml2's both) agreement; a disagreement is refused, never passed."""
    whole = root.getroottree()
    signed = _canonical_without(whole, signature, signed_info.reference_canonicalization)
    if hashlib.sha256(signed).digest() != signed_info.digest:
        raise _invalid("the canonical document is not what libxmlsec1 found signed (digest)")
    return signed


def check_canonicalisable(root: etree._Element) -> None:
    """Raise the :class:`EdxmlError` (``edxml_invalid``) of a document XML C14N refuses;
    called only to explain a failure of the library, which says no more than "failed"."""
    _CANONICALIZATIONS[EXCLUSIVE_C14N].of(root)


def _canonical_without(
    node: etree._Element | etree._ElementTree,
    signature: etree._Element,
    canonicalization: Canonicalization,
) -> bytes:
    """``node`` canonicalised as if ``signature`` were not in it, its tail text kept (the
    enveloped-signature transform removes the element only). The tree is as it was after."""
    with _detached(signature):
        return canonicalization.of(node)


@contextmanager
def _detached(element: etree._Element) -> Iterator[None]:
    parent = element.getparent()
    if parent is None:
        raise _invalid("the signature is not inside the document it signs")
    index, tail, previous = parent.index(element), element.tail, element.getprevious()
    parent.remove(element)  # lxml takes the tail along: leave it in place meanwhile
    kept = previous.tail if previous is not None else parent.text
    if tail:
        if previous is not None:
            previous.tail = (kept or "") + tail
        else:
            parent.text = (kept or "") + tail
    try:
        yield
    finally:
        if previous is not None:
            previous.tail = kept
        else:
            parent.text = kept
        parent.insert(index, element)
        element.tail = tail


def _add(parent: etree._Element, name: str, **attributes: str) -> etree._Element:
    return etree.SubElement(parent, f"{_DS}{name}", attributes)


def _elements(parent: etree._Element) -> list[etree._Element]:
    """``parent``'s child elements; nothing else may be in it but white space."""
    children = list(parent)  # once: each pass over them makes their proxies anew
    texts = [parent.text, *(child.tail for child in children)]
    if any(text and not text.isspace() for text in texts):
        raise _invalid(f"text in {etree.QName(parent).localname}")
    if any(not isinstance(child.tag, str) for child in children):
        raise _invalid(f"a comment or processing instruction in {etree.QName(parent).localname}")
    return children


def _children(parent: etree._Element, *names: str) -> list[etree._Element]:
    found = _elements(parent)
    expected = [f"{_DS}{name}" for name in names]
    if [child.tag for child in found] != expected:
        got = ", ".join(etree.QName(child).localname for child in found) or "nothing"
        raise _invalid(
            f"its {etree.QName(parent).localname} holds {got}; expected {', '.join(names)}"
        )
    return found


def _algorithm(element: etree._Element, accepted: Container[str], what: str) -> str:
    algorithm = element.get("Algorithm")
    if algorithm is None or algorithm not in accepted:
        raise _invalid(f"{what}: {algorithm!r} is not accepted")
    if _elements(element):
        raise _invalid(f"parameters in its {etree.QName(element).localname} are not accepted")
    return algorithm


def _canonicalization(element: etree._Element) -> Canonicalization:
    algorithm = _algorithm(element, _CANONICALIZATIONS, "canonicalisation (XML C14N 1.0 expected)")
    return _CANONICALIZATIONS[algorithm]


def _base64(element: etree._Element, name: str) -> bytes:
    if len(element):
        raise _invalid(f"elements inside {name}")
    try:
        return base64.b64decode("".join((element.text or "").split()), validate=True)
    except binascii.Error as exc:
        raise _invalid(f"its {name} is not base64: {exc}") from None


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _invalid(detail: str) -> XmlSignatureError:
    return XmlSignatureError(f"edXML signature does not verify: {detail}")


_TEMPLATE = _template()
