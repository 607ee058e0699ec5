"""``backbone directory apply``: check a new directory version against the running one, show
what changes, and publish it to every router, adapter and gateway (docs/directory.md)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer

from backbone.broker.directory_publish import publish_version
from backbone.directory import format_of, load_directory, parse_directory
from backbone.directory.cli import echo_changes, exit_on_problems
from backbone.directory.succession import succession
from backbone.errors import BackboneError, DirectoryError
from backbone.wire.names import Names

__all__ = ["apply_command"]


def apply_command(
    new: Annotated[Path, typer.Argument(help="The version to apply (.json, .yaml or .yml).")],
    running: Annotated[
        Path,
        typer.Option(
            help="The running version: the routers' `directory:` file, which they keep current"
        ),
    ],
    amqp_url: Annotated[
        str | None,
        typer.Option(
            envvar="VDX_OPERATOR_AMQP_URL",
            help="Broker URL with the operator's account (the only one that may publish "
            "directory versions)",
        ),
    ] = None,
    prefix: Annotated[str, typer.Option(help="The deployment's broker name prefix.")] = "vdx",
    check_only: Annotated[
        bool, typer.Option("--check", help="Check and show the changes; publish nothing.")
    ] = False,
) -> None:
    """Check NEW and show what changes against the running version (as `diff` does); refuse
    it when it rewrites history, does not raise the revision or changes the tier model;
    otherwise publish it on the broker, where every router, adapter and gateway takes it up
    live (and any started later, at start)."""
    try:
        before = load_directory(running)
        data = _read(new)  # once: what is checked is what is published
        after = parse_directory(data, format=format_of(new), source=str(new), base_dir=new.parent)
        result = succession(before, after)
    except BackboneError as error:
        typer.echo(f"error: {error.message}", err=True)
        raise typer.Exit(1) from error
    echo_changes(
        result.diff,
        f"{running} (revision {before.version.revision}) → {new} (revision "
        f"{after.version.revision})",
    )
    exit_on_problems(result.problems, new=new, old=running)
    if check_only:
        typer.echo(f"version {after.version.id} may be applied; nothing published (--check)")
        return
    if amqp_url is None:
        typer.echo(
            "error: no broker URL: give --amqp-url or set VDX_OPERATOR_AMQP_URL to the "
            "operator's account",
            err=True,
        )
        raise typer.Exit(1)
    try:
        asyncio.run(
            publish_version(amqp_url, Names(prefix), data, format_of(new), after.version.id)
        )
    except BackboneError as error:
        typer.echo(f"error: {error.message}", err=True)
        raise typer.Exit(1) from error
    typer.echo(
        f"published version {after.version.id} on {Names(prefix).directory_exchange}; every "
        "router, adapter and gateway checks it again and takes it up, now or at its next "
        "start (vdx_directory_revision)"
    )


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as error:
        raise DirectoryError(f"{path}: cannot be read: {error.strerror}") from None
