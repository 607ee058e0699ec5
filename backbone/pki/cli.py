"""``backbone pki verify``: check a certificate the way the router and the adapters do.

The ``backbone pki`` group (with the development CA's commands) is assembled in
:mod:`backbone.devtools.ca_cli`. The CA directory is ``--dir``, else ``$VDX_PKI_DIR``, else
``./pki``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from backbone.errors import BackboneError, CertificateError
from backbone.organ import parse_identifier
from backbone.pki.clock import iso_z
from backbone.pki.validation import CertificateValidator, Usage, load_certificate_file

__all__ = ["DEFAULT_DIR", "CaDir", "fail", "verify"]

CaDir = Annotated[
    Path,
    typer.Option(
        "--dir", envvar="VDX_PKI_DIR", help="CA directory (default $VDX_PKI_DIR or ./pki)."
    ),
]
DEFAULT_DIR = Path("pki")


def fail(error: BackboneError, code: int = 1) -> typer.Exit:
    typer.echo(f"error: {error}", err=True)
    return typer.Exit(code)


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
    directory: CaDir = DEFAULT_DIR,
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
        raise fail(error, code=2) from None
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
