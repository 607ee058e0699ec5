"""``backbone pki``: run the development CA and check certificates.

The CA directory is ``--dir``, else ``$VDX_PKI_DIR``, else ``./pki``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from cryptography import x509
from cryptography.hazmat.primitives import hashes

from backbone.errors import BackboneError, CertificateError
from backbone.organ import parse_identifier
from backbone.pki.binding import identity_uri
from backbone.pki.ca import DEFAULT_CA_DAYS, DEFAULT_CRL_DAYS, DEFAULT_DAYS, DevCA
from backbone.pki.clock import iso_z
from backbone.pki.validation import CertificateValidator, Usage, load_certificate_file

__all__ = ["app"]

app = typer.Typer(no_args_is_help=True, pretty_exceptions_enable=False)

CaDir = Annotated[
    Path,
    typer.Option(
        "--dir", envvar="VDX_PKI_DIR", help="CA directory (default $VDX_PKI_DIR or ./pki)."
    ),
]
_DEFAULT_DIR = Path("pki")
_REASONS = ", ".join(flag.name for flag in x509.ReasonFlags)


def _fail(error: BackboneError, code: int = 1) -> typer.Exit:
    typer.echo(f"error: {error}", err=True)
    return typer.Exit(code)


@app.command()
def init(
    directory: CaDir = _DEFAULT_DIR,
    name: Annotated[str, typer.Option(help="The CA's common name.")] = "VDX Development CA",
    days: Annotated[int, typer.Option(help="Validity of the CA certificate.")] = DEFAULT_CA_DAYS,
) -> None:
    """Create a development CA: key, self-signed certificate, index and empty CRL."""
    try:
        ca = DevCA.init(directory, name=name, days=days)
    except BackboneError as error:
        raise _fail(error) from None
    typer.echo(f"CA certificate: {ca.cert_path}")
    typer.echo(f"CRL:            {ca.crl_path}")
    typer.echo(f"SHA-256:        {ca.certificate.fingerprint(hashes.SHA256()).hex()}")


@app.command()
def issue(
    identity: Annotated[str, typer.Argument(help="Organ code (000.00.32.H53) or hub id.")],
    name: Annotated[str | None, typer.Option(help="Agency name (subject O).")] = None,
    days: Annotated[int, typer.Option(help="Validity in days.")] = DEFAULT_DAYS,
    directory: CaDir = _DEFAULT_DIR,
) -> None:
    """Issue a key and certificate bound to an organ code or hub id."""
    try:
        issued = DevCA.load(directory).issue(identity, name=name, days=days)
    except BackboneError as error:
        raise _fail(error) from None
    typer.echo(f"bound to:    {identity_uri(issued.identity)}")
    typer.echo(f"key:         {issued.key_path}")
    typer.echo(f"certificate: {issued.cert_path}")
    typer.echo(f"serial:      {issued.serial:x}")
    typer.echo(f"valid until: {iso_z(issued.certificate.not_valid_after_utc)}")


@app.command()
def revoke(
    id_or_serial: Annotated[
        str, typer.Argument(help="An id (revokes all its certificates) or a hex serial.")
    ],
    reason: Annotated[str, typer.Option(help=f"One of: {_REASONS}.")] = "unspecified",
    directory: CaDir = _DEFAULT_DIR,
) -> None:
    """Revoke certificates and rewrite the CRL."""
    try:
        flag = x509.ReasonFlags[reason.replace("-", "_")]
    except KeyError:
        raise typer.BadParameter(f"unknown reason {reason!r}; use one of: {_REASONS}") from None
    try:
        revoked = DevCA.load(directory).revoke(id_or_serial, reason=flag)
    except BackboneError as error:
        raise _fail(error) from None
    for entry in revoked:
        typer.echo(f"revoked {entry.serial} ({entry.identity}, {flag.name})")


@app.command()
def crl(
    directory: CaDir = _DEFAULT_DIR,
    days: Annotated[int, typer.Option(help="Days until the CRL's nextUpdate.")] = DEFAULT_CRL_DAYS,
) -> None:
    """Sign a fresh CRL (run it before the current one's nextUpdate passes)."""
    try:
        ca = DevCA.load(directory)
        fresh = ca.crl(days=days)
    except BackboneError as error:
        raise _fail(error) from None
    assert fresh.next_update_utc is not None  # the CA always sets it
    typer.echo(f"{ca.crl_path}: {len(fresh)} revoked, next update {iso_z(fresh.next_update_utc)}")


@app.command()
def verify(
    certificate: Annotated[Path, typer.Argument(help="Certificate file (PEM or DER).")],
    claimed: Annotated[str, typer.Option("--as", help="The organ code or hub id it must act for.")],
    ca: Annotated[
        list[Path] | None, typer.Option("--ca", help="Trust anchor file (default: the CA dir's).")
    ] = None,
    crls: Annotated[
        list[Path] | None, typer.Option("--crl", help="CRL file (default: the CA dir's).")
    ] = None,
    usage: Annotated[str, typer.Option(help="sign or encrypt.")] = "sign",
    directory: CaDir = _DEFAULT_DIR,
) -> None:
    """Validate a certificate for an identity; print the verdict as JSON, exit 1 if refused."""
    if usage not in ("sign", "encrypt"):
        raise typer.BadParameter(f"usage must be sign or encrypt, not {usage!r}")
    checked_usage: Usage = "sign" if usage == "sign" else "encrypt"
    try:
        identity = parse_identifier(claimed)
        validator = CertificateValidator.from_paths(
            ca or [directory / "ca.cert.pem"], crls or [directory / "crl.pem"]
        )
        leaf = load_certificate_file(certificate)[0]
    except BackboneError as error:
        raise _fail(error, code=2) from None
    try:
        result = validator.validate(leaf, claimed=identity, usage=checked_usage)
    except CertificateError as error:
        typer.echo(
            json.dumps({"valid": False, "reason": error.reason.value, "error": error.message})
        )
        raise typer.Exit(1) from None
    verdict = {
        "valid": True,
        "identity": str(result.identity),
        "usage": result.usage,
        "subject": result.certificate.subject.rfc4514_string(),
        "serial": f"{result.certificate.serial_number:x}",
        "sha256": result.fingerprint_sha256,
        "not_after": iso_z(result.certificate.not_valid_after_utc),
        "chain": [cert.subject.rfc4514_string() for cert in result.chain],
    }
    typer.echo(json.dumps(verdict, ensure_ascii=False))
