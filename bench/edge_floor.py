"""The large document's edge floor (issue 18): the whole-document work that no implementation
of the issue's design can overlap with the chunks' transport, timed in the same run.

- **Before the first chunk can go**, the sender must have: parsed the document (the one
  parsed copy the issue allows) and made its XML-DSig (exclusive C14N of the whole document
  into SHA-256, one RSA signature), since the signature is inside the first chunk; and every
  chunk encrypted (AES-256-GCM), since the signed header that goes first commits to every
  chunk's digest.
- **After the last chunk arrives**, the recipient must still check the XML-DSig of the whole
  document (canonicalisation and digest again, one RSA verification) before it delivers
  anything. Its parse is not counted: it could be fed chunk by chunk as they arrive.

Each step is timed alone with the libraries the product uses (lxml's parser without the
hardening pre-scan, libxmlsec1 signing and verifying a bare template with a throwaway key,
``cryptography``'s AES-GCM), no model, no files: below what the product does. With it, the
best throughput ratio any implementation could reach on this machine is the document's bytes
over (the bare broker's transport of the chunks + the floor), against the bare broker.
"""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path
from typing import Any

import xmlsec
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)
from lxml import etree

__all__ = ["best_ratio", "measure_edge_floor", "within_phases"]


def measure_edge_floor(document: Path, chunk_bytes: int) -> dict[str, Any]:
    """Seconds of each floor step for the document at ``document`` (wall, one thread: every
    step is one pass in C over the whole document), and the floor, their sum."""
    data = document.read_bytes()
    started = time.perf_counter()
    parser = etree.XMLParser(huge_tree=True, resolve_entities=False, no_network=True)
    root = etree.fromstring(data, parser)
    parsed = time.perf_counter()
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    signature = _signature_template(root)
    signing = xmlsec.SignatureContext()
    signing.key = xmlsec.Key.from_memory(
        key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()),
        xmlsec.constants.KeyDataFormatPem,
    )
    signed_at = time.perf_counter()
    signing.sign(signature)
    signed = time.perf_counter()
    verifying = xmlsec.SignatureContext()
    verifying.key = xmlsec.Key.from_memory(
        key.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo),
        xmlsec.constants.KeyDataFormatPem,
    )
    verifying.verify(signature)
    verified = time.perf_counter()
    del root, signature
    aead, nonce = AESGCM(AESGCM.generate_key(bit_length=256)), os.urandom(12)
    view = memoryview(data)
    encrypt_started = time.perf_counter()
    for offset in range(0, len(data), chunk_bytes):
        hashlib.sha256(aead.encrypt(nonce, view[offset : offset + chunk_bytes], None)).digest()
    encrypted = time.perf_counter()
    steps = {
        "sender_parse_s": parsed - started,
        "sender_xmldsig_digest_s": signed - signed_at,
        "sender_encrypt_s": encrypted - encrypt_started,
        "recipient_xmldsig_digest_s": verified - signed,
    }
    return {
        **{name: round(seconds, 3) for name, seconds in steps.items()},
        "edge_floor_seconds": round(sum(steps.values()), 3),
    }


def _signature_template(root: etree._Element) -> etree._Element:
    """An enveloped XML-DSig of the profile's algorithms (exclusive C14N, SHA-256,
    RSA-SHA256) over the whole document, appended to ``root``: libxmlsec1 canonicalises the
    document straight into the digest, faster than lxml writing the canonical form out."""
    constants = xmlsec.constants
    signature = xmlsec.template.create(
        root, constants.TransformExclC14N, constants.TransformRsaSha256
    )
    reference = xmlsec.template.add_reference(signature, constants.TransformSha256, uri="")
    xmlsec.template.add_transform(reference, constants.TransformEnveloped)
    xmlsec.template.add_transform(reference, constants.TransformExclC14N)
    root.append(signature)
    return signature


# Each floor step, and the product's phase doing at least that work (bench/phases.py).
_DONE_BY = {
    "sender_parse_s": ("sender", "parse"),
    "sender_xmldsig_digest_s": ("sender", "sign"),
    "recipient_xmldsig_digest_s": ("recipient", "verify"),
}


def within_phases(
    floor: dict[str, Any], sender: dict[str, Any], recipient: dict[str, Any]
) -> dict[str, Any]:
    """``floor`` with each step no longer than the product's own phase doing it in the same
    run (the sender's parse and signing, the recipient's verification; each phase's summed
    ``seconds``): timed alone, a step can come out slower than the product did it, and a
    floor is never above what was done."""
    phases = {"sender": sender, "recipient": recipient}
    bounded = dict(floor)
    for step, (party, phase) in _DONE_BY.items():
        done = phases[party].get(phase, {}).get("seconds")
        if done is not None:
            bounded[step] = min(float(floor[step]), float(done))
    steps = [name for name in bounded if name.endswith("_s")]
    bounded["edge_floor_seconds"] = round(sum(float(bounded[name]) for name in steps), 3)
    return bounded


def best_ratio(
    *, document_bytes: int, message_bytes: int, ceiling_bytes_per_s: float, floor_seconds: float
) -> float:
    """The best throughput ratio the path could reach here: the chunks carried at the bare
    broker's speed, with only the floor's work before and after them."""
    seconds = message_bytes / ceiling_bytes_per_s + floor_seconds
    return round(document_bytes / seconds / ceiling_bytes_per_s, 3)
