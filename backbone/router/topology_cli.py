"""``backbone topology``: declare the broker topology of a directory, or show it without a
broker (as text, or as the Mermaid flowchart docs/topology.md carries)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit

import aio_pika
import aiormq.exceptions
import typer

from backbone.devtools.discovery import discover_broker
from backbone.directory import Directory, load_directory
from backbone.envelope import DEFAULT_MAX_ENVELOPE_SIZE
from backbone.errors import BrokerUnavailableError, DirectoryError, OrganCodeError
from backbone.router.topology import (
    DEFAULT_DELIVERY_LIMIT,
    TopologyPlan,
    TopologyReport,
    apply_topology,
    plan_topology,
)
from backbone.router.topology_options import BrokerDeliveryLimitOption, DeliveryLimitOption
from backbone.wire.names import Names

__all__ = ["app", "render_mermaid", "render_text"]

app = typer.Typer(no_args_is_help=True)

_DirectoryFile = Annotated[
    Path, typer.Option("--directory", help="Directory file (.json, .yaml or .yml).")
]
_Prefix = Annotated[str, typer.Option(help="Name prefix of the deployment's exchanges and queues.")]


@contextmanager
def _exit_on_error() -> Iterator[None]:
    try:
        yield
    except (DirectoryError, OrganCodeError, BrokerUnavailableError) as error:
        typer.echo(f"error: {error.message}", err=True)
        raise typer.Exit(1) from error


@app.command()
def apply(
    directory: _DirectoryFile,
    prefix: _Prefix = "vdx",
    amqp_url: Annotated[
        str | None,
        typer.Option(
            envvar="AMQP_URL",
            help="Broker URL; without it the broker is discovered as `backbone broker ensure` "
            "does.",
        ),
    ] = None,
    delivery_limit: DeliveryLimitOption = DEFAULT_DELIVERY_LIMIT,
    broker_delivery_limit: BrokerDeliveryLimitOption = True,
    max_message_bytes: Annotated[
        int, typer.Option(min=1, help="The size bound the router enforces (reported).")
    ] = DEFAULT_MAX_ENVELOPE_SIZE,
) -> None:
    """Declare the exchanges, queues and bindings DIRECTORY needs (idempotent; only adds)."""
    with _exit_on_error():
        loaded = load_directory(directory)
        url = amqp_url or discover_broker(container=False).url
        try:
            report = asyncio.run(
                _apply(
                    url,
                    loaded,
                    Names(prefix),
                    delivery_limit if broker_delivery_limit else None,
                    max_message_bytes,
                )
            )
        except (aiormq.exceptions.AMQPError, OSError) as error:
            where = _without_credentials(url)
            typer.echo(f"error: applying the topology on {where}: {error}", err=True)
            raise typer.Exit(1) from error
    typer.echo(f"{prefix} on {_without_credentials(url)}: {report}")


async def _apply(
    url: str,
    directory: Directory,
    names: Names,
    delivery_limit: int | None,
    max_message_bytes: int,
) -> TopologyReport:
    connection = await aio_pika.connect(url, client_properties={"connection_name": "vdx-topology"})
    async with connection:
        channel = await connection.channel()
        return await apply_topology(
            channel,
            directory,
            names,
            delivery_limit=delivery_limit,
            max_message_bytes=max_message_bytes,
        )


@app.command()
def show(
    directory: _DirectoryFile,
    prefix: _Prefix = "vdx",
    mermaid: Annotated[bool, typer.Option(help="A Mermaid flowchart instead of text.")] = False,
    delivery_limit: DeliveryLimitOption = DEFAULT_DELIVERY_LIMIT,
    broker_delivery_limit: BrokerDeliveryLimitOption = True,
) -> None:
    """Print what `apply` would declare for DIRECTORY; no broker needed."""
    with _exit_on_error():
        plan = plan_topology(
            load_directory(directory),
            Names(prefix),
            delivery_limit=delivery_limit if broker_delivery_limit else None,
        )
    typer.echo(render_mermaid(plan) if mermaid else render_text(plan), nl=False)


def render_text(plan: TopologyPlan) -> str:
    """Exchanges, queues and bindings, one a line."""
    lines = [f"exchanges ({len(plan.exchanges)}), all durable"]
    width = max(len(e.name) for e in plan.exchanges)
    for exchange in plan.exchanges:
        extra = f"  alternate-exchange={exchange.alternate}" if exchange.alternate else ""
        lines.append(f"  {exchange.name:<{width}}  {exchange.kind}{extra}")
    lines.append(f"queues ({len(plan.queues)}), all durable quorum but the stream")
    width = max(len(q.name) for q in plan.queues)
    for queue in plan.queues:
        extra = ""
        if queue.stream:
            extra = f"  stream max-length-bytes={queue.arguments['x-max-length-bytes']}"
        elif queue.dead_letter is not None:
            limit = queue.delivery_limit if queue.delivery_limit is not None else "(broker's)"
            extra = (
                f"  delivery-limit={limit} dead-letter={queue.dead_letter} "
                "(at-least-once, overflow reject-publish)"
            )
        lines.append(f"  {queue.name:<{width}}{extra}" if extra else f"  {queue.name}")
    lines.append(f"bindings ({len(plan.bindings)})")
    for binding in plan.bindings:
        key = binding.routing_key or '""'
        lines.append(f"  {binding.exchange} -> {binding.queue}  {key}")
    return "\n".join(lines) + "\n"


def render_mermaid(plan: TopologyPlan) -> str:
    """The plan as a Mermaid flowchart: exchanges as hexagons, queues as cylinders, bindings
    labelled with their keys, dashed edges for alternate and dead-letter exchanges."""
    ids = {e.name: f"x{n}" for n, e in enumerate(plan.exchanges)}
    queue_ids = {q.name: f"q{n}" for n, q in enumerate(plan.queues)}
    lines = ["flowchart LR"]
    lines += [f'    {ids[e.name]}{{{{"{e.name}<br>{e.kind}"}}}}' for e in plan.exchanges]
    lines += [f'    {queue_ids[q.name]}[("{q.name}")]' for q in plan.queues]
    keys: dict[tuple[str, str], list[str]] = {}
    for binding in plan.bindings:
        keys.setdefault((binding.exchange, binding.queue), []).append(binding.routing_key)
    for (exchange, queue), routing_keys in keys.items():
        label = "<br>".join(key for key in routing_keys if key)
        arrow = f'-->|"{label}"|' if label else "-->"
        lines.append(f"    {ids[exchange]} {arrow} {queue_ids[queue]}")
    for e in plan.exchanges:
        if e.alternate is not None:
            lines.append(f'    {ids[e.name]} -.->|"alternate"| {ids[e.alternate]}')
    for q in plan.queues:
        if q.dead_letter is not None:
            label = (
                f"dead-letter after {q.delivery_limit}"
                if q.delivery_limit is not None
                else "dead-letter (router's count)"
            )
            lines.append(f'    {queue_ids[q.name]} -.->|"{label}"| {ids[q.dead_letter]}')
    return "\n".join(lines) + "\n"


def _without_credentials(url: str) -> str:
    parts = urlsplit(url)
    host = parts.hostname or "?"
    return f"{parts.scheme}://{host}:{parts.port or 5672}{parts.path or '/'}"
