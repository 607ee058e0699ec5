"""``backbone router``: run a router replica, with tracking beside it."""

from __future__ import annotations

import asyncio
import signal
import ssl
from datetime import timedelta
from pathlib import Path
from typing import Annotated

import aio_pika
import structlog
import typer

from backbone.broker.directory_versions import LiveDirectory
from backbone.broker.failures import broker_failure
from backbone.directory import Directory, load_directory
from backbone.directory.certificates import certificate_problems
from backbone.envelope.chunked import ChunkLimits
from backbone.errors import (
    BackboneError,
    ConfigurationError,
    DirectoryError,
    RevocationUnknownError,
)
from backbone.heap import freeze_start_up
from backbone.logs import configure_logging
from backbone.replica.settings import Settings
from backbone.router.held_delivery import HeldDelivery, deliver_held
from backbone.router.pipeline import Pipeline
from backbone.router.retries import broker_login
from backbone.router.service import Router, RouterOptions, start
from backbone.store import open_store
from backbone.tracking import Tracking
from backbone.wire.names import Names

app = typer.Typer(no_args_is_help=True)
log = structlog.get_logger(__name__)


async def build_router(settings: Settings) -> Router:
    """The replica ``settings`` describe: its store opened, tracking beside it (on a SQL
    store). Raise :class:`BackboneError` when it could not route anything."""
    if settings.directory is None:
        raise ConfigurationError(
            "no directory configured: set VDX_DIRECTORY or `directory:` in the file"
        )
    directory = load_directory(settings.directory)
    problems = certificate_problems(directory)
    if problems:
        raise DirectoryError(
            f"{settings.directory}: {len(problems)} certificate(s) cannot be used, first: "
            f"{problems[0]}; `backbone directory check` lists them all"
        )
    validator = settings.certificate_validator()
    gaps = validator.revocation_gaps()
    if gaps:
        # Every envelope would be refused with revocation_unknown: refuse to start instead.
        raise RevocationUnknownError(
            f"revocation cannot be checked ({'; '.join(gaps)}), so every envelope would be "
            "refused: list a current CRL of every CA under `crls:` (VDX_CRLS)"
        )
    store = await open_store(settings.store_url)
    names = Names(settings.prefix)
    pipeline = Pipeline(
        directory=directory,
        validator=validator,
        store=store,
        names=names,
        policy=settings.routing_policy,
        max_envelope_bytes=settings.max_envelope_bytes,
        rate_limits=settings.rate_limit,
        transition_window=timedelta(days=settings.transition_window_days),
        chunk_limits=ChunkLimits(max_document_bytes=settings.max_document_bytes),
    )
    tracking = Tracking.for_store(store, directory.tiers, settings.tracking_options())
    router = Router(
        RouterOptions(
            amqp_url=settings.connection_url(),  # amqps://: the broker's certificate verified
            connect_timeout=settings.connect_timeout,
            names=names,
            prefetch=settings.prefetch,
            chunk_prefetch=settings.chunk_prefetch,
            delivery_limit=settings.delivery_limit,
            broker_delivery_limit=settings.broker_delivery_limit,
            max_envelope_bytes=settings.max_envelope_bytes,
            quarantine_body_bytes=settings.quarantine_body_bytes,
            http_port=settings.http_port,
            http_host=settings.http_host,
            max_open_chunked_per_sender=settings.max_open_chunked_per_sender,
            max_open_chunked=settings.max_open_chunked,
            chunked_timeout_seconds=settings.chunked_timeout_seconds,
            max_waiting_chunks_per_account=settings.max_waiting_chunks_per_account,
        ),
        directory=directory,
        pipeline=pipeline,
        store=store,
        extensions=[tracking] if tracking is not None else [],
        # Versions the operator applies are saved over the file, so a restart keeps them.
        live=LiveDirectory(settings.directory),
    )
    if tracking is not None:
        # The router's directory, read at each lookup: the version it took up last.
        tracking.inbox_of = lambda code: _inbox_of(names, router.directory, code)
    return router


def _inbox_of(names: Names, directory: Directory, code: str) -> str | None:
    if code not in directory:
        return None
    return names.inbox_queue(directory.serving_system(code).system_id)


async def _run(settings: Settings) -> None:
    router = await build_router(settings)
    freeze_start_up()  # before it connects (backbone/heap.py)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await start(router)
    await stop.wait()
    log.info("router.stopping", reason="signal")
    await router.stop()


@app.command()
def run(
    config: Annotated[
        Path | None,
        typer.Option("--config", "-c", help="YAML settings file (VDX_* environment variables win)"),
    ] = None,
) -> None:
    """Run a router replica until SIGTERM/SIGINT: stop consuming, finish in-flight work, close."""
    configure_logging()
    try:
        settings = Settings.load(config)
        asyncio.run(_run(settings))
    except BackboneError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(1) from error


async def _deliver_held(settings: Settings) -> HeldDelivery:
    if settings.directory is None:
        raise ConfigurationError(
            "no directory configured: set VDX_DIRECTORY or `directory:` in the file"
        )
    directory = load_directory(settings.directory)
    url = settings.connection_url()
    try:
        connection = await aio_pika.connect(url)
    except (*aio_pika.exceptions.CONNECTION_EXCEPTIONS, ssl.SSLError) as error:
        raise broker_failure(error, "the router", url) from None
    async with connection:
        channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
        return await deliver_held(
            channel, directory, Names(settings.prefix), router_account=broker_login(url)
        )


@app.command("deliver-held")
def deliver_held_command(
    config: Annotated[
        Path | None,
        typer.Option("--config", "-c", help="The router's YAML settings file"),
    ] = None,
) -> None:
    """Deliver the copies parked for full inboxes (inbox_full) whose inboxes take them again;
    run once the recipient's inbox drained (docs/operations.md, VdxInboxFull)."""
    configure_logging()
    try:
        report = asyncio.run(_deliver_held(Settings.load(config)))
    except BackboneError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(1) from error
    typer.echo(str(report))
