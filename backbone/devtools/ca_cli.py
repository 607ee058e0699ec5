"""``backbone pki``: run the development CA (``init``, ``issue``, ``revoke``, ``crl``) and check
certificates (``verify``, from :mod:`backbone.pki.cli`).

The CA directory is ``--dir``, else ``$VDX_PKI_DIR``, else ``./pki``.
"""

from __future__ import annotations

from typing import Annotated

import typer
from cryptography import x509
from cryptography.hazmat.primitives import hashes

from backbone.devtools.ca import DEFAULT_CA_DAYS, DEFAULT_CRL_DAYS, DEFAULT_DAYS, DevCA
from backbone.errors import BackboneError
from backbone.pki.binding import identity_uri
from backbone.pki.cli import DEFAULT_DIR, CaDir, fail, verify
from backbone.pki.clock import iso_z

__all__ = ["app"]

app = typer.Typer(no_args_is_help=True, pretty_exceptions_enable=False)

_REASONS = ", ".join(flag.name for flag in x509.ReasonFlags)


@app.command()
def init(
    directory: CaDir = DEFAULT_DIR,
    name: Annotated[str, typer.Option(help="The CA's common name.")] = "VDX Development CA",
    days: Annotated[int, typer.Option(help="Validity of the CA certificate.")] = DEFAULT_CA_DAYS,
) -> None:
    """Create a development CA: key, self-signed certificate, index and empty CRL."""
    try:
        ca = DevCA.init(directory, name=name, days=days)
    except BackboneError as error:
        raise fail(error) from None
    typer.echo(f"CA certificate: {ca.cert_path}")
    typer.echo(f"CRL:            {ca.crl_path}")
    typer.echo(f"SHA-256:        {ca.certificate.fingerprint(hashes.SHA256()).hex()}")


@app.command()
def issue(
    identity: Annotated[str, typer.Argument(help="Organ code (000.00.32.H53) or hub id.")],
    name: Annotated[str | None, typer.Option(help="Agency name (subject O).")] = None,
    days: Annotated[int, typer.Option(help="Validity in days.")] = DEFAULT_DAYS,
    directory: CaDir = DEFAULT_DIR,
) -> None:
    """Issue a key and certificate bound to an organ code or hub id."""
    try:
        issued = DevCA.load(directory).issue(identity, name=name, days=days)
    except BackboneError as error:
        raise fail(error) from None
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
    directory: CaDir = DEFAULT_DIR,
) -> None:
    """Revoke certificates and rewrite the CRL."""
    try:
        flag = x509.ReasonFlags[reason.replace("-", "_")]
    except KeyError:
        raise typer.BadParameter(f"unknown reason {reason!r}; use one of: {_REASONS}") from None
    try:
        revoked = DevCA.load(directory).revoke(id_or_serial, reason=flag)
    except BackboneError as error:
        raise fail(error) from None
    for entry in revoked:
        typer.echo(f"revoked {entry.serial} ({entry.identity}, {flag.name})")


@app.command()
def crl(
    directory: CaDir = DEFAULT_DIR,
    days: Annotated[int, typer.Option(help="Days until the CRL's nextUpdate.")] = DEFAULT_CRL_DAYS,
) -> None:
    """Sign a fresh CRL (run it before the current one's nextUpdate passes)."""
    try:
        ca = DevCA.load(directory)
        fresh = ca.crl(days=days)
    except BackboneError as error:
        raise fail(error) from None
    assert fresh.next_update_utc is not None  # the CA always sets it
    typer.echo(f"{ca.crl_path}: {len(fresh)} revoked, next update {iso_z(fresh.next_update_utc)}")


# Checking a certificate is production code; the group keeps it last, as it always was.
app.command()(verify)
