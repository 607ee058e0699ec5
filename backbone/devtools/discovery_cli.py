"""``backbone broker``: find (or start) a broker for development and CI."""

from __future__ import annotations

import typer

from backbone.devtools.discovery import discover_broker, docker_engine_answers, enable_plugins
from backbone.errors import BrokerUnavailableError

app = typer.Typer(no_args_is_help=True)


@app.command()
def ensure(
    install: bool = typer.Option(
        False, help="Install Debian's rabbitmq-server when no broker is found (needs root)."
    ),
    plugins: bool = typer.Option(
        False, help="Enable the management and Prometheus plugins on the local node."
    ),
) -> None:
    """Make sure a broker answers (AMQP_URL, the local node, or start/install it); print its URL
    without credentials."""
    try:
        endpoint = discover_broker(install=install, container=False)
        if plugins and endpoint.source != "AMQP_URL":
            enable_plugins()
    except BrokerUnavailableError as error:
        if docker_engine_answers():
            # Tests start their own testcontainers broker; a CLI process cannot keep one.
            typer.echo("no local broker; a Docker engine answers, tests will use a container")
            return
        typer.echo(f"error: {error.message}", err=True)
        raise typer.Exit(1) from error
    host = endpoint.url.rsplit("@", 1)[-1]
    typer.echo(f"broker ready ({endpoint.source}): amqp://{host}")
