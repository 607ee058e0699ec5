"""``backbone provision``: broker users, least-privilege permissions, connection and channel
limits, and the queue-bounding policies, from the directory."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Annotated

import typer

from backbone.broker.bounds import BrokerBounds
from backbone.broker.management import ManagementClient
from backbone.broker.provision import (
    definitions,
    load_or_create_passwords,
    plan_accounts,
    plan_policies,
    provision,
)
from backbone.directory import load_directory
from backbone.errors import BackboneError
from backbone.wire.names import Names


def provision_command(
    directory: Annotated[Path, typer.Option(help="The agency directory file")],
    passwords: Annotated[
        Path, typer.Option(help="YAML of account passwords (mode 0600); new ones are generated")
    ] = Path("broker-passwords.yaml"),
    prefix: Annotated[str, typer.Option(help="Broker name prefix")] = "vdx",
    router_user: Annotated[str, typer.Option(help="The router's broker user")] = "vdx-router",
    operator_user: Annotated[
        str,
        typer.Option(
            help="The operator's broker user: it may publish directory versions "
            "(`backbone directory apply`) and nothing else"
        ),
    ] = "vdx-operator",
    bounds_file: Annotated[
        Path | None,
        typer.Option(
            "--bounds",
            help="YAML of connection/channel limits and queue bounds (docs/topology.md); "
            "missing keys keep their defaults",
        ),
    ] = None,
    definitions_out: Annotated[
        Path | None,
        typer.Option("--definitions", help="Write RabbitMQ definitions JSON here instead"),
    ] = None,
) -> None:
    """One broker user per connected system: publish to the submit exchange only, read its own
    inbox and events queues only, configure nothing, a few connections and channels; and
    policies bounding the quarantine and events queues. Applies through the management API
    (VDX_MANAGEMENT_URL), or writes definitions for `rabbitmqctl import_definitions`."""
    try:
        names = Names(prefix)
        bounds = BrokerBounds.load(bounds_file)
        specs = plan_accounts(
            load_directory(directory),
            names,
            router_user=router_user,
            operator_user=operator_user,
            bounds=bounds,
        )
        policies = plan_policies(names, bounds)
        secrets = load_or_create_passwords(passwords, [spec.user for spec in specs])
        if definitions_out is not None:
            definitions_out.write_text(json.dumps(definitions(specs, secrets, policies), indent=2))
            definitions_out.chmod(0o600)
            typer.echo(f"wrote {len(specs)} users, {len(policies)} policies to {definitions_out}")
            return
        count = asyncio.run(provision(ManagementClient.from_env(), specs, secrets, policies))
    except BackboneError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(1) from error
    typer.echo(
        f"provisioned {count} broker users and {len(policies)} policies; passwords in {passwords}"
    )
