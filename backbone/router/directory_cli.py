"""``backbone directory apply``: check a new directory version against the running one, show
what changes, bring the broker's topology and accounts in line with it, and publish it to
every router, adapter and gateway; given the running version itself, the broker part alone, which
removes what closed systems left once drained (docs/directory.md)."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path
from typing import Annotated

import aio_pika
import aiormq.exceptions
import typer

from backbone.broker.bounds import BrokerBounds
from backbone.broker.directory_publish import publish_version
from backbone.broker.management import ManagementClient
from backbone.broker.provision import load_or_create_passwords, plan_accounts
from backbone.clock import Clock, utc_now
from backbone.directory import Directory, format_of, load_directory, parse_directory
from backbone.directory.cli import echo_changes, exit_on_problems
from backbone.directory.succession import succession
from backbone.errors import BackboneError, BrokerUnavailableError, DirectoryError
from backbone.router.directory_follow import BrokerFollow, apply_follow, plan_follow
from backbone.router.topology import DEFAULT_DELIVERY_LIMIT, plan_topology
from backbone.router.topology_options import BrokerDeliveryLimitOption, DeliveryLimitOption
from backbone.router.transition import DEFAULT_TRANSITION_WINDOW_DAYS
from backbone.wire.names import Names

__all__ = ["apply_command"]

clock: Clock = utc_now  # when transition windows end; tests set their own instant

_Running = Annotated[
    Path,
    typer.Option(
        help="The running version: the routers' `directory:` file, which they keep current"
    ),
]
_Prefix = Annotated[str, typer.Option(help="The deployment's broker name prefix.")]
_TopologyUrl = Annotated[
    str | None,
    typer.Option(
        envvar="AMQP_URL",
        help="Broker URL of an account that may declare and delete the deployment's queues "
        "(the router's or the administrator's), as `backbone topology apply` takes",
    ),
]
_Passwords = Annotated[
    Path,
    typer.Option(help="YAML of account passwords (mode 0600), as `backbone provision` keeps it"),
]
_Bounds = Annotated[
    Path | None,
    typer.Option(
        "--bounds", help="Account limits for new accounts, as `backbone provision --bounds`"
    ),
]
_Window = Annotated[
    int,
    typer.Option(
        min=0,
        help="The routers' transition_window_days: a closed system's queues and account stay "
        "until it ends",
    ),
]


def apply_command(
    new: Annotated[Path, typer.Argument(help="The version to apply (.json, .yaml or .yml).")],
    running: _Running,
    amqp_url: Annotated[
        str | None,
        typer.Option(
            envvar="VDX_OPERATOR_AMQP_URL",
            help="Broker URL with the operator's account (the only one that may publish "
            "directory versions)",
        ),
    ] = None,
    prefix: _Prefix = "vdx",
    check_only: Annotated[
        bool,
        typer.Option(
            "--check", help="Check and show the changes, the broker's too; change nothing."
        ),
    ] = False,
    topology_amqp_url: _TopologyUrl = None,
    passwords: _Passwords = Path("broker-passwords.yaml"),
    bounds_file: _Bounds = None,
    transition_window_days: _Window = DEFAULT_TRANSITION_WINDOW_DAYS,
    delivery_limit: DeliveryLimitOption = DEFAULT_DELIVERY_LIMIT,
    broker_delivery_limit: BrokerDeliveryLimitOption = True,
) -> None:
    """Check NEW and show what changes against the running version (as `diff` does); refuse
    it when it rewrites history, does not raise the revision or changes the tier model;
    otherwise bring the broker in line with it (inboxes, bindings and accounts added; those
    of closed systems removed once drained) and publish it, where every router, adapter and
    gateway takes it up live (and any started later, at start). NEW being the running
    version itself, only brings the broker in line (what closed systems kept until drained
    goes) and publishes nothing."""
    follow = _Follow(
        Names(prefix),
        topology_amqp_url,
        passwords,
        bounds_file,
        transition_window_days,
        delivery_limit if broker_delivery_limit else None,
    )
    try:
        before = load_directory(running)
        data = _read(new)  # once: what is checked is what is published
        after = parse_directory(data, format=format_of(new), source=str(new), base_dir=new.parent)
        if after.version.id == before.version.id:
            typer.echo(f"{new} is the running version {after.version.id}: the broker only")
            follow.run(after, None, check_only=check_only)
            return
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
    if not check_only and amqp_url is None:
        typer.echo(
            "error: no broker URL: give --amqp-url or set VDX_OPERATOR_AMQP_URL to the "
            "operator's account",
            err=True,
        )
        raise typer.Exit(1)
    follow.run(after, before, check_only=check_only)
    if check_only:
        typer.echo(f"version {after.version.id} may be applied; nothing published (--check)")
        return
    assert amqp_url is not None
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


class _Follow:
    """The broker part of `apply`: plan against the broker, print, apply."""

    def __init__(
        self,
        names: Names,
        url: str | None,
        passwords: Path,
        bounds: Path | None,
        days: int,
        delivery_limit: int | None,
    ) -> None:
        self.names, self.url, self.passwords = names, url, passwords
        self.bounds_file, self.window = bounds, timedelta(days=days)
        self.delivery_limit = delivery_limit  # as the routers declare inboxes

    def run(self, directory: Directory, before: Directory | None, *, check_only: bool) -> None:
        if not check_only and self.url is None:
            typer.echo(
                "error: no broker URL to declare the topology with: give --topology-amqp-url "
                "or set AMQP_URL to the router's or the administrator's account",
                err=True,
            )
            raise typer.Exit(1)
        try:
            kept = asyncio.run(self._run(directory, before, check_only=check_only))
        except BackboneError as error:
            typer.echo(f"error: {error.message}", err=True)
            raise typer.Exit(1) from error
        except (aiormq.exceptions.AMQPError, OSError) as error:
            typer.echo(f"error: bringing the broker in line: {error}", err=True)
            raise typer.Exit(1) from error
        for line in kept:
            typer.echo(f"  {line}")

    async def _run(
        self, directory: Directory, before: Directory | None, *, check_only: bool
    ) -> list[str]:
        management = ManagementClient.from_env()
        accounts = [
            spec
            for spec in plan_accounts(
                directory,
                self.names,
                router_user="-",
                bounds=BrokerBounds.load(self.bounds_file),
            )
            if spec.system != "router"
        ]
        follow = await plan_follow(
            management,
            directory,
            self.names,
            plan_topology(directory, self.names, delivery_limit=self.delivery_limit),
            accounts,
            at=clock(),
            window=self.window,
            before=before,
        )
        for line in follow.lines():
            typer.echo(line)
        if check_only:
            typer.echo("nothing changed on the broker (--check)")
            return []
        assert self.url is not None
        return await self._apply(follow, management)

    async def _apply(self, follow: BrokerFollow, management: ManagementClient) -> list[str]:
        secrets = load_or_create_passwords(self.passwords, [s.user for s in follow.accounts])
        try:
            connection = await aio_pika.connect(
                self.url or "", client_properties={"connection_name": "vdx-directory-apply"}
            )
        except (*aio_pika.exceptions.CONNECTION_EXCEPTIONS,) as error:
            raise BrokerUnavailableError(f"the broker is unreachable: {error}") from None
        async with connection:
            kept = await apply_follow(follow, await connection.channel(), management, secrets)
        late = [k for k in kept if k not in follow.kept]
        typer.echo(
            f"broker in line: {follow.changes - len(late)} changes made"
            + (f", passwords of new accounts in {self.passwords}" if follow.accounts else "")
        )
        return [k.line() for k in late]


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as error:
        raise DirectoryError(f"{path}: cannot be read: {error.strerror}") from None
