"""A throwaway development PKI for tests: one CA in a temporary directory, agency keys on demand.

Use it from any test module::

    import pytest
    from testkit.pki import DevPki, make_pki

    @pytest.fixture(scope="session")
    def pki(tmp_path_factory: pytest.TempPathFactory) -> DevPki:
        return make_pki(tmp_path_factory.mktemp("pki"))

    def test_something(pki: DevPki) -> None:
        sender = pki.agency("000.00.00.G22")     # key + certificate, issued once per code
        receiver = pki.agency("000.00.00.H41")
        validator = pki.validator()              # trusts the CA and knows its current CRL
        body = seal(b"<edXML/>", SealParties(
                    kind="document", sender="000.00.00.G22",
                    sender_key=sender.key, sender_cert=sender.certificate,
                    recipients={"000.00.00.H41": receiver.certificate},
                    document_id="000.00.00.G22,2024/01/01,1/VPCP", business_type=0))

Keys are RSA-2048, so issuing takes tens of milliseconds: share one session-scoped ``DevPki``.
Tests that revoke a certificate, or issue one with an odd validity through ``pki.ca.issue``,
should use an organ code of their own so other tests keep a good certificate; call
``pki.validator()`` after revoking, because a validator only knows the CRLs it was given.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from backbone.devtools.ca import DevCA, IssuedCertificate
from backbone.envelope import Kind, SealParties
from backbone.organ import parse_identifier
from backbone.pki.validation import CertificateValidator, load_crl_file

__all__ = ["SAMPLE_ORGANS", "DevPki", "make_pki"]

# Organ codes that appear in the interop edXML samples, with the names they carry there.
SAMPLE_ORGANS = {
    "000.00.00.G22": "Văn phòng Chính phủ",
    "000.00.00.H41": "UBND Tỉnh Nghệ An",
    "000.00.00.H14": "UBND Tỉnh Cao Bằng",
    "000.00.00.G17": "Sở Thông tin truyền thông Hải Phòng",
}


@dataclass
class DevPki:
    """A development CA plus the agency certificates issued so far."""

    ca: DevCA
    _issued: dict[str, IssuedCertificate] = field(default_factory=dict)

    def agency(self, identity: str, *, name: str | None = None) -> IssuedCertificate:
        """The key and certificate of an organ code (or hub id), issued on first use."""
        key = str(parse_identifier(identity))
        if key not in self._issued:
            self._issued[key] = self.ca.issue(key, name=name or SAMPLE_ORGANS.get(key))
        return self._issued[key]

    def parties(
        self, kind: Kind, sender: str, recipients: Iterable[str], **fields: Any
    ) -> SealParties:
        """Who seals to whom, from this PKI: ``sender``'s key and certificate, each
        recipient's certificate (issued on first use); ``fields``: the rest of
        :class:`~backbone.envelope.SealParties` (``document_id``, ``business_type``…)."""
        issued = self.agency(sender)
        return SealParties(
            kind=kind,
            sender=sender,
            sender_key=issued.key,
            sender_cert=issued.certificate,
            recipients={code: self.agency(code).certificate for code in recipients},
            **fields,
        )

    def validator(self) -> CertificateValidator:
        """A fresh validator trusting this CA, with the CA's CRL as it is now."""
        return CertificateValidator([self.ca.certificate], crls=[load_crl_file(self.ca.crl_path)])


def make_pki(directory: Path) -> DevPki:
    """Create a CA in ``directory`` (which must not already hold one)."""
    return DevPki(DevCA.init(directory))
