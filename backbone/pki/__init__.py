"""Certificates: identity binding and certificate validation.

The development CA that issues test certificates is a developer tool:
:mod:`backbone.devtools.ca`.
"""

from backbone.pki.binding import Identity, bound_identities, check_binding, identity_uri
from backbone.pki.validation import CertificateValidator, Usage, ValidatedCertificate

__all__ = [
    "CertificateValidator",
    "Identity",
    "Usage",
    "ValidatedCertificate",
    "bound_identities",
    "check_binding",
    "identity_uri",
]
