"""How a certificate names the organ code (or hub) it was issued to.

The binding is a SubjectAlternativeName URI ``urn:qcvn102:organ:<organ code>`` for an agency
and ``urn:qcvn102:system:<system id>`` for a hub. The subject CN repeats the code for people
reading the certificate, but only the SAN URI is trusted: names are free text, URIs are typed.
"""

from __future__ import annotations

from cryptography import x509

from backbone.errors import CertificateBindingError, OrganCodeError
from backbone.organ import OrganCode, SystemId

__all__ = [
    "ORGAN_URN",
    "SYSTEM_URN",
    "Identity",
    "bound_identities",
    "check_binding",
    "identity_uri",
]

Identity = OrganCode | SystemId
ORGAN_URN = "urn:qcvn102:organ:"
SYSTEM_URN = "urn:qcvn102:system:"


def identity_uri(identity: Identity) -> str:
    prefix = ORGAN_URN if isinstance(identity, OrganCode) else SYSTEM_URN
    return f"{prefix}{identity}"


def bound_identities(certificate: x509.Certificate) -> tuple[Identity, ...]:
    """Every organ code or system id the certificate's SAN URIs name (malformed ones skipped)."""
    try:
        san = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return ()
    identities: list[Identity] = []
    for uri in san.value.get_values_for_type(x509.UniformResourceIdentifier):
        try:
            if uri.startswith(ORGAN_URN):
                identities.append(OrganCode.parse(uri.removeprefix(ORGAN_URN)))
            elif uri.startswith(SYSTEM_URN):
                identities.append(SystemId.parse(uri.removeprefix(SYSTEM_URN)))
        except OrganCodeError:
            continue  # a malformed URI binds nothing; the claim then fails below
    return tuple(identities)


def check_binding(certificate: x509.Certificate, claimed: Identity) -> None:
    """Raise :class:`CertificateBindingError` unless the certificate is bound to ``claimed``."""
    identities = bound_identities(certificate)
    if claimed in identities:
        return
    if not identities:
        raise CertificateBindingError(
            f"certificate '{certificate.subject.rfc4514_string()}' presented for {claimed} "
            f"names no organ code or system id (no {ORGAN_URN}… or {SYSTEM_URN}… SAN URI)"
        )
    bound = ", ".join(str(identity) for identity in identities)
    raise CertificateBindingError(
        f"certificate presented for {claimed} is bound to {bound}, not to {claimed}"
    )
