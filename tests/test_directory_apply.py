"""Directory versions applied live on the real broker (docs/directory.md, "Applying a new
version"): ``backbone directory apply`` checks a version against the running one and
publishes it; every router replica and every adapter (its gateway's agency lists) checks it
again, takes it up without a restart (documents to a merged code forwarded from then on,
nothing lost), saves it for its next start, and keeps its running version when the new one
is bad. A router or adapter started after the version was applied takes it up at start, from
the versions stream. The broker refuses an agency publishing a version; an agency's account
as provisioned may only read them. The routers' clock is injected: the merge is on
2025-07-01."""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aio_pika
import pytest
import structlog.testing
import yaml
from aiormq.exceptions import ChannelAccessRefused
from prometheus_client import REGISTRY
from typer.testing import CliRunner

from backbone.broker.directory_publish import publish_version
from backbone.broker.directory_versions import LiveDirectory
from backbone.broker.management import ManagementClient
from backbone.broker.provision import plan_accounts
from backbone.cli import app
from backbone.directory import Directory, load_directory
from backbone.envelope import read_frame
from backbone.errors import BrokerUnavailableError
from backbone.replica import Settings
from backbone.replica.cli import build_router
from backbone.router import directory_cli
from backbone.router.pipeline import Pipeline
from backbone.router.service import Router, RouterOptions
from backbone.router.topology import apply_topology
from backbone.store import open_store
from backbone.tracking import Tracking
from backbone.wire.events import EventType
from testkit import Deployment
from tests.support import Exchange
from tests.support.gateway import RunningGateway, call, gateway_config, serving

pytestmark = [pytest.mark.broker, pytest.mark.clock]

G22, X, Y = "000.00.00.G22", "000.07.12.H41", "000.00.00.H41"  # X merges into its province Y
HUB = "00.53.W00"
MERGE = "2025-07-01"
NOW = datetime(2025, 7, 2, tzinfo=UTC)  # the routers' clock: the day after the merge
MERGED: dict[str, dict[str, Any]] = {
    X: {"status": "closed", "closes": MERGE, "successors": [{"organ_code": Y, "share": "full"}]}
}
runner = CliRunner()


def write_version(
    path: Path,
    base: Directory,
    revision: int | None,
    changes: dict[str, dict[str, Any]] | None = None,
    *,
    hubs: dict[str, dict[str, Any]] | None = None,
) -> Path:
    """``base`` as a version-2 JSON file with ``revision`` and ``changes`` per organ code."""
    data = base.file.model_dump(mode="json", exclude_defaults=True)
    data["version"] = 2
    data.pop("revision", None)
    if revision is not None:
        data["revision"] = revision
    data["agencies"] = [a | (changes or {}).get(a["organ_code"], {}) for a in data["agencies"]]
    data["hubs"] = [h | (hubs or {}).get(h["id"], {}) for h in data["hubs"]]
    path.write_text(json.dumps(data, ensure_ascii=False), "utf-8")
    return path


def versions_counted(outcome: str) -> float:
    return REGISTRY.get_sample_value("vdx_directory_versions_total", {"outcome": outcome}) or 0.0


async def until(check: Callable[[], bool], what: str, timeout: float = 15.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


class World:
    """The test exchange, its running version on disk, the operator's account, routers."""

    def __init__(self, exchange: Exchange, root: Path) -> None:
        self.exchange = exchange
        self.root = root
        self.routers: list[Router] = []
        self.running = write_version(root / "running.json", exchange.directory, 1)
        self.operator = f"{exchange.names.prefix}-operator"
        self.passwords = root / "broker-passwords.yaml"
        self.services = AsyncExitStack()  # gateways, closed with the world

    async def provision_operator(self) -> None:
        """The operator's account with the permissions ``backbone provision`` gives it."""
        spec = next(
            spec
            for spec in plan_accounts(
                self.exchange.directory,
                self.exchange.names,
                router_user="unused",
                operator_user=self.operator,
            )
            if spec.system == "operator"
        )
        await self.restrict(spec.user, spec.configure, spec.write, spec.read, create=True)

    async def restrict(
        self, user: str, configure: str, write: str, read: str, *, create: bool = False
    ) -> None:
        management = ManagementClient.from_env()
        if create:
            password = secrets.token_urlsafe(16)
            await management.create_user(user, password)
            self.exchange.passwords[user] = password
        await management.set_permissions(user, configure=configure, write=write, read=read)

    async def start_router(self, name: str, file: Path | None = None) -> Router:
        """A replica loading ``file`` (its own copy of the running version by default)."""
        own = self.root / f"{name}.json"
        if file is None:
            own.write_bytes(self.running.read_bytes())
        directory = load_directory(file or own)
        store = await open_store(f"sqlite+aiosqlite:///{self.root / f'{name}.db'}")
        pipeline = Pipeline(
            directory=directory,
            validator=self.exchange.pki.validator(),
            store=store,
            names=self.exchange.names,
            transition_window=timedelta(days=180),
            clock=lambda: NOW,
        )
        router = Router(
            RouterOptions(amqp_url=self.exchange.amqp_url, names=self.exchange.names),
            directory=directory,
            pipeline=pipeline,
            store=store,
            live=LiveDirectory(file or own),
        )
        await router.start()
        self.routers.append(router)
        return router

    async def declare_topology(self) -> None:
        """What a router declares at start (the versions stream among it), without one."""
        channel = await self.exchange.channel(self.exchange.account_of(G22))
        await apply_topology(channel, self.exchange.directory, self.exchange.names)

    async def provisioned(self, code: str) -> str:
        """``code``'s broker account, restricted to what ``backbone provision`` gives it."""
        account = self.exchange.account_of(code)
        spec = next(
            spec
            for spec in plan_accounts(self.exchange.directory, self.exchange.names, router_user="r")
            if spec.user == account
        )
        await self.restrict(account, spec.configure, spec.write, spec.read)
        return account

    async def start_gateway(self, system: str, name: str) -> RunningGateway:
        """``system``'s adapter with its gateway, loading its own copy of the running
        version (``name``.json), until the world closes."""
        own = self.root / f"{name}.json"
        own.write_bytes(self.running.read_bytes())
        deployment = Deployment.without_router(self.exchange, self.root / name)
        config, secret = gateway_config(deployment, system, self.root / name / "gateway")
        config = config.model_copy(update={"directory": own})
        # On the routers' clock: the agency lists are answered for an instant.
        gateway = await self.services.enter_async_context(serving(config, clock=lambda: NOW))
        return RunningGateway(gateway.client, gateway, secret, config.gateway_systems[0].systemid)

    async def apply(self, new: Path, *extra: str, running: Path | None = None) -> Any:
        """``backbone directory apply NEW`` as the operator (in a thread: it runs its own
        event loop); ``running`` another running version than the first (NEW itself: the
        broker part alone)."""
        args = ["directory", "apply", str(new), "--running", str(running or self.running)]
        args += ["--prefix", self.exchange.names.prefix]
        args += ["--amqp-url", self.exchange.url_for(self.operator)]
        args += ["--topology-amqp-url", self.exchange.amqp_url]
        args += ["--passwords", str(self.passwords), *extra]
        return await asyncio.to_thread(runner.invoke, app, args)

    async def send(self, number: int, to: str = X) -> bytes:
        body = self.exchange.seal_document(G22, [to], number)
        await self.exchange.submit(body, as_account=self.exchange.account_of(G22))
        return body


@asynccontextmanager
async def opened_world(exchange: Exchange, root: Path) -> AsyncIterator[World]:
    """A world around ``exchange``: its operator provisioned; routers and users gone after."""
    made = World(exchange, root)
    await made.provision_operator()
    try:
        yield made
    finally:
        await made.services.aclose()
        for router in made.routers:
            await router.stop()
        await exchange.close()


@pytest.fixture
async def world(
    amqp_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[World]:
    # `directory apply` reads the routers' clock too: X's window has just begun.
    monkeypatch.setattr(directory_cli, "clock", lambda: NOW)
    async with opened_world(await Exchange.create(amqp_url, tmp_path / "pki"), tmp_path) as made:
        yield made


async def test_a_version_applied_live_forwards_later_documents_to_the_heir_and_loses_none(
    world: World,
) -> None:
    router = await world.start_router("a")
    old_id = router.directory.version.id
    before = [await world.send(n) for n in range(3)]
    assert len(await world.exchange.drain(world.exchange.inbox_of(X), expect=3)) == 3

    new = write_version(world.root / "merged.json", world.exchange.directory, 2, MERGED)
    result = await world.apply(new)
    assert result.exit_code == 0, result.output
    assert f"{world.running} (revision 1) → {new} (revision 2): 1 merged" in result.stdout
    assert f"merged       {X}: - → {MERGE} → {Y}" in result.stdout
    new_id = load_directory(new).version.id
    assert f"published version {new_id}" in result.stdout
    await until(lambda: router.directory.version.id == new_id, "the router to take it up")
    assert REGISTRY.get_sample_value("vdx_directory_revision") == 2

    after = [await world.send(n) for n in range(3, 8)]
    arrived = await world.exchange.drain(world.exchange.inbox_of(Y), expect=5)
    assert sorted(m.body for m in arrived) == sorted(after)
    assert await world.exchange.drain(world.exchange.inbox_of(X), expect=0, timeout=0.5) == []
    events = await world.exchange.events(G22, expect=3 * 1 + 5 * 2)
    routed = {e.envelope_id: e.directory_version for e in events if e.type is EventType.ROUTED}
    forwarded = [e for e in events if e.type is EventType.FORWARDED]
    ids_before = [read_frame(body).header.envelope_id for body in before]
    ids_after = [read_frame(body).header.envelope_id for body in after]
    assert sorted(routed) == sorted(ids_before + ids_after)  # every document routed: none lost
    assert {routed[i] for i in ids_before} == {old_id}
    assert {routed[i] for i in ids_after} == {new_id}
    assert sorted(e.envelope_id or "" for e in forwarded) == sorted(ids_after)
    assert {(e.recipients, e.directory_version) for e in forwarded} == {((Y,), new_id)}


async def test_a_version_applied_under_load_loses_and_misroutes_nothing(world: World) -> None:
    router = await world.start_router("a")
    old_id = router.directory.version.id
    new = write_version(world.root / "merged.json", world.exchange.directory, 2, MERGED)
    new_id = load_directory(new).version.id

    async def flow() -> list[bytes]:
        # Documents flow before, while and after the router checks the version (in another
        # process, which takes a moment to start): 20 more once it has taken it up.
        sent: list[bytes] = []
        after = 0
        while after < 20:
            assert len(sent) < 3000, "the router never took the version up"
            sent.append(await world.send(len(sent)))
            after += router.directory.version.id == new_id
        return sent

    sending = asyncio.create_task(flow())
    await asyncio.sleep(0.2)  # documents are flowing when the version arrives
    assert (await world.apply(new)).exit_code == 0
    sent = await sending

    to_x = await world.exchange.drain(world.exchange.inbox_of(X), expect=1, timeout=2)
    to_y = await world.exchange.drain(world.exchange.inbox_of(Y), expect=len(sent) - len(to_x))
    assert sorted(m.body for m in to_x + to_y) == sorted(sent)  # each exactly once
    events = await world.exchange.events(G22, expect=len(to_x) + 2 * len(to_y))
    version_of = {e.envelope_id: e.directory_version for e in events if e.type is EventType.ROUTED}
    # Each went where the version it was decided against said: X before, Y (forwarded) after.
    assert {version_of[read_frame(m.body).header.envelope_id] for m in to_x} <= {old_id}
    assert {version_of[read_frame(m.body).header.envelope_id] for m in to_y} == {new_id}
    forwarded = {e.envelope_id for e in events if e.type is EventType.FORWARDED}
    assert forwarded == {read_frame(m.body).header.envelope_id for m in to_y}


async def test_every_replica_sharing_the_inbound_queue_takes_the_version_up(
    world: World,
) -> None:
    replicas = [await world.start_router("a"), await world.start_router("b")]
    new = write_version(world.root / "merged.json", world.exchange.directory, 2, MERGED)
    assert (await world.apply(new)).exit_code == 0
    new_id = load_directory(new).version.id
    for replica in replicas:
        await until(lambda r=replica: r.directory.version.id == new_id, "both replicas")
    # Each saved it where it loads its directory at start.
    assert {load_directory(world.root / f"{n}.json").version.id for n in "ab"} == {new_id}

    sent = [await world.send(n) for n in range(10)]  # spread over both replicas
    arrived = await world.exchange.drain(world.exchange.inbox_of(Y), expect=10)
    assert sorted(m.body for m in arrived) == sorted(sent)
    assert await world.exchange.drain(world.exchange.inbox_of(X), expect=0, timeout=0.5) == []


async def test_a_restarted_router_starts_with_the_version_applied(world: World) -> None:
    router = await world.start_router("a")
    new = write_version(world.root / "merged.json", world.exchange.directory, 2, MERGED)
    assert (await world.apply(new)).exit_code == 0
    new_id = load_directory(new).version.id
    await until(lambda: router.directory.version.id == new_id, "the router to take it up")
    await router.stop()
    world.routers.remove(router)

    counted = versions_counted("applied"), versions_counted("refused")
    restarted = await world.start_router("again", file=world.root / "a.json")
    assert restarted.directory.version.id == new_id
    await asyncio.sleep(0.5)  # it reads the stream's last version: the one it runs already
    assert (versions_counted("applied"), versions_counted("refused")) == counted
    body = await world.send(1)
    assert [m.body for m in await world.exchange.drain(world.exchange.inbox_of(Y), expect=1)] == [
        body
    ]


def hostile_versions(root: Path, base: Directory) -> dict[str, tuple[Path, str]]:
    """Each hostile version and the words its refusal names."""
    cycle = {
        X: MERGED[X],
        Y: {
            "status": "closed",
            "closes": MERGE,
            "successors": [{"organ_code": X, "share": "full"}],
        },
    }
    merged = write_version(root / "merged.json", base, 2, MERGED)
    cut = root / "cut.json"
    cut.write_bytes(merged.read_bytes()[: merged.stat().st_size // 2])
    return {
        "cycle": (
            write_version(root / "cycle.json", base, 2, cycle),
            f"a cycle of successors: {Y} → {X} → {Y}",
        ),
        "reused code": (
            write_version(root / "reused.json", base, 2, {G22: {"former_codes": [Y]}}),
            f"{Y} is already the organ_code of",
        ),
        "hub closed under live agencies": (
            write_version(
                root / "hub.json", base, 2, hubs={HUB: {"status": "closed", "closes": MERGE}}
            ),
            "a hub closed under live agencies",
        ),
        "cut short": (cut, "the file ends in the middle of its data, so it was cut short"),
        "older revision": (
            write_version(root / "older.json", base, 1, MERGED),
            "revision: 1 is not after the running revision 1",
        ),
    }


async def published_and_refused(world: World, file: Path, name: str, event: str) -> Any:
    """Publish ``file`` as the operator, past the command's checks; the one ``event`` log
    line of the one process that refuses it, once it is counted."""
    refused = versions_counted("refused")
    with structlog.testing.capture_logs() as lines:
        await publish_version(
            world.exchange.url_for(world.operator), world.exchange.names,
            file.read_bytes(), "json", "hostile",
        )  # fmt: skip
        await until(lambda: versions_counted("refused") == refused + 1, f"{name} refused")
    [line] = [line for line in lines if line["event"] == event]
    return line


async def test_hostile_versions_are_refused_with_precise_errors_and_routing_stays(
    world: World,
) -> None:
    router = await world.start_router("a")
    running_id = router.directory.version.id
    saved = (world.root / "a.json").read_bytes()
    for name, (file, words) in hostile_versions(world.root, world.exchange.directory).items():
        # The command refuses it before publishing anything...
        result = await world.apply(file)
        assert result.exit_code == 1, name
        assert words in result.stderr, (name, result.stderr)
        # ...and a replica refuses it even when it is published all the same.
        line = await published_and_refused(world, file, name, "router.directory_refused")
        assert words in line["error"], (name, line["error"])
        assert line["running"] == running_id
        assert router.directory.version.id == running_id, name
    assert (world.root / "a.json").read_bytes() == saved  # the saved version is the running one
    body = await world.send(1)  # routing unchanged: X still receives
    assert [m.body for m in await world.exchange.drain(world.exchange.inbox_of(X), expect=1)] == [
        body
    ]


async def test_a_router_refuses_a_version_an_agency_account_published(world: World) -> None:
    # The test exchange's agency accounts may write anywhere: the router's own backstop.
    router = await world.start_router("a")
    refused = versions_counted("refused")
    new = write_version(world.root / "merged.json", world.exchange.directory, 2, MERGED)
    account = world.exchange.account_of(G22)
    await publish_version(
        world.exchange.url_for(account), world.exchange.names, new.read_bytes(), "json", "x"
    )
    await until(lambda: versions_counted("refused") == refused + 1, "the version refused")
    assert router.directory.version.revision == 1


async def test_the_broker_refuses_an_agency_account_publishing_a_version(world: World) -> None:
    await world.start_router("a")
    account = await world.provisioned(G22)
    new = write_version(world.root / "merged.json", world.exchange.directory, 2, MERGED)
    with pytest.raises(BrokerUnavailableError, match=f"the broker refused account '{account}'"):
        await publish_version(
            world.exchange.url_for(account), world.exchange.names, new.read_bytes(), "json", "x"
        )
    # Nor straight into the versions stream (it may only read it), nor declare a queue there.
    connection = await aio_pika.connect(world.exchange.url_for(account))
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        with pytest.raises(ChannelAccessRefused):
            await channel.default_exchange.publish(
                aio_pika.Message(new.read_bytes(), user_id=account),
                routing_key=world.exchange.names.directory_stream,
            )
        channel = await connection.channel()
        with pytest.raises(ChannelAccessRefused):
            await channel.declare_queue(f"{world.exchange.names.directory_stream}.mine")
    assert world.routers[0].directory.version.revision == 1


async def test_the_operators_account_may_publish_directory_versions_and_nothing_else(
    world: World,
) -> None:
    connection = await aio_pika.connect(world.exchange.url_for(world.operator))
    async with connection:
        for exchange_name in (
            world.exchange.names.submit_exchange,
            world.exchange.names.events_exchange,
        ):
            channel = await connection.channel(publisher_confirms=True)
            exchange = await channel.get_exchange(exchange_name, ensure=False)
            with pytest.raises(ChannelAccessRefused):
                await exchange.publish(
                    aio_pika.Message(b"x", user_id=world.operator), routing_key="envelope"
                )
        channel = await connection.channel()
        inbound = await channel.get_queue(world.exchange.names.inbound_queue, ensure=False)
        with pytest.raises(ChannelAccessRefused):
            await inbound.get(fail=False)


async def test_a_router_started_after_a_version_was_applied_takes_it_up_at_start(
    world: World,
) -> None:
    router = await world.start_router("a")
    new = write_version(world.root / "merged.json", world.exchange.directory, 2, MERGED)
    assert (await world.apply(new)).exit_code == 0
    new_id = load_directory(new).version.id
    await until(lambda: router.directory.version.id == new_id, "the running router")
    # b was down when the version was published: it starts from a file of revision 1.
    applied = versions_counted("applied")
    late = await world.start_router("b")
    await until(lambda: late.directory.version.id == new_id, "the late router to catch up")
    assert versions_counted("applied") == applied + 1  # taken up, checked like any version
    assert load_directory(world.root / "b.json").version.id == new_id  # saved for its restart
    await router.stop()
    world.routers.remove(router)
    body = await world.send(1)  # only the late replica routes: forwarded to the heir
    assert [m.body for m in await world.exchange.drain(world.exchange.inbox_of(Y), expect=1)] == [
        body
    ]


def synchronize_units(gateway: RunningGateway) -> dict[str, dict[str, Any]]:
    """The gateway's getSynchronizeUnit answer, through the SDK, by organ code."""
    answer = gateway.sdk().json_call("getSynchronizeUnit")
    assert answer is not None
    return {str(unit["id"]): unit for unit in answer["data"]}


async def test_a_gateway_lists_the_version_applied_without_a_restart_read_with_least_privilege(
    world: World,
) -> None:
    await world.start_router("a")
    await world.provisioned(G22)  # the adapter reads versions as `backbone provision` allows
    gateway = await world.start_gateway(G22, "g22")
    before = await call(synchronize_units, gateway)
    assert (before[X]["deleted"], before[X]["version"]) == (False, 1)

    new = write_version(world.root / "merged.json", world.exchange.directory, 2, MERGED)
    assert (await world.apply(new)).exit_code == 0
    new_id = load_directory(new).version.id
    await until(lambda: gateway.client.directory.version.id == new_id, "the adapter")
    after = await call(synchronize_units, gateway)
    assert (after[X]["deleted"], after[X]["version"]) == (True, 2)
    listed = await call(gateway.sdk().json_call, "getAgenciesList")
    assert listed is not None
    assert X not in {row["id"] for row in listed["data"]}
    assert load_directory(world.root / "g22.json").version.id == new_id  # saved for a restart


async def test_an_adapter_started_after_a_version_was_applied_takes_it_up_at_start(
    world: World,
) -> None:
    await world.declare_topology()  # no router runs: the stream alone carries the version
    new = write_version(world.root / "merged.json", world.exchange.directory, 2, MERGED)
    assert (await world.apply(new)).exit_code == 0
    new_id = load_directory(new).version.id

    applied = versions_counted("applied")
    with structlog.testing.capture_logs() as lines:
        gateway = await world.start_gateway(G22, "late")
        await until(lambda: gateway.client.directory.version.id == new_id, "the adapter")
    assert versions_counted("applied") == applied + 1
    assert [line["version"] for line in lines if line["event"] == "adapter.directory_applied"] == [
        new_id
    ]
    assert (await call(synchronize_units, gateway))[X]["deleted"] is True
    assert load_directory(world.root / "late.json").version.id == new_id


async def test_an_adapter_refuses_hostile_versions_and_keeps_its_running_one(
    world: World,
) -> None:
    await world.declare_topology()
    gateway = await world.start_gateway(G22, "g22")
    running_id = gateway.client.directory.version.id
    saved = (world.root / "g22.json").read_bytes()
    for name, (file, words) in hostile_versions(world.root, world.exchange.directory).items():
        line = await published_and_refused(world, file, name, "adapter.directory_refused")
        assert words in line["error"], (name, line["error"])
        assert line["running"] == running_id
        assert gateway.client.directory.version.id == running_id, name
    assert (world.root / "g22.json").read_bytes() == saved
    assert (await call(synchronize_units, gateway))[X]["deleted"] is False  # lists unchanged


async def test_tracking_finds_the_inbox_of_an_agency_the_applied_version_added(
    world: World,
) -> None:
    # A replica as `backbone router run` builds it: tracking beside the router.
    settings = world.root / "router.yaml"
    settings.write_text(
        yaml.safe_dump(
            {
                "amqp_url": world.exchange.amqp_url,
                "prefix": world.exchange.names.prefix,
                "directory": str(world.running),
                "trust_anchors": [str(world.exchange.pki.ca.cert_path)],
                "crls": [str(world.exchange.pki.ca.crl_path)],
                "store_url": f"sqlite+aiosqlite:///{world.root / 'tracked.db'}",
            }
        )
    )
    router = await build_router(Settings.load(settings))
    await router.start()
    world.routers.append(router)
    [tracking] = [ext for ext in router.extensions if isinstance(ext, Tracking)]
    assert tracking.inbox_of is not None
    added = "002.21.32.H53"  # behind the hub, in the subtree it serves
    assert tracking.inbox_of(added) is None

    new = write_version(world.root / "added.json", world.exchange.directory, 2)
    data = json.loads(new.read_text("utf-8"))
    data["agencies"].append(
        {"organ_code": added, "name": "Agency 002.21.32.H53", "connection": "hub", "hub": HUB}
    )
    new.write_text(json.dumps(data), "utf-8")
    assert (await world.apply(new)).exit_code == 0
    new_id = load_directory(new).version.id
    await until(lambda: router.directory.version.id == new_id, "the router")
    assert tracking.inbox_of(added) == world.exchange.names.inbox_queue(HUB)
