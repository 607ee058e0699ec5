"""The directory's certificates, checked as the adapters will use them: every one readable,
a certificate, and bound to its entry's organ code or hub id. Senders encrypt to these
certificates, so one that cannot be read makes that agency unreachable."""

from __future__ import annotations

from cryptography import x509

from backbone.directory.index import Directory
from backbone.directory.model import Agency, Hub
from backbone.errors import CertificateBindingError, DirectoryError
from backbone.pki.binding import check_binding

__all__ = ["certificate_problems"]


def certificate_problems(directory: Directory) -> list[str]:
    """One line per entry whose certificate cannot be read, parsed or is bound to another
    code; entries without a certificate are not problems here."""
    problems: list[str] = []
    entries: list[Agency | Hub] = [*directory.hubs, *directory]
    for entry in entries:
        try:
            pem = directory.certificate_pem(entry)
        except DirectoryError as error:
            problems.append(error.message)
            continue
        if pem is None:
            continue
        try:
            certificate = x509.load_pem_x509_certificate(pem)
        except ValueError:
            problems.append(f"{entry.system_id}: its certificate is not a PEM X.509 certificate")
            continue
        claimed = entry.organ_code if isinstance(entry, Agency) else entry.id
        try:
            check_binding(certificate, claimed)
        except CertificateBindingError as error:
            problems.append(f"{entry.system_id}: {error.message}")
    return problems
