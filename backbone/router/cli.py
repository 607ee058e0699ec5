"""``backbone router``: run a router replica."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path
from typing import Annotated

import structlog
import typer

from backbone.directory import load_directory
from backbone.errors import BackboneError
from backbone.logs import configure_logging
from backbone.router.names import Names
from backbone.router.pipeline import Pipeline
from backbone.router.service import Router, RouterOptions
from backbone.router.store import open_store
from backbone.settings import Settings

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
            amqp_url=settings.amqp_url.get_secret_value(),
            names=names,
            prefetch=settings.prefetch,
            delivery_limit=settings.delivery_limit,
            max_envelope_bytes=settings.max_envelope_bytes,
            http_port=settings.http_port,
        ),
        directory=directory,
        pipeline=pipeline,
        store=store,
    )
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await router.start()
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
