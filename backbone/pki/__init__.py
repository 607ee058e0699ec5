"""Certificates: a development CA, identity binding, and certificate validation."""

from backbone.pki.binding import Identity, bound_identities, check_binding, identity_uri
from backbone.pki.ca import DevCA, IssuedCertificate
from backbone.pki.validation import CertificateValidator, Usage, ValidatedCertificate

__all__ = [
    "CertificateValidator",
    "DevCA",
    "Identity",
    "IssuedCertificate",
    "Usage",
    "ValidatedCertificate",
    "bound_identities",
    "check_binding",
    "identity_uri",
]
