"""A development certificate authority standing in for the Government Cipher Committee.

Everything lives in one directory (``VDX_PKI_DIR`` or ``./pki`` for the CLI)::

    ca.key.pem              the CA's private key (PKCS#8, unencrypted, 0600)
    ca.cert.pem             the CA's self-signed certificate: the trust anchor to configure
    crl.pem                 the CA's current CRL, signed by the CA
    index.json              every certificate issued: serial, identity, validity, revocation
    issued/<id>.key.pem     the newest key issued to an organ code or hub (0600)
    issued/<id>.cert.pem    its certificate

Certificates bind their holder through a SAN URI (see :mod:`backbone.pki.binding`). Keys are
unencrypted because this CA only ever serves development and tests; production certificates
come from the Cipher Committee and are only *validated*, by :mod:`backbone.pki.validation`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Literal

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import NameOID
from pydantic import BaseModel, ConfigDict, ValidationError

from backbone.errors import OrganCodeError, PkiError
from backbone.organ import OrganCode, parse_identifier
from backbone.pki.binding import Identity, identity_uri
from backbone.pki.clock import Clock, iso_z, utc_now
from backbone.pki.keys import (
    PrivateKey,
    generate_private_key,
    key_usage,
    load_private_key,
    write_private_key,
)

__all__ = ["DevCA", "IndexEntry", "IssuedCertificate"]

CA_KEY_FILE = "ca.key.pem"
CA_CERT_FILE = "ca.cert.pem"
CRL_FILE = "crl.pem"
INDEX_FILE = "index.json"
ISSUED_DIR = "issued"

DEFAULT_CA_NAME = "VDX Development CA"
_CA_ORGANIZATION = "Development stand-in for the Government Cipher Committee"
_MAX_COMMON_NAME = 64  # bytes of UTF-8: RFC 5280's ub-common-name, enforced by cryptography
DEFAULT_CA_DAYS = 3650
DEFAULT_DAYS = 365
DEFAULT_CRL_DAYS = 30
# Issued certificates start a little in the past so hosts with a slightly slow clock accept them.
_CLOCK_SKEW = timedelta(minutes=5)


class IndexEntry(BaseModel):
    """One issued certificate as ``index.json`` records it."""

    model_config = ConfigDict(extra="forbid")

    serial: str  # lowercase hex, no prefix
    identity: str
    kind: Literal["organ", "system"]
    name: str
    not_before: datetime
    not_after: datetime
    fingerprint_sha256: str
    revoked_at: datetime | None = None
    revocation_reason: str | None = None  # an x509.ReasonFlags name


class _Index(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: Literal[1] = 1
    crl_number: int = 0
    certificates: list[IndexEntry] = []


@dataclass(frozen=True, slots=True)
class IssuedCertificate:
    """A key pair the CA issued, with where its files are."""

    identity: Identity
    certificate: x509.Certificate
    key: PrivateKey
    key_path: Path
    cert_path: Path

    @property
    def serial(self) -> int:
        return self.certificate.serial_number


class DevCA:
    """A CA directory on disk. Create one with :meth:`init`, open one with :meth:`load`."""

    def __init__(
        self, directory: Path, key: PrivateKey, certificate: x509.Certificate, clock: Clock
    ) -> None:
        self.directory = directory
        self.key = key
        self.certificate = certificate
        self._clock = clock

    # -- creating and opening -------------------------------------------------------------

    @classmethod
    def init(
        cls,
        directory: Path,
        *,
        name: str = DEFAULT_CA_NAME,
        days: int = DEFAULT_CA_DAYS,
        clock: Clock = utc_now,
    ) -> DevCA:
        """Create the CA key, its self-signed certificate, an empty index and an empty CRL."""
        if (directory / CA_KEY_FILE).exists():
            raise PkiError(f"{directory} already holds a CA ({CA_KEY_FILE} exists)")
        if not 1 <= len(name.encode()) <= _MAX_COMMON_NAME:
            raise PkiError(f"the CA name must be 1 to {_MAX_COMMON_NAME} bytes of UTF-8: {name!r}")
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        key = generate_private_key()
        now = clock()
        subject = x509.Name(
            [
                x509.NameAttribute(NameOID.COMMON_NAME, name),
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, _CA_ORGANIZATION),
            ]
        )
        public_key = key.public_key()
        certificate = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - _CLOCK_SKEW)
            .not_valid_after(now + timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(key_usage(key_cert_sign=True, crl_sign=True), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
            .sign(key, hashes.SHA256())
        )
        write_private_key(directory / CA_KEY_FILE, key)
        _write_atomic(directory / CA_CERT_FILE, _pem(certificate))
        ca = cls(directory, key, certificate, clock)
        ca._save_index(_Index())
        ca.crl()
        return ca

    @classmethod
    def load(cls, directory: Path, *, clock: Clock = utc_now) -> DevCA:
        key_path, cert_path = directory / CA_KEY_FILE, directory / CA_CERT_FILE
        if not key_path.is_file() or not cert_path.is_file():
            raise PkiError(
                f"no development CA in {directory} (expected {CA_KEY_FILE} and {CA_CERT_FILE}; "
                f"create one with `backbone pki init --dir {directory}`)"
            )
        try:
            certificate = x509.load_pem_x509_certificate(cert_path.read_bytes())
        except ValueError as exc:
            raise PkiError(f"cannot load the CA certificate {cert_path}: {exc}") from None
        return cls(directory, load_private_key(key_path), certificate, clock)

    # -- paths -----------------------------------------------------------------------------

    @property
    def cert_path(self) -> Path:
        return self.directory / CA_CERT_FILE

    @property
    def crl_path(self) -> Path:
        return self.directory / CRL_FILE

    def key_path(self, identity: Identity) -> Path:
        return self.directory / ISSUED_DIR / f"{identity}.key.pem"

    def issued_cert_path(self, identity: Identity) -> Path:
        return self.directory / ISSUED_DIR / f"{identity}.cert.pem"

    # -- operations ------------------------------------------------------------------------

    def issue(
        self,
        identity: Identity | str,
        *,
        name: str | None = None,
        days: int = DEFAULT_DAYS,
        not_before: datetime | None = None,
    ) -> IssuedCertificate:
        """Issue a key and certificate to an organ code or hub; it replaces that id's files.

        ``not_before`` defaults to a few minutes ago; tests pass past or future instants to
        get expired or not-yet-valid certificates.
        """
        if isinstance(identity, str):
            try:
                identity = parse_identifier(identity)
            except OrganCodeError as exc:
                raise PkiError(f"cannot issue a certificate: {exc.message}") from None
        if days <= 0:
            raise PkiError(f"validity must be at least one day, not {days}")
        start = not_before if not_before is not None else self._clock() - _CLOCK_SKEW
        end = start + timedelta(days=days)
        if end > self.certificate.not_valid_after_utc:
            raise PkiError(
                f"a certificate for {identity} valid until {iso_z(end)} would outlive the CA "
                f"certificate (valid until {iso_z(self.certificate.not_valid_after_utc)})"
            )
        holder = name or str(identity)
        key = generate_private_key()
        public_key = key.public_key()
        certificate = (
            x509.CertificateBuilder()
            .subject_name(
                x509.Name(
                    [
                        x509.NameAttribute(NameOID.COMMON_NAME, str(identity)),
                        x509.NameAttribute(NameOID.ORGANIZATION_NAME, holder),
                    ]
                )
            )
            .issuer_name(self.certificate.subject)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(end)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(key_usage(digital_signature=True, key_encipherment=True), critical=True)
            .add_extension(
                x509.SubjectAlternativeName(
                    [x509.UniformResourceIdentifier(identity_uri(identity))]
                ),
                critical=False,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()),
                critical=False,
            )
            .sign(self.key, hashes.SHA256())
        )
        (self.directory / ISSUED_DIR).mkdir(mode=0o700, exist_ok=True)
        key_path, cert_path = self.key_path(identity), self.issued_cert_path(identity)
        write_private_key(key_path, key)
        _write_atomic(cert_path, _pem(certificate))
        index = self._load_index()
        index.certificates.append(
            IndexEntry(
                serial=f"{certificate.serial_number:x}",
                identity=str(identity),
                kind="organ" if isinstance(identity, OrganCode) else "system",
                name=holder,
                not_before=certificate.not_valid_before_utc,
                not_after=certificate.not_valid_after_utc,
                fingerprint_sha256=certificate.fingerprint(hashes.SHA256()).hex(),
            )
        )
        self._save_index(index)
        return IssuedCertificate(identity, certificate, key, key_path, cert_path)

    def issued(self, identity: Identity | str) -> IssuedCertificate:
        """The newest key and certificate issued to ``identity``, read back from disk."""
        if isinstance(identity, str):
            identity = parse_identifier(identity)
        key_path, cert_path = self.key_path(identity), self.issued_cert_path(identity)
        if not cert_path.is_file():
            raise PkiError(f"no certificate has been issued to {identity} in {self.directory}")
        certificate = x509.load_pem_x509_certificate(cert_path.read_bytes())
        return IssuedCertificate(
            identity, certificate, load_private_key(key_path), key_path, cert_path
        )

    def entries(self) -> list[IndexEntry]:
        return list(self._load_index().certificates)

    def revoke(
        self,
        id_or_serial: str | int,
        *,
        reason: x509.ReasonFlags = x509.ReasonFlags.unspecified,
    ) -> list[IndexEntry]:
        """Revoke by serial (int, or hex text), or every unrevoked certificate of an id.

        Text is matched against issued ids first, then read as a hex serial. Rewrites the CRL.
        """
        index = self._load_index()
        targets = self._find(index, id_or_serial)
        now = self._clock()
        for entry in targets:
            entry.revoked_at = now
            entry.revocation_reason = reason.name
        self._save_index(index)
        self.crl()
        return targets

    def crl(self, *, days: int = DEFAULT_CRL_DAYS) -> x509.CertificateRevocationList:
        """Sign a fresh CRL listing every revoked certificate and write it to ``crl.pem``."""
        index = self._load_index()
        index.crl_number += 1
        now = self._clock()
        builder = (
            x509.CertificateRevocationListBuilder()
            .issuer_name(self.certificate.subject)
            .last_update(now)
            .next_update(now + timedelta(days=days))
            .add_extension(x509.CRLNumber(index.crl_number), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()),
                critical=False,
            )
        )
        for entry in index.certificates:
            if entry.revoked_at is None:
                continue
            revoked = (
                x509.RevokedCertificateBuilder()
                .serial_number(int(entry.serial, 16))
                .revocation_date(entry.revoked_at)
            )
            reason = x509.ReasonFlags[entry.revocation_reason or "unspecified"]
            if reason is not x509.ReasonFlags.unspecified:  # RFC 5280 §5.3.1: omit unspecified
                revoked = revoked.add_extension(x509.CRLReason(reason), critical=False)
            builder = builder.add_revoked_certificate(revoked.build())
        crl = builder.sign(self.key, hashes.SHA256())
        _write_atomic(self.crl_path, crl.public_bytes(serialization.Encoding.PEM))
        self._save_index(index)
        return crl

    # -- index -----------------------------------------------------------------------------

    def _find(self, index: _Index, id_or_serial: str | int) -> list[IndexEntry]:
        if isinstance(id_or_serial, str):
            by_id = [entry for entry in index.certificates if entry.identity == id_or_serial]
            if by_id:
                targets = [entry for entry in by_id if entry.revoked_at is None]
                if not targets:
                    raise PkiError(f"every certificate issued to {id_or_serial} is already revoked")
                return targets
            serial = _parse_serial(id_or_serial)
        else:
            serial = id_or_serial
        for entry in index.certificates:
            if int(entry.serial, 16) == serial:
                if entry.revoked_at is not None:
                    raise PkiError(f"certificate with serial {serial:x} is already revoked")
                return [entry]
        raise PkiError(f"no certificate issued by this CA has id or serial {id_or_serial!r}")

    def _load_index(self) -> _Index:
        path = self.directory / INDEX_FILE
        try:
            return _Index.model_validate_json(path.read_bytes())
        except FileNotFoundError:
            raise PkiError(f"the CA index {path} is missing") from None
        except ValidationError as exc:
            raise PkiError(f"the CA index {path} is damaged: {exc}") from None

    def _save_index(self, index: _Index) -> None:
        _write_atomic(self.directory / INDEX_FILE, index.model_dump_json(indent=2).encode() + b"\n")


def _parse_serial(text: str) -> int:
    digits = text.lower().removeprefix("0x").replace(":", "")
    try:
        return int(digits, 16)
    except ValueError:
        raise PkiError(
            f"{text!r} is neither an id this CA issued to nor a hexadecimal serial"
        ) from None


def _pem(certificate: x509.Certificate) -> bytes:
    return certificate.public_bytes(serialization.Encoding.PEM)


def _write_atomic(path: Path, data: bytes) -> None:
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_bytes(data)
    os.replace(temporary, path)
