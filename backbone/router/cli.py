"""``backbone router``: run a router replica."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import ssl
from pathlib import Path
from typing import Annotated

import aio_pika
import structlog
import typer

from backbone.broker.tls import connection_problem
from backbone.directory import load_directory
from backbone.errors import BackboneError, BrokerUnavailableError
from backbone.logs import configure_logging
from backbone.router.pipeline import Pipeline
from backbone.router.service import Router, RouterOptions
from backbone.router.settings import Settings
from backbone.store import open_store
from backbone.tracking import TrackingOptions
from backbone.wire.names import Names

app = typer.Typer(no_args_is_help=True)
log = structlog.get_logger(__name__)


async def _run(settings: Settings) -> None:
    if settings.directory is None:
        raise BackboneError(
            "no directory configured: set VDX_DIRECTORY or `directory:` in the file"
        )
    directory = load_directory(settings.directory)
    store = await open_store(settings.store_url)
    names = Names(settings.prefix)
    pipeline = Pipeline(
        directory=directory,
        validator=settings.certificate_validator(),
        store=store,
        names=names,
        policy=settings.routing_policy,
        max_envelope_bytes=settings.max_envelope_bytes,
    )
    router = Router(
        RouterOptions(
            amqp_url=settings.connection_url(),  # amqps://: the broker's certificate verified
            names=names,
            prefetch=settings.prefetch,
            delivery_limit=settings.delivery_limit,
            max_envelope_bytes=settings.max_envelope_bytes,
            http_port=settings.http_port,
            tracking=TrackingOptions(
                tokens=settings.tracking_tokens,
                overdue_interval=settings.overdue_check_seconds,
                zone=settings.tracking_time_zone,
            ),
        ),
        directory=directory,
        pipeline=pipeline,
        store=store,
    )
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await start(router)
    await stop.wait()
    log.info("router.stopping", reason="signal")
    await router.stop()


async def start(router: Router) -> None:
    """Start ``router``; a broker that cannot be reached (refused, or whose TLS certificate
    does not verify) is a :class:`BrokerUnavailableError` saying which."""
    try:
        await router.start()
    except (*aio_pika.exceptions.CONNECTION_EXCEPTIONS, ssl.SSLError) as error:
        with contextlib.suppress(Exception):
            await router.stop(timeout=1.0)
        raise BrokerUnavailableError(
            f"the router cannot reach the broker: {connection_problem(error)}"
        ) from None


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
