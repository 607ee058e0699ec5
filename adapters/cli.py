"""``backbone adapter``: run the drop-folder adapter, or send one file through the API."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
from datetime import timedelta
from pathlib import Path
from typing import Annotated

import structlog
import typer

from adapters.client import AdapterClient
from adapters.config import AdapterConfig
from adapters.dropfolder import DropFolder, DropFolderOptions
from adapters.dropfolder.records import receipt_record
from adapters.gateway.service import Gateway
from adapters.gateway.state import GatewayState
from backbone.errors import (
    BackboneError,
    BrokerLoginRefusedError,
    BrokerUnavailableError,
    ConfigurationError,
)
from backbone.heap import freeze_start_up
from backbone.logs import configure_logging
from backbone.observability.http import HttpServer, make_app

__all__ = ["app"]

app = typer.Typer(no_args_is_help=True)
log = structlog.get_logger(__name__)

ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="YAML adapter config (VDX_* environment variables win)"),
]


def _folders(config: AdapterConfig) -> dict[str, Path]:
    missing = [agency.organ_code for agency in config.agencies if agency.folder is None]
    if missing:
        raise ConfigurationError(
            f"no drop folder configured for {', '.join(missing)}: set `folder:` for every agency"
        )
    return {agency.organ_code: agency.folder for agency in config.agencies if agency.folder}


async def _start_when_broker_answers(client: AdapterClient, stop: asyncio.Event) -> bool:
    """Start the client, waiting (with backoff) while the broker is away. False if stopped
    first. Outbox files meanwhile simply wait in outbox/: nothing is claimed offline."""
    delay = 0.5
    while not stop.is_set():
        try:
            await client.start()
        except BrokerLoginRefusedError:
            raise  # the same password will be refused again: say so and stop
        except BrokerUnavailableError as error:
            log.warning(
                "adapter.waiting_for_broker",
                system=client.system,
                retry_in=delay,
                problem=error.message,
                outcome="retry",
            )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), delay)
            delay = min(delay * 2, 30.0)
        else:
            return True
    return False


def _faces(config: AdapterConfig) -> dict[str, Path] | None:
    """The drop folders to serve, or None for the gateway (``gateway_port`` set): an
    agency's items are handed out through one face, never two consuming the same inbox.
    Checked before anything is loaded."""
    if config.gateway_port is None:
        return _folders(config)
    with_folders = [agency.organ_code for agency in config.agencies if agency.folder]
    if with_folders:
        raise ConfigurationError(
            f"gateway_port is set and {', '.join(with_folders)} also has a drop folder: an "
            "agency is served through the gateway or a drop folder, not both; remove "
            "`folder:` or gateway_port"
        )
    return None


async def _run(config: AdapterConfig, options: DropFolderOptions) -> None:
    folders = _faces(config)
    # Both faces send 01 themselves: the drop folder after its atomic write, the gateway
    # once the software says `updateStatus done`.
    client = AdapterClient(config, auto_arrival=False)
    service: DropFolder | Gateway = (
        Gateway(client) if folders is None else DropFolder(client, folders, options)
    )
    freeze_start_up()  # before it connects (backbone/heap.py)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()

    def on_signal() -> None:
        log.info("adapter.stopping", system=client.system, reason="signal")
        stop.set()
        service.stop()

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, on_signal)
    http = _http_server(config, client)
    if http is not None:
        await http.start()
    try:
        if not await _start_when_broker_answers(client, stop):
            return
        try:
            log.info("adapter.serving", system=client.system, face=type(service).__name__)
            await service.run()
        finally:
            await client.close()
    finally:
        if http is not None:
            await http.stop()


def _http_server(config: AdapterConfig, client: AdapterClient) -> HttpServer | None:
    if config.http_port is None:
        return None
    warn_within = timedelta(days=config.certificate_warning_days)

    async def certificates() -> str | None:
        return await client.certificate_problem(warn_within=warn_within)

    checks = {"broker": client.broker_problem, "certificates": certificates}
    app = make_app(checks, title=f"vdx adapter {client.system}")
    return HttpServer(app, host=config.http_host, port=config.http_port)


@app.command()
def run(
    config: ConfigOption = None,
    poll_interval: Annotated[
        float, typer.Option(help="Seconds between outbox scans", min=0.01)
    ] = 0.5,
    concurrency: Annotated[
        int, typer.Option(help="Outbox files sealed and published at once", min=1)
    ] = 8,
    settle_seconds: Annotated[
        float,
        typer.Option(
            help="An outbox file is taken once unchanged this long (0: at once; for software "
            "that writes x.edxml.tmp and renames it)",
            min=0,
        ),
    ] = 1.0,
) -> None:
    """Serve each agency's drop folder until SIGTERM/SIGINT: then take no new outbox file,
    finish those in flight (or leave them resumable), and close."""
    configure_logging()
    try:
        settings = AdapterConfig.load(config)
        options = DropFolderOptions(
            poll_interval=poll_interval, concurrency=concurrency, settle_seconds=settle_seconds
        )
        asyncio.run(_run(settings, options))
    except BackboneError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(1) from error


async def _send(config: AdapterConfig, file: Path) -> dict[str, object]:
    async with AdapterClient(config) as client:
        receipt = await client.send_file(file)  # larger than one chunk: in chunks, from disk
    return receipt_record(receipt, file="")


@app.command()
def send(
    file: Annotated[Path, typer.Argument(help="The edXML file to send", exists=True)],
    config: ConfigOption = None,
) -> None:
    """Seal and publish one edXML file now; print the receipt as JSON."""
    configure_logging()
    try:
        settings = AdapterConfig.load(config)
        record = asyncio.run(_send(settings, file))
    except BackboneError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(1) from error
    record["file"] = str(file)
    typer.echo(json.dumps(record, ensure_ascii=False, indent=2))


@app.command()
def proposals(config: ConfigOption = None) -> None:
    """Print, as JSON, the agencies a hub's software proposed through the gateway
    (``registerAgency``/``deleteAgency``), for the operator to decide on."""
    configure_logging()
    try:
        settings = AdapterConfig.load(config)
        if settings.gateway_state is None:
            raise ConfigurationError("gateway_state is not set: this adapter runs no gateway")
        state = GatewayState(settings.gateway_state)
        try:
            found = state.proposals()
        finally:
            state.close()
    except BackboneError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(1) from error
    typer.echo(json.dumps(found, ensure_ascii=False, indent=2))
