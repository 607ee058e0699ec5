"""The development CA and certificate validation: every refusal with its exact error."""

from __future__ import annotations

import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import NameOID

from backbone.devtools.ca import DevCA
from backbone.errors import (
    CertificateBindingError,
    CertificateError,
    CertificateExpiredError,
    CertificateKeyUsageError,
    CertificateRevokedError,
    CertificateUntrustedError,
    PkiError,
    Reason,
    RevocationUnknownError,
)
from backbone.organ import OrganCode, SystemId
from backbone.pki.binding import bound_identities
from backbone.pki.clock import iso_z
from backbone.pki.keys import PrivateKey, generate_private_key
from backbone.pki.validation import CertificateValidator, load_crl_file
from tests.support import DevPki, make_pki

pytestmark = pytest.mark.clock  # scripts/clock-check runs it at fixed instants

H53 = OrganCode.parse("000.00.00.H53")
G22 = OrganCode.parse("000.00.00.G22")


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> DevPki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def foreign(tmp_path_factory: pytest.TempPathFactory) -> DevPki:
    """Another CA with the same name as ``pki``'s: only its key tells them apart."""
    return make_pki(tmp_path_factory.mktemp("foreign"))


def _der(certificate: x509.Certificate) -> bytes:
    return certificate.public_bytes(serialization.Encoding.DER)


# -- the development CA ------------------------------------------------------------------


def test_init_writes_a_ca_certificate_that_may_only_sign_certificates_and_crls(
    pki: DevPki,
) -> None:
    ca = pki.ca.certificate
    constraints = ca.extensions.get_extension_for_class(x509.BasicConstraints)
    usage = ca.extensions.get_extension_for_class(x509.KeyUsage)
    assert (constraints.critical, constraints.value.ca) == (True, True)
    assert usage.critical
    assert (usage.value.key_cert_sign, usage.value.crl_sign) == (True, True)
    assert (usage.value.digital_signature, usage.value.key_encipherment) == (False, False)
    assert stat.S_IMODE((pki.ca.directory / "ca.key.pem").stat().st_mode) == 0o600
    assert load_crl_file(pki.ca.crl_path).is_signature_valid(pki.ca.key.public_key())


def test_init_refuses_a_directory_that_already_holds_a_ca(pki: DevPki) -> None:
    with pytest.raises(PkiError, match="already holds a CA"):
        DevCA.init(pki.ca.directory)


def test_load_names_the_missing_ca(tmp_path: Path) -> None:
    with pytest.raises(PkiError, match="no development CA"):
        DevCA.load(tmp_path)


def test_issue_binds_the_organ_code_in_a_san_uri_with_signing_and_key_wrap_usage(
    pki: DevPki,
) -> None:
    issued = pki.ca.issue("000.00.00.H53", name="UBND Tỉnh Tây Ninh")
    cert = issued.certificate
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.UniformResourceIdentifier) == [
        "urn:qcvn102:organ:000.00.00.H53"
    ]
    assert bound_identities(cert) == (H53,)
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "000.00.00.H53"
    assert cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == (
        "UBND Tỉnh Tây Ninh"
    )
    usage = cert.extensions.get_extension_for_class(x509.KeyUsage)
    assert usage.critical
    assert (usage.value.digital_signature, usage.value.key_encipherment) == (True, True)
    assert not usage.value.key_cert_sign
    assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert stat.S_IMODE(issued.key_path.stat().st_mode) == 0o600
    assert pki.ca.issued("000.00.00.H53").certificate == cert
    entry = pki.ca.entries()[-1]
    assert (entry.identity, entry.kind, entry.serial) == (
        "000.00.00.H53",
        "organ",
        f"{issued.serial:x}",
    )


def test_issue_to_a_hub_binds_a_system_uri(pki: DevPki) -> None:
    hub = pki.agency("vxp.saas.02")
    assert bound_identities(hub.certificate) == (SystemId("vxp.saas.02"),)
    pki.validator().validate(hub.certificate, claimed=SystemId("vxp.saas.02"), usage="sign")


def test_issue_refuses_a_certificate_outliving_the_ca(pki: DevPki) -> None:
    with pytest.raises(PkiError, match="would outlive the CA"):
        pki.ca.issue("000.00.00.H01", days=100_000)


def test_revoke_by_id_lists_the_serial_with_its_reason_in_a_new_signed_crl(pki: DevPki) -> None:
    issued = pki.ca.issue("000.00.00.H02")
    before = load_crl_file(pki.ca.crl_path)
    revoked = pki.ca.revoke("000.00.00.H02", reason=x509.ReasonFlags.key_compromise)
    crl = load_crl_file(pki.ca.crl_path)
    assert [entry.serial for entry in revoked] == [f"{issued.serial:x}"]
    entry = crl.get_revoked_certificate_by_serial_number(issued.serial)
    assert entry is not None
    reason = entry.extensions.get_extension_for_class(x509.CRLReason).value.reason
    assert reason is x509.ReasonFlags.key_compromise
    assert crl.is_signature_valid(pki.ca.key.public_key())
    number = crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
    previous = before.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
    assert number > previous


def test_revoke_by_hex_serial_revokes_only_that_certificate(pki: DevPki) -> None:
    old = pki.ca.issue("000.00.00.H03")
    new = pki.ca.issue("000.00.00.H03")
    pki.ca.revoke(f"0x{old.serial:X}")
    crl = load_crl_file(pki.ca.crl_path)
    assert crl.get_revoked_certificate_by_serial_number(old.serial) is not None
    assert crl.get_revoked_certificate_by_serial_number(new.serial) is None


def test_revoke_refuses_an_unknown_id_or_serial(pki: DevPki) -> None:
    with pytest.raises(PkiError, match="no certificate issued by this CA"):
        pki.ca.revoke("abc123")
    with pytest.raises(PkiError, match="neither an id this CA issued to nor a hexadecimal"):
        pki.ca.revoke("000.00.00.Z99")


# -- validation: acceptance ----------------------------------------------------------------


def test_a_good_certificate_validates_for_both_usages_from_object_pem_or_der(pki: DevPki) -> None:
    cert = pki.agency("000.00.00.G22").certificate
    validator = pki.validator()
    pem = cert.public_bytes(serialization.Encoding.PEM)
    for form in (cert, pem, _der(cert)):
        for usage in ("sign", "encrypt"):
            result = validator.validate(form, claimed=G22, usage=usage)
            assert result.certificate == cert
            assert result.identity == G22
            assert result.chain == (cert, pki.ca.certificate)
            assert result.fingerprint_sha256 == cert.fingerprint(hashes.SHA256()).hex()


def test_from_paths_loads_the_ca_and_crl_files(pki: DevPki) -> None:
    validator = CertificateValidator.from_paths([pki.ca.cert_path], [pki.ca.crl_path])
    validator.validate(pki.agency("000.00.00.G22").certificate, claimed=G22, usage="sign")


# -- validation: every refusal ---------------------------------------------------------------


def test_an_expired_certificate_is_refused_saying_when_it_expired(pki: DevPki) -> None:
    start = datetime.now(UTC) - timedelta(days=10)
    cert = pki.ca.issue("000.00.00.H04", not_before=start, days=1).certificate
    with pytest.raises(CertificateExpiredError) as caught:
        pki.validator().validate(cert, claimed=OrganCode.parse("000.00.00.H04"), usage="sign")
    assert caught.value.reason is Reason.CERT_EXPIRED
    assert caught.value.message == (
        f"certificate for 000.00.00.H04 expired on {iso_z(cert.not_valid_after_utc)}"
    )


def test_a_certificate_not_yet_valid_is_refused_with_its_own_reason(pki: DevPki) -> None:
    start = datetime.now(UTC) + timedelta(days=2)
    cert = pki.ca.issue("000.00.00.H05", not_before=start).certificate
    with pytest.raises(CertificateExpiredError) as caught:
        pki.validator().validate(cert, claimed=OrganCode.parse("000.00.00.H05"), usage="sign")
    assert caught.value.reason is Reason.CERT_NOT_YET_VALID
    assert "is not valid before" in caught.value.message


def test_a_certificate_revoked_in_the_crl_is_refused(pki: DevPki) -> None:
    cert = pki.ca.issue("000.00.00.H06").certificate
    pki.ca.revoke("000.00.00.H06", reason=x509.ReasonFlags.superseded)
    with pytest.raises(CertificateRevokedError) as caught:
        pki.validator().validate(cert, claimed=OrganCode.parse("000.00.00.H06"), usage="sign")
    assert caught.value.reason is Reason.CERT_REVOKED
    assert "(reason superseded)" in caught.value.message


def test_a_certificate_from_a_foreign_ca_with_the_same_name_is_untrusted(
    pki: DevPki, foreign: DevPki
) -> None:
    assert foreign.ca.certificate.subject == pki.ca.certificate.subject
    cert = foreign.agency("000.00.00.G22").certificate
    with pytest.raises(CertificateUntrustedError) as caught:
        pki.validator().validate(cert, claimed=G22, usage="sign")
    assert caught.value.reason is Reason.CERT_UNTRUSTED
    assert "signature does not verify with that CA's key" in caught.value.message


def test_a_certificate_from_an_unknown_ca_is_untrusted(pki: DevPki, tmp_path: Path) -> None:
    other = DevCA.init(tmp_path / "other", name="Some Other CA")
    with pytest.raises(CertificateUntrustedError, match="which is not a configured CA"):
        pki.validator().validate(other.issue(G22).certificate, claimed=G22, usage="sign")


def test_a_certificate_of_one_agency_claimed_for_another_is_wrongly_bound(pki: DevPki) -> None:
    cert = pki.agency("000.00.00.G22").certificate
    with pytest.raises(CertificateBindingError) as caught:
        pki.validator().validate(cert, claimed=OrganCode.parse("000.00.00.H41"), usage="sign")
    assert caught.value.reason is Reason.CERT_WRONG_BINDING
    assert caught.value.message == (
        "certificate presented for 000.00.00.H41 is bound to 000.00.00.G22, not to 000.00.00.H41"
    )


def test_a_hub_certificate_does_not_bind_an_organ_code_of_the_same_text(pki: DevPki) -> None:
    hub = pki.ca.issue(SystemId("000.00.00.H07")).certificate
    with pytest.raises(CertificateBindingError):
        pki.validator().validate(hub, claimed=OrganCode.parse("000.00.00.H07"), usage="sign")


def _leaf(
    code: str, *, key_usage: x509.KeyUsage | None, issuer: tuple[x509.Name, PrivateKey]
) -> x509.Certificate:
    """A certificate the development CA would never issue, signed by ``issuer``'s key."""
    now = datetime.now(UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, code)]))
        .issuer_name(issuer[0])
        .public_key(generate_private_key().public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=1))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.UniformResourceIdentifier(f"urn:qcvn102:organ:{code}")]
            ),
            critical=False,
        )
    )
    if key_usage is not None:
        builder = builder.add_extension(key_usage, critical=True)
    return builder.sign(issuer[1], hashes.SHA256())


def _by(pki: DevPki) -> tuple[x509.Name, PrivateKey]:
    return pki.ca.certificate.subject, pki.ca.key


def _usage(*, sign: bool, encrypt: bool, cert_sign: bool = False) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=sign,
        content_commitment=False,
        key_encipherment=encrypt,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


def test_a_certificate_without_digital_signature_cannot_sign(pki: DevPki) -> None:
    cert = _leaf("000.00.00.H08", key_usage=_usage(sign=False, encrypt=True), issuer=_by(pki))
    validator = pki.validator()
    code = OrganCode.parse("000.00.00.H08")
    validator.validate(cert, claimed=code, usage="encrypt")
    with pytest.raises(CertificateKeyUsageError) as caught:
        validator.validate(cert, claimed=code, usage="sign")
    assert caught.value.reason is Reason.CERT_WRONG_KEY_USAGE
    assert caught.value.message == (
        "certificate for 000.00.00.H08 does not allow digitalSignature, needed to sign "
        "(it allows: keyEncipherment)"
    )


def test_a_certificate_without_key_encipherment_cannot_receive_keys(pki: DevPki) -> None:
    cert = _leaf("000.00.00.H09", key_usage=_usage(sign=True, encrypt=False), issuer=_by(pki))
    with pytest.raises(CertificateKeyUsageError, match="does not allow keyEncipherment"):
        pki.validator().validate(cert, claimed=OrganCode.parse("000.00.00.H09"), usage="encrypt")


def test_a_certificate_without_a_key_usage_extension_is_refused(pki: DevPki) -> None:
    cert = _leaf("000.00.00.H10", key_usage=None, issuer=_by(pki))
    with pytest.raises(CertificateKeyUsageError, match="has no key usage extension"):
        pki.validator().validate(cert, claimed=OrganCode.parse("000.00.00.H10"), usage="sign")


def test_an_agency_cannot_issue_certificates(pki: DevPki) -> None:
    agency = pki.agency("000.00.00.G22")
    forged = _leaf(
        "000.00.00.H11",
        key_usage=_usage(sign=True, encrypt=True),
        issuer=(agency.certificate.subject, agency.key),
    )
    with pytest.raises(CertificateUntrustedError, match="not a configured CA"):
        pki.validator().validate(forged, claimed=OrganCode.parse("000.00.00.H11"), usage="sign")
    with pytest.raises(PkiError, match="is not a CA certificate"):
        CertificateValidator([pki.ca.certificate], intermediates=[agency.certificate])


def test_garbage_bytes_are_a_malformed_certificate(pki: DevPki) -> None:
    with pytest.raises(CertificateError) as caught:
        pki.validator().validate(b"\x30\x03abc", claimed=G22, usage="sign")
    assert caught.value.reason is Reason.CERT_MALFORMED


# -- revocation data -------------------------------------------------------------------------


def test_without_a_crl_from_the_issuer_revocation_is_unknown_and_refused(pki: DevPki) -> None:
    validator = CertificateValidator([pki.ca.certificate])
    with pytest.raises(RevocationUnknownError) as caught:
        validator.validate(pki.agency("000.00.00.G22").certificate, claimed=G22, usage="sign")
    assert caught.value.reason is Reason.REVOCATION_UNKNOWN


def test_an_expired_crl_is_refused_with_its_own_reason(pki: DevPki) -> None:
    cert = pki.agency("000.00.00.G22").certificate
    crl = load_crl_file(pki.ca.crl_path)
    assert crl.next_update_utc is not None
    later = crl.next_update_utc + timedelta(seconds=1)
    with pytest.raises(RevocationUnknownError) as caught:
        pki.validator().validate(cert, claimed=G22, usage="sign", at=later)
    assert caught.value.reason is Reason.CRL_EXPIRED
    assert f"expired on {iso_z(crl.next_update_utc)}" in caught.value.message


def test_a_crl_not_signed_by_a_configured_ca_is_refused_when_loaded(
    pki: DevPki, foreign: DevPki
) -> None:
    with pytest.raises(PkiError, match="not signed by any configured CA"):
        CertificateValidator([pki.ca.certificate], crls=[load_crl_file(foreign.ca.crl_path)])


# -- the verdict cache -------------------------------------------------------------------------


def test_a_cached_verdict_does_not_hide_a_later_revocation(pki: DevPki) -> None:
    cert = pki.ca.issue("000.00.00.H12").certificate
    code = OrganCode.parse("000.00.00.H12")
    validator = pki.validator()
    validator.validate(_der(cert), claimed=code, usage="sign")
    pki.ca.revoke("000.00.00.H12")
    validator.validate(_der(cert), claimed=code, usage="sign")  # the old CRL still says good
    validator.replace_crls([load_crl_file(pki.ca.crl_path)])
    with pytest.raises(CertificateRevokedError):
        validator.validate(_der(cert), claimed=code, usage="sign")


def test_a_cached_verdict_does_not_hide_a_later_expiry(pki: DevPki) -> None:
    cert = pki.ca.issue("000.00.00.H13", days=2).certificate
    code = OrganCode.parse("000.00.00.H13")
    now = [datetime.now(UTC)]
    validator = CertificateValidator(
        [pki.ca.certificate], crls=[load_crl_file(pki.ca.crl_path)], clock=lambda: now[0]
    )
    validator.validate(cert, claimed=code, usage="sign")
    now[0] = cert.not_valid_after_utc + timedelta(seconds=1)
    with pytest.raises(CertificateExpiredError, match="expired on"):
        validator.validate(cert, claimed=code, usage="sign")


def test_the_verdict_cache_is_bounded(pki: DevPki) -> None:
    validator = CertificateValidator(
        [pki.ca.certificate], crls=[load_crl_file(pki.ca.crl_path)], cache_size=2
    )
    for code in ("000.00.00.G22", "000.00.00.H41", "000.00.00.H14"):
        validator.validate(
            pki.agency(code).certificate, claimed=OrganCode.parse(code), usage="sign"
        )
    assert len(validator._cache) == 2


# -- chains with intermediates ----------------------------------------------------------------


def _ca_cert(
    name: str,
    key: PrivateKey,
    *,
    issuer: tuple[x509.Name, PrivateKey] | None,
    path_length: int | None,
) -> x509.Certificate:
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    issuer_name, issuer_key = issuer or (subject, key)
    now = datetime.now(UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=1))
        .not_valid_after(now + timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=path_length), critical=True)
        .add_extension(_usage(sign=False, encrypt=False, cert_sign=True), critical=True)
        .sign(issuer_key, hashes.SHA256())
    )


def _crl(
    issuer: x509.Certificate, key: PrivateKey, revoked: tuple[int, ...] = ()
) -> x509.CertificateRevocationList:
    now = datetime.now(UTC)
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(issuer.subject)
        .last_update(now)
        .next_update(now + timedelta(days=1))
    )
    for serial in revoked:
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(now).build()
        )
    return builder.sign(key, hashes.SHA256())


class _Hierarchy:
    """root (pathLen given) → intermediate → leaf for 000.00.00.H15."""

    def __init__(self, root_path_length: int | None) -> None:
        self.root_key, self.mid_key = generate_private_key(), generate_private_key()
        self.root = _ca_cert("Root", self.root_key, issuer=None, path_length=root_path_length)
        self.mid = _ca_cert(
            "Intermediate", self.mid_key, issuer=(self.root.subject, self.root_key), path_length=0
        )
        self.leaf = _leaf(
            "000.00.00.H15",
            key_usage=_usage(sign=True, encrypt=True),
            issuer=(self.mid.subject, self.mid_key),
        )

    def validator(
        self, *, mid_revoked: bool = False, max_chain_length: int = 4
    ) -> CertificateValidator:
        revoked = (self.mid.serial_number,) if mid_revoked else ()
        return CertificateValidator(
            [self.root],
            intermediates=[self.mid],
            crls=[_crl(self.root, self.root_key, revoked), _crl(self.mid, self.mid_key)],
            max_chain_length=max_chain_length,
        )


H15 = OrganCode.parse("000.00.00.H15")


def test_a_chain_through_an_intermediate_validates() -> None:
    hierarchy = _Hierarchy(root_path_length=None)
    result = hierarchy.validator().validate(hierarchy.leaf, claimed=H15, usage="sign")
    assert result.chain == (hierarchy.leaf, hierarchy.mid, hierarchy.root)


def test_a_revoked_intermediate_revokes_the_chain() -> None:
    hierarchy = _Hierarchy(root_path_length=None)
    with pytest.raises(CertificateRevokedError, match="CA certificate 'CN=Intermediate'"):
        hierarchy.validator(mid_revoked=True).validate(hierarchy.leaf, claimed=H15, usage="sign")


def test_an_intermediate_below_a_root_with_path_length_zero_is_untrusted() -> None:
    hierarchy = _Hierarchy(root_path_length=0)
    with pytest.raises(CertificateUntrustedError, match="allows 0 intermediate CA"):
        hierarchy.validator().validate(hierarchy.leaf, claimed=H15, usage="sign")


def test_a_chain_longer_than_the_bound_is_untrusted() -> None:
    hierarchy = _Hierarchy(root_path_length=None)
    with pytest.raises(CertificateUntrustedError, match="within 2 certificates"):
        hierarchy.validator(max_chain_length=2).validate(hierarchy.leaf, claimed=H15, usage="sign")
