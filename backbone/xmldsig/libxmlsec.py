"""The XML-DSig operations themselves, done by libxmlsec1 (python ``xmlsec``, the C library
behind most SAML stacks) on the caller's parsed tree: no copy, no re-serialisation.

Signing fills in the profile's own template (:mod:`backbone.xmldsig.profile`). Verification
is held to the profile inside the library as well as before it: only the profile's
transforms are enabled, and the key is set on the context explicitly (no keys manager), so
libxmlsec1 never takes a key or a certificate from ``KeyInfo``. Any libxmlsec1 failure
becomes :class:`XmlSignatureError`; no ``xmlsec`` exception leaves this module.
"""

from __future__ import annotations

from functools import lru_cache

import xmlsec
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)
from lxml import etree

from backbone.errors import XmlSignatureError

__all__ = ["sign", "verify"]

_X = xmlsec.constants
# The profile's algorithms; libxmlsec1 refuses any other transform in a signature it checks.
_REFERENCE_TRANSFORMS = (
    _X.TransformEnveloped,
    _X.TransformExclC14N,
    _X.TransformExclC14NWithComments,
    _X.TransformInclC14N,
    _X.TransformInclC14NWithComments,
    _X.TransformSha256,
)
_SIGNATURE_TRANSFORMS = (
    _X.TransformExclC14N,
    _X.TransformExclC14NWithComments,
    _X.TransformInclC14N,
    _X.TransformInclC14NWithComments,
    _X.TransformRsaSha256,
)


@lru_cache(maxsize=32)
def _signing_key(key: rsa.RSAPrivateKey) -> xmlsec.Key:
    """``key`` loaded into libxmlsec1 once per key (an adapter signs with few keys; the
    context copies it for each signature). Never logged, never written anywhere."""
    pem = key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
    return xmlsec.Key.from_memory(pem, _X.KeyDataFormatPem)


@lru_cache(maxsize=256)
def _verifying_key(certificate: x509.Certificate) -> xmlsec.Key:
    """The public key of a certificate the caller has validated, loaded once per
    certificate (the validator's verdict is taken every time; this is only the key). The
    key alone, not the certificate: the context copies its key, and a certificate with it
    made that copy cost more than the check of a small document's signature."""
    spki = certificate.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    return xmlsec.Key.from_memory(spki, _X.KeyDataFormatDer)


def sign(signature: etree._Element, key: rsa.RSAPrivateKey) -> None:
    """Fill in ``signature`` (a profile template, already in the tree it signs): its
    DigestValue and SignatureValue. Its KeyInfo is left as the template wrote it."""
    try:
        context = xmlsec.SignatureContext()
        context.key = _signing_key(key)
        context.sign(signature)
    except xmlsec.Error as exc:
        raise XmlSignatureError(f"libxmlsec1 could not sign the edXML: {exc}") from None


def verify(signature: etree._Element, certificate: x509.Certificate) -> None:
    """``signature`` (whose shape the caller has checked) verifies with the key of
    ``certificate`` and with no other, and the profile's algorithms only."""
    try:
        context = xmlsec.SignatureContext()
        for transform in _REFERENCE_TRANSFORMS:
            context.enable_reference_transform(transform)
        for transform in _SIGNATURE_TRANSFORMS:
            context.enable_signature_transform(transform)
        context.key = _verifying_key(certificate)
        context.verify(signature)
    except xmlsec.Error as exc:
        raise XmlSignatureError(
            f"edXML signature does not verify with its certificate's key (libxmlsec1: {exc}): "
            "the document or its SignedInfo changed after signing, or another key signed it"
        ) from None
