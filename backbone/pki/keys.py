"""The one place that decides which key pairs the backbone uses: RSA-2048, and the
keyUsage extension (:func:`key_usage`) certificates for them carry.

The Government Cipher Committee issues RSA certificates, and the secure envelope wraps keys
with RSAES-OAEP and signs with RSASSA-PSS, so changing the key type here also means changing
those algorithms in :mod:`backbone.envelope.algorithms`.
"""

from __future__ import annotations

import os
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from backbone.errors import PkiError

__all__ = [
    "KEY_SIZE",
    "PrivateKey",
    "PublicKey",
    "generate_private_key",
    "key_usage",
    "load_private_key",
    "private_key_pem",
    "write_private_key",
]

PrivateKey = rsa.RSAPrivateKey
PublicKey = rsa.RSAPublicKey
KEY_SIZE = 2048
_PUBLIC_EXPONENT = 65537


def generate_private_key() -> PrivateKey:
    return rsa.generate_private_key(public_exponent=_PUBLIC_EXPONENT, key_size=KEY_SIZE)


def private_key_pem(key: PrivateKey) -> bytes:
    """PKCS#8 PEM, unencrypted: development keys only; the file mode protects them."""
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def write_private_key(path: Path, key: PrivateKey) -> None:
    """Write ``key`` readable by its owner only (0600), atomically."""
    temporary = path.with_name(f".{path.name}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(private_key_pem(key))
    os.chmod(temporary, 0o600)  # O_CREAT's mode does not apply to a file that already existed
    os.replace(temporary, path)


def load_private_key(source: Path | bytes) -> PrivateKey:
    """Load an unencrypted PEM private key (from a file or bytes); it must be RSA."""
    data = source.read_bytes() if isinstance(source, Path) else source
    where = f" from {source}" if isinstance(source, Path) else ""
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise PkiError(f"cannot load the private key{where}: {exc}") from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise PkiError(f"the private key{where} is {type(key).__name__}, not RSA")
    return key


def key_usage(
    *,
    digital_signature: bool = False,
    key_encipherment: bool = False,
    key_cert_sign: bool = False,
    crl_sign: bool = False,
) -> x509.KeyUsage:
    """A keyUsage extension with only the named bits set (the others are never used)."""
    return x509.KeyUsage(
        digital_signature=digital_signature,
        content_commitment=False,
        key_encipherment=key_encipherment,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=key_cert_sign,
        crl_sign=crl_sign,
        encipher_only=False,
        decipher_only=False,
    )
