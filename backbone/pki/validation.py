"""Certificate validation: may this certificate act for this organ code, for this use, now?

A deliberate subset of RFC 5280 path validation, enough for a closed PKI with one root (the
Government Cipher Committee) and perhaps a few intermediates:

1. **chain** — walk from the certificate to a trust anchor, looking issuers up by name and
   checking each signature with ``verify_directly_issued_by``; every issuer is a configured
   CA certificate (CA=true, keyCertSign, checked when loaded); pathLenConstraint holds; the
   chain has at most ``max_chain_length`` certificates.
2. **validity period** of every certificate in the chain, anchor included.
3. **revocation** of every certificate below the anchor against its issuer's CRL. Fail
   closed: no CRL from that issuer, or a CRL past its nextUpdate, is
   :class:`RevocationUnknownError` (``revocation_unknown`` / ``crl_expired``), never "not
   revoked". CRL signatures are checked once, when CRLs are loaded.
4. **key usage** of the certificate: digitalSignature to sign, keyEncipherment to receive
   wrapped keys. The extension must be present.
5. **binding** to the claimed organ code or hub (:mod:`backbone.pki.binding`).

Verdicts are cached per (certificate SHA-256, claimed identity, usage) in a bounded LRU. A
cached verdict skips steps 1, 4 and 5 (they cannot change) but repeats 2 and 3 on every call,
which costs a few comparisons and dict lookups: a certificate that expires, or is revoked by
a CRL loaded later with :meth:`CertificateValidator.replace_crls`, is refused at once.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Literal, TypeGuard, get_args

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.types import (
    CertificateIssuerPublicKeyTypes,
    CertificatePublicKeyTypes,
)

from backbone.errors import (
    CertificateError,
    CertificateExpiredError,
    CertificateKeyUsageError,
    CertificateRevokedError,
    CertificateUntrustedError,
    PkiError,
    Reason,
    RevocationUnknownError,
)
from backbone.pki.binding import Identity, check_binding
from backbone.pki.clock import Clock, iso_z, utc_now

__all__ = [
    "CertificateValidator",
    "Usage",
    "ValidatedCertificate",
    "load_certificate_file",
    "load_crl_file",
]

Usage = Literal["sign", "encrypt"]
CertificateInput = x509.Certificate | bytes

DEFAULT_MAX_CHAIN_LENGTH = 4  # leaf, two intermediates, root
DEFAULT_CACHE_SIZE = 16_384  # a few per connected endpoint (≈12,000), each a few hundred bytes

_REQUIRED_USAGE: dict[Usage, str] = {"sign": "digital_signature", "encrypt": "key_encipherment"}
_USAGE_NAMES = {
    "digital_signature": "digitalSignature",
    "content_commitment": "nonRepudiation",
    "key_encipherment": "keyEncipherment",
    "data_encipherment": "dataEncipherment",
    "key_agreement": "keyAgreement",
    "key_cert_sign": "keyCertSign",
    "crl_sign": "cRLSign",
}


@dataclass(frozen=True, slots=True)
class ValidatedCertificate:
    """A certificate that passed every check for ``identity`` and ``usage``."""

    certificate: x509.Certificate
    public_key: CertificatePublicKeyTypes
    identity: Identity
    usage: Usage
    fingerprint_sha256: str  # hex
    chain: tuple[x509.Certificate, ...]  # the certificate first, the trust anchor last


@dataclass(frozen=True, slots=True)
class _Authority:
    """A configured CA certificate that may issue certificates and CRLs."""

    certificate: x509.Certificate
    public_key: CertificateIssuerPublicKeyTypes
    fingerprint: bytes
    is_anchor: bool
    path_length: int | None
    label: str


@dataclass(frozen=True, slots=True)
class _Crl:
    next_update: datetime
    revoked: Mapping[int, x509.RevokedCertificate]


@dataclass(frozen=True, slots=True)
class _Checked:
    """One certificate of a chain with what the time and revocation re-checks need."""

    description: str  # "certificate for 000.00.00.H53", "CA certificate 'CN=…' in the chain of …"
    serial: int
    not_before: datetime
    not_after: datetime
    issuer: _Authority | None  # None for the trust anchor: it is trusted, not revocation-checked


@dataclass(frozen=True, slots=True)
class _Verdict:
    validated: ValidatedCertificate
    checked: tuple[_Checked, ...]


class CertificateValidator:
    """Validates certificates against configured trust anchors, intermediates and CRLs.

    Thread-safe. ``clock`` supplies "now" when :meth:`validate` gets no ``at``.
    """

    def __init__(
        self,
        trust_anchors: Iterable[x509.Certificate],
        intermediates: Iterable[x509.Certificate] = (),
        crls: Iterable[x509.CertificateRevocationList] = (),
        *,
        clock: Clock = utc_now,
        max_chain_length: int = DEFAULT_MAX_CHAIN_LENGTH,
        cache_size: int = DEFAULT_CACHE_SIZE,
    ) -> None:
        self._clock = clock
        self._max_chain_length = max_chain_length
        self._cache_size = cache_size
        self._cache: OrderedDict[tuple[bytes, Identity, Usage], _Verdict] = OrderedDict()
        self._lock = threading.Lock()
        self._by_subject: dict[x509.Name, list[_Authority]] = {}
        for certificate in trust_anchors:
            self._add_authority(certificate, is_anchor=True)
        if not self._by_subject:
            raise PkiError("no trust anchor configured: at least one CA certificate is needed")
        for certificate in intermediates:
            self._add_authority(certificate, is_anchor=False)
        self._crls: dict[bytes, _Crl] = self._load_crls(crls)

    @classmethod
    def from_paths(
        cls,
        ca_files: Iterable[Path | str],
        crl_files: Iterable[Path | str] = (),
        *,
        intermediate_files: Iterable[Path | str] = (),
        clock: Clock = utc_now,
        max_chain_length: int = DEFAULT_MAX_CHAIN_LENGTH,
        cache_size: int = DEFAULT_CACHE_SIZE,
    ) -> CertificateValidator:
        """Load trust anchors, intermediates (PEM bundles or DER) and CRLs (PEM or DER)."""
        return cls(
            [cert for path in ca_files for cert in load_certificate_file(Path(path))],
            [cert for path in intermediate_files for cert in load_certificate_file(Path(path))],
            [load_crl_file(Path(path)) for path in crl_files],
            clock=clock,
            max_chain_length=max_chain_length,
            cache_size=cache_size,
        )

    def revocation_gaps(self, at: datetime | None = None) -> list[str]:
        """Why revocation cannot be told for some certificates at ``at`` (default now): every
        configured authority needs a loaded CRL that has not expired. Empty when it can."""
        moment = self._moment(at)
        crls = self._crls
        gaps: list[str] = []
        for authority in (a for same in self._by_subject.values() for a in same):
            crl = crls.get(authority.fingerprint)
            if crl is None:
                gaps.append(f"no CRL from '{authority.label}' is loaded")
            elif moment > crl.next_update:
                gaps.append(f"the CRL from '{authority.label}' expired on {iso_z(crl.next_update)}")
        return gaps

    def replace_crls(self, crls: Iterable[x509.CertificateRevocationList]) -> None:
        """Swap in freshly fetched CRLs; cached verdicts are re-checked against them."""
        self._crls = self._load_crls(crls)

    def validate(
        self,
        certificate: CertificateInput,
        *,
        claimed: Identity,
        usage: Usage,
        at: datetime | None = None,
    ) -> ValidatedCertificate:
        """Return the validated certificate or raise the :class:`CertificateError` subclass
        naming the first check that failed (chain, validity, revocation, key usage, binding).

        ``certificate`` is an ``x509.Certificate`` or its PEM or DER bytes.
        """
        moment = self._moment(at)
        if isinstance(certificate, bytes):
            fingerprint = hashlib.sha256(certificate).digest()
        else:
            fingerprint = certificate.fingerprint(hashes.SHA256())
        key = (fingerprint, claimed, usage)
        with self._lock:
            verdict = self._cache.get(key)
            if verdict is not None:
                self._cache.move_to_end(key)
        if verdict is None:
            try:
                verdict = self._judge(_parse(certificate, claimed), claimed, usage, moment)
            # cryptography parses fields lazily, on first access; a bad version field raises
            # InvalidVersion, which is not a ValueError.
            except (ValueError, x509.InvalidVersion) as exc:
                raise CertificateError(f"certificate for {claimed} is malformed: {exc}") from None
            with self._lock:
                self._cache[key] = verdict
                if len(self._cache) > self._cache_size:
                    self._cache.popitem(last=False)
        else:
            self._check_times(verdict.checked, moment)
            self._check_revocation(verdict.checked, moment)
        return verdict.validated

    # -- the checks ------------------------------------------------------------------------

    def _judge(
        self, certificate: x509.Certificate, claimed: Identity, usage: Usage, moment: datetime
    ) -> _Verdict:
        checked, chain = self._build_chain(certificate, claimed)
        self._check_times(checked, moment)
        self._check_revocation(checked, moment)
        _check_key_usage(certificate, claimed, usage)
        check_binding(certificate, claimed)
        validated = ValidatedCertificate(
            certificate=certificate,
            public_key=certificate.public_key(),
            identity=claimed,
            usage=usage,
            fingerprint_sha256=certificate.fingerprint(hashes.SHA256()).hex(),
            chain=chain,
        )
        return _Verdict(validated, checked)

    def _build_chain(
        self, leaf: x509.Certificate, claimed: Identity
    ) -> tuple[tuple[_Checked, ...], tuple[x509.Certificate, ...]]:
        checked: list[_Checked] = []
        chain = [leaf]
        current, description = leaf, f"certificate for {claimed}"
        for intermediates_below in range(self._max_chain_length - 1):
            issuer = self._issuer_of(current, description)
            if issuer.path_length is not None and intermediates_below > issuer.path_length:
                raise CertificateUntrustedError(
                    f"CA certificate '{issuer.label}' allows {issuer.path_length} intermediate "
                    f"CA(s) below it, but the chain of {claimed} has {intermediates_below}"
                )
            checked.append(_describe(current, description, issuer))
            chain.append(issuer.certificate)
            if issuer.is_anchor:
                checked.append(
                    _describe(issuer.certificate, f"trust anchor '{issuer.label}'", None)
                )
                return tuple(checked), tuple(chain)
            current = issuer.certificate
            description = f"CA certificate '{issuer.label}' in the chain of {claimed}"
        raise CertificateUntrustedError(
            f"certificate for {claimed} does not reach a trust anchor within "
            f"{self._max_chain_length} certificates"
        )

    def _issuer_of(self, certificate: x509.Certificate, description: str) -> _Authority:
        candidates = self._by_subject.get(certificate.issuer, [])
        for candidate in candidates:
            try:
                certificate.verify_directly_issued_by(candidate.certificate)
            except (ValueError, TypeError, InvalidSignature):
                continue
            return candidate
        issuer = certificate.issuer.rfc4514_string()
        if not candidates:
            raise CertificateUntrustedError(
                f"{description} was issued by '{issuer}', which is not a configured CA"
            )
        raise CertificateUntrustedError(
            f"{description} names issuer '{issuer}', but its signature does not verify with "
            "that CA's key"
        )

    def _check_times(self, checked: tuple[_Checked, ...], moment: datetime) -> None:
        for item in checked:
            if moment > item.not_after:
                raise CertificateExpiredError(
                    f"{item.description} expired on {iso_z(item.not_after)}"
                )
            if moment < item.not_before:
                raise CertificateExpiredError(
                    f"{item.description} is not valid before {iso_z(item.not_before)}",
                    reason=Reason.CERT_NOT_YET_VALID,
                )

    def _check_revocation(self, checked: tuple[_Checked, ...], moment: datetime) -> None:
        crls = self._crls  # one snapshot: replace_crls swaps the whole map
        for item in checked:
            if item.issuer is None:
                continue
            crl = crls.get(item.issuer.fingerprint)
            if crl is None:
                raise RevocationUnknownError(
                    f"no CRL from '{item.issuer.label}' is loaded, so whether the "
                    f"{item.description} is revoked cannot be told"
                )
            if moment > crl.next_update:
                raise RevocationUnknownError(
                    f"the CRL from '{item.issuer.label}' expired on {iso_z(crl.next_update)}; "
                    f"load a fresh one to validate the {item.description}",
                    reason=Reason.CRL_EXPIRED,
                )
            revoked = crl.revoked.get(item.serial)
            if revoked is not None:
                raise CertificateRevokedError(
                    f"{item.description} (serial {item.serial:x}) was revoked on "
                    f"{iso_z(revoked.revocation_date_utc)} ({_revocation_reason(revoked)})"
                )

    # -- loading ---------------------------------------------------------------------------

    def _add_authority(self, certificate: x509.Certificate, *, is_anchor: bool) -> None:
        label = certificate.subject.rfc4514_string()
        role = "trust anchor" if is_anchor else "intermediate"
        try:
            constraints = certificate.extensions.get_extension_for_class(x509.BasicConstraints)
            usage = certificate.extensions.get_extension_for_class(x509.KeyUsage)
        except x509.ExtensionNotFound as exc:
            raise PkiError(f"{role} '{label}' is not a CA certificate: {exc}") from None
        if not constraints.value.ca or not usage.value.key_cert_sign:
            raise PkiError(
                f"{role} '{label}' is not a CA certificate (it needs basicConstraints CA=true "
                "and keyUsage keyCertSign)"
            )
        public_key = certificate.public_key()
        if not _can_issue(public_key):
            raise PkiError(f"{role} '{label}' has a key that cannot sign certificates")
        authority = _Authority(
            certificate=certificate,
            public_key=public_key,
            fingerprint=certificate.fingerprint(hashes.SHA256()),
            is_anchor=is_anchor,
            path_length=constraints.value.path_length,
            label=label,
        )
        self._by_subject.setdefault(certificate.subject, []).append(authority)

    def _load_crls(self, crls: Iterable[x509.CertificateRevocationList]) -> dict[bytes, _Crl]:
        loaded: dict[bytes, tuple[datetime, _Crl]] = {}
        for crl in crls:
            issuer = self._crl_issuer(crl)
            if crl.next_update_utc is None:
                raise PkiError(f"the CRL from '{issuer.label}' has no nextUpdate")
            previous = loaded.get(issuer.fingerprint)
            if previous is not None and previous[0] >= crl.last_update_utc:
                continue  # keep the newest CRL of each issuer
            revoked = {entry.serial_number: entry for entry in crl}
            loaded[issuer.fingerprint] = (
                crl.last_update_utc,
                _Crl(next_update=crl.next_update_utc, revoked=revoked),
            )
        return {fingerprint: crl for fingerprint, (_, crl) in loaded.items()}

    def _crl_issuer(self, crl: x509.CertificateRevocationList) -> _Authority:
        name = crl.issuer.rfc4514_string()
        for candidate in self._by_subject.get(crl.issuer, []):
            if not crl.is_signature_valid(candidate.public_key):
                continue
            usage = candidate.certificate.extensions.get_extension_for_class(x509.KeyUsage)
            if not usage.value.crl_sign:
                raise PkiError(f"CA '{name}' signed a CRL but its key usage lacks cRLSign")
            return candidate
        raise PkiError(f"the CRL issued by '{name}' is not signed by any configured CA")

    def _moment(self, at: datetime | None) -> datetime:
        moment = self._clock() if at is None else at
        if moment.tzinfo is None:
            raise ValueError("validation time must be timezone-aware")
        return moment


def load_certificate_file(path: Path) -> list[x509.Certificate]:
    """Every certificate in a PEM bundle, or the one in a DER file."""
    try:
        data = path.read_bytes()
        if b"-----BEGIN" in data:
            return x509.load_pem_x509_certificates(data)
        return [x509.load_der_x509_certificate(data)]
    except (OSError, ValueError) as exc:
        raise PkiError(f"cannot load certificates from {path}: {exc}") from None


def load_crl_file(path: Path) -> x509.CertificateRevocationList:
    try:
        data = path.read_bytes()
        if b"-----BEGIN" in data:
            return x509.load_pem_x509_crl(data)
        return x509.load_der_x509_crl(data)
    except (OSError, ValueError) as exc:
        raise PkiError(f"cannot load a CRL from {path}: {exc}") from None


def _parse(certificate: CertificateInput, claimed: Identity) -> x509.Certificate:
    if isinstance(certificate, x509.Certificate):
        return certificate
    try:
        if certificate.startswith(b"-----BEGIN"):
            return x509.load_pem_x509_certificate(certificate)
        return x509.load_der_x509_certificate(certificate)
    except ValueError as exc:
        raise CertificateError(f"certificate for {claimed} is malformed: {exc}") from None


def _describe(
    certificate: x509.Certificate, description: str, issuer: _Authority | None
) -> _Checked:
    return _Checked(
        description=description,
        serial=certificate.serial_number,
        not_before=certificate.not_valid_before_utc,
        not_after=certificate.not_valid_after_utc,
        issuer=issuer,
    )


def _check_key_usage(certificate: x509.Certificate, claimed: Identity, usage: Usage) -> None:
    required = _REQUIRED_USAGE[usage]
    try:
        key_usage = certificate.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        raise CertificateKeyUsageError(
            f"certificate for {claimed} has no key usage extension; to {usage} it must allow "
            f"{_USAGE_NAMES[required]}"
        ) from None
    if not getattr(key_usage, required):
        allowed = [name for attr, name in _USAGE_NAMES.items() if getattr(key_usage, attr)]
        raise CertificateKeyUsageError(
            f"certificate for {claimed} does not allow {_USAGE_NAMES[required]}, needed to "
            f"{usage} (it allows: {', '.join(allowed) or 'nothing'})"
        )


def _can_issue(key: CertificatePublicKeyTypes) -> TypeGuard[CertificateIssuerPublicKeyTypes]:
    return isinstance(key, get_args(CertificateIssuerPublicKeyTypes))


def _revocation_reason(entry: x509.RevokedCertificate) -> str:
    try:
        reason = entry.extensions.get_extension_for_class(x509.CRLReason).value.reason
    except x509.ExtensionNotFound:
        return "reason unspecified"
    return f"reason {reason.value}"
