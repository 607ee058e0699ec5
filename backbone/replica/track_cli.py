"""``backbone track``: a document's timeline per recipient from the router's store, and
tokens for the tracking API.

``backbone track DOCUMENT_ID`` is ``backbone track show DOCUMENT_ID``."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated, Any

import typer
from sqlalchemy import make_url
from typer.core import TyperGroup

from backbone.directory import load_directory
from backbone.errors import BackboneError, ConfigurationError
from backbone.replica.settings import Settings
from backbone.store import SqlStore
from backbone.tiers import DEFAULT_PROFILE, TierModel
from backbone.tracking.auth import OPERATOR, mint_token, parse_holder
from backbone.tracking.model import DocumentTrack, Principal
from backbone.tracking.query import Tracker

__all__ = ["app", "render"]


class _DocumentOrCommand(TyperGroup):
    """A group whose first argument, when it names no command, is a document for ``show``."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:  # a click Context
        if args and args[0] not in self.commands and args[0] not in ("--help", "-h"):
            args = ["show", *args]
        return super().parse_args(ctx, args)


app = typer.Typer(cls=_DocumentOrCommand, no_args_is_help=True, pretty_exceptions_enable=False)


def render(track: DocumentTrack) -> str:
    """The timeline as text: the document, then each recipient and its steps."""
    lines = [track.document_id, f"  from {track.sender}"]
    for recipient in track.recipients:
        journey = recipient.journey
        due = f", due {journey.due_date}" if journey.due_date else ""
        late = ", OVERDUE" if journey.overdue else ""
        lines.append(f"  {journey.recipient} ({journey.tier}): {journey.state}{due}{late}")
        for step in recipient.steps:
            code = f" {step.status_code}" if step.status_code else ""
            by = f"  by {step.by}" if step.by else ""
            note = f"  “{step.note}”" if step.note else ""
            lines.append(f"    {step.at:%Y-%m-%d %H:%M:%S}Z  {step.kind}{code}{by}{note}")
    if track.refused:
        lines.append("  refused by the router (never routed):")
    for refused in track.refused:
        what = f"status {refused.status_code}" if refused.status_code else refused.kind
        lines.append(
            f"    {refused.at:%Y-%m-%d %H:%M:%S}Z  {what} by {refused.by}  "
            f"[{refused.reason}] {refused.message}"
        )
    return "\n".join(lines)


async def _track(settings: Settings, store_url: str, document_id: str) -> DocumentTrack | None:
    tiers = (
        load_directory(settings.directory).tiers
        if settings.directory is not None
        else TierModel.named(DEFAULT_PROFILE)
    )
    if not store_url.startswith(("sqlite", "postgresql")):
        raise ConfigurationError(
            f"tracking reads a SQL store; {store_url.split(':', 1)[0]}: is not"
        )
    _check_sqlite_file(store_url)
    store = await SqlStore.open(store_url)
    try:
        tracker = Tracker(store.engine, tiers, zone=settings.tracking_time_zone)
        return await tracker.document(Principal(operator=True), document_id)
    finally:
        await store.close()


def _check_sqlite_file(store_url: str) -> None:
    # Opening a SQLite store creates it: reading one that is not there would make an empty
    # database (and its folder) and answer "no document", hiding the real mistake.
    url = make_url(store_url)
    if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
        path = Path(url.database or "")
        if not path.is_file():
            raise ConfigurationError(
                f"no router store at {path.resolve()}: pass the router's settings with "
                "--config, or the store with --store-url"
            )


@app.command("show")
def show(
    document_id: Annotated[str, typer.Argument(help="the edXML DocumentId")],
    config: Annotated[
        Path | None, typer.Option("--config", "-c", help="the router's YAML settings file")
    ] = None,
    store_url: Annotated[
        str | None, typer.Option("--store-url", help="the store (default: the settings')")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the timeline as JSON")] = False,
) -> None:
    """Print a document's timeline per recipient (exit 1 when the store has no such document)."""
    try:
        settings = Settings.load(config)
        track = asyncio.run(_track(settings, store_url or settings.store_url, document_id))
    except BackboneError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from error
    if track is None:
        typer.echo(f"no document {document_id} in the store", err=True)
        raise typer.Exit(1)
    typer.echo(track.model_dump_json(indent=2) if as_json else render(track))


@app.command("token")
def token(
    agency: Annotated[
        list[str] | None,
        typer.Option(
            "--agency",
            help="organ code the token acts for; repeat it for a hub's staff (several agencies)",
        ),
    ] = None,
    operator: Annotated[bool, typer.Option("--operator", help="an operator's token")] = False,
) -> None:
    """Mint a tracking API token: print it once, and the line for the router's settings
    (which keep only its SHA-256)."""
    if operator == bool(agency):
        typer.echo("error: give --agency CODE (one or more) or --operator", err=True)
        raise typer.Exit(2)
    holder = OPERATOR if operator else ",".join(agency or [])
    try:
        parse_holder(holder)
        Settings(tracking_tokens={"0" * 64: holder})  # the same checks as the settings file
    except ValueError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from error
    secret, digest = mint_token()
    typer.echo(f"token (give it to the holder; it is not stored): {secret}")
    typer.echo("add to the router's settings file, under tracking_tokens:")
    typer.echo(f'  "{digest}": "{holder}"')
