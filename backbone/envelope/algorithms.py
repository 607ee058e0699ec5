"""Every cryptographic primitive of the secure envelope, by its standard name, in one place.

- content encryption: AES-256-GCM (NIST SP 800-38D), 96-bit random nonce, 128-bit tag;
- key wrap: RSAES-OAEP (RFC 8017 §7.1) with SHA-256 and MGF1-SHA-256, empty label;
- signature: RSASSA-PSS (RFC 8017 §8.1) with SHA-256, MGF1-SHA-256, salt length 32 bytes
  (the digest length);
- payload digest and key commitment: SHA-256 (FIPS 180-4);
- large documents: STREAM over the same AES-256-GCM (:mod:`backbone.envelope.stream_aead`).
"""

from __future__ import annotations

import hashlib
import os
from typing import Final

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from backbone.errors import DecryptionError

__all__ = [
    "CONTENT_ENCRYPTION",
    "CONTENT_KEY_BYTES",
    "KEY_WRAP",
    "NONCE_BYTES",
    "SIGNATURE",
    "decrypt_content",
    "encrypt_content",
    "key_commitment",
    "new_content_key",
    "new_nonce",
    "sha256_hex",
    "sign",
    "signature_verifies",
    "unwrap_key",
    "wrap_key",
]

# The names the header carries (JOSE-style identifiers, RFC 7518).
CONTENT_ENCRYPTION: Final = "A256GCM"
KEY_WRAP: Final = "RSA-OAEP-256"
SIGNATURE: Final = "RSASSA-PSS-SHA256"

CONTENT_KEY_BYTES = 32
NONCE_BYTES = 12

_OAEP = padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None)
_PSS = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=hashes.SHA256.digest_size)


def new_content_key() -> bytes:
    return AESGCM.generate_key(bit_length=CONTENT_KEY_BYTES * 8)


def new_nonce() -> bytes:
    return os.urandom(NONCE_BYTES)


def encrypt_content(key: bytes, nonce: bytes, plaintext: bytes, aad: bytes) -> bytes:
    """Ciphertext with the 16-byte GCM tag appended."""
    return AESGCM(key).encrypt(nonce, plaintext, aad)


def decrypt_content(key: bytes, nonce: bytes, ciphertext: bytes, aad: bytes) -> bytes:
    try:
        return AESGCM(key).decrypt(nonce, ciphertext, aad)
    except InvalidTag:
        raise DecryptionError(
            "the payload does not decrypt: its AES-GCM tag does not verify"
        ) from None


def wrap_key(public_key: rsa.RSAPublicKey, content_key: bytes) -> bytes:
    return public_key.encrypt(content_key, _OAEP)


def unwrap_key(private_key: rsa.RSAPrivateKey, wrapped: bytes) -> bytes:
    try:
        return private_key.decrypt(wrapped, _OAEP)
    except ValueError:
        raise DecryptionError(
            "the content key does not unwrap with the key given (RSAES-OAEP decryption failed)"
        ) from None


def key_commitment(content_key: bytes) -> str:
    """SHA-256 of the content key, hex: binds the ciphertext to one key (see schemas README)."""
    return hashlib.sha256(content_key).hexdigest()


def sign(private_key: rsa.RSAPrivateKey, data: bytes) -> bytes:
    return private_key.sign(data, _PSS, hashes.SHA256())


def signature_verifies(public_key: rsa.RSAPublicKey, signature: bytes, data: bytes) -> bool:
    try:
        public_key.verify(signature, data, _PSS, hashes.SHA256())
    except InvalidSignature:
        return False
    return True


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
