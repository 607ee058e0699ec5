"""The ``backbone`` command. Each area adds its own sub-command group."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from adapters.cli import app as adapter_app
from backbone.broker.provision_cli import provision_command
from backbone.devtools.ca_cli import app as pki_app
from backbone.devtools.discovery_cli import app as broker_app
from backbone.directory.cli import app as directory_app
from backbone.edxml.cli import app as edxml_app
from backbone.replica.cli import app as router_app
from backbone.replica.track_cli import app as track_app
from backbone.router.directory_cli import apply_command
from backbone.router.topology_cli import app as topology_app

app = typer.Typer(
    name="backbone",
    help="Routing backbone for official documents (edXML, QCVN 102:2016) over RabbitMQ.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(edxml_app, name="edxml", help="Check and inspect edXML (QCVN 102:2016) files.")
app.add_typer(pki_app, name="pki", help="Development certificate authority and certificate checks.")
directory_app.command("apply")(apply_command)  # publishes on the broker: not in the core
app.add_typer(directory_app, name="directory", help="The agency directory: check, query, generate.")
app.add_typer(router_app, name="router", help="Run a router replica.")
app.add_typer(topology_app, name="topology", help="Declare or show the broker topology.")
app.add_typer(adapter_app, name="adapter", help="Run an agency's (or a hub's) adapter.")
app.add_typer(broker_app, name="broker", help="Find, start or install a broker (development, CI).")
app.add_typer(
    track_app, name="track", help="A document's timeline per recipient; tracking API tokens."
)
app.command("provision", help="Broker users with least privilege, from the directory.")(
    provision_command
)


@app.command()
def demo(
    keep: Annotated[bool, typer.Option("--keep", help="Keep the demo's folders and logs")] = False,
    timeout: Annotated[
        float, typer.Option(help="Seconds for every recipient to reach status 06")
    ] = 90.0,
    observe: Annotated[
        bool,
        typer.Option(
            "--observe",
            help="A real Prometheus beside it (Debian's prometheus); documents keep flowing "
            "until Ctrl-C",
        ),
    ] = False,
) -> None:
    """The end-to-end demo: PKI, directory, router and adapters as processes, documents up,
    down and across the four tiers, statuses 01 → 06 live. With --observe, Prometheus scrapes
    it all (its URL printed) and it runs until Ctrl-C or SIGTERM."""
    from backbone.devtools.demo import run

    run(keep=keep, timeout=timeout, observe=observe)


@app.command()
def sandbox(
    out: Annotated[
        Path,
        typer.Option("--out", help="Folder for sandbox.json and the secret files"),
    ],
    keep: Annotated[
        bool, typer.Option("--keep", help="Keep the temporary folder (keys, logs, state)")
    ] = False,
) -> None:
    """Gateways for five agencies across the four tiers (two behind a hub) and the router with
    tracking on the local broker, for an integration team's software; DIR/sandbox.json lists
    endpoints, systemids and secrets. Runs until Ctrl-C or SIGTERM, then removes it all."""
    from backbone.devtools.sandbox import run

    run(out, keep=keep)


def main() -> None:
    app()
