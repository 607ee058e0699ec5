"""The broker follows a directory version (docs/directory.md, "Applying a new version"), on
the real broker and its management API: ``backbone directory apply`` declares a new
agency's inbox and bindings and creates its account before publishing, so its software
receives through a real router at once; a closed agency's empty queues and account go once
its transition window is over, a non-empty inbox stays (listed) until applying the same
version again (``apply NEW --running NEW``) finds it drained; an agency moved off a hub
takes its bindings with it; ``--check`` changes nothing, and a second run changes nothing
either. An adapter that serves an agency the version moves to another system or closes
says so in one warning per agency. The clock is injected."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aio_pika
import pytest
import structlog.testing
import yaml

from adapters import AdapterClient
from adapters.served_changes import served_changes
from backbone.broker.management import ManagementClient
from backbone.broker.provision import plan_accounts
from backbone.directory import load_directory
from backbone.router import directory_cli
from backbone.router.topology import plan_topology
from backbone.wire.names import Names
from testkit import Deployment
from tests.support import Exchange
from tests.support.provisioning import account_url, get_one
from tests.test_directory_apply import (
    G22,
    MERGE,
    MERGED,
    World,
    Y,
    opened_world,
    until,
    write_version,
)

pytestmark = [pytest.mark.broker, pytest.mark.clock]

NEW = "000.00.06.G01"  # a ministry's new bureau, connected directly
X, ABOLISHED = "000.07.12.H41", "002.07.12.H41"  # X merges into its province; the unit goes
MOVED = "000.00.00.H53"  # leaves the hub for a direct connection of its own
HUB = "00.53.W00"
AFTER_WINDOW = datetime(2025, 9, 1, tzinfo=UTC)  # MERGE + more than the 30-day window
IN_WINDOW = datetime(2025, 7, 10, tzinfo=UTC)
WINDOW = ["--transition-window-days", "30"]


@pytest.fixture
async def world(amqp_url: str, tmp_path: Path) -> AsyncIterator[World]:
    exchange = await Exchange.create(amqp_url, tmp_path / "pki")
    added = [f"{exchange.names.prefix}-new", f"{exchange.names.prefix}-h53"]
    async with opened_world(exchange, tmp_path) as made:
        try:
            yield made
        finally:
            management = ManagementClient.from_env()
            for user in added:
                await management.delete_user(user)


def next_version(world: World, name: str, *, close: bool = False, move: bool = False) -> Path:
    """Revision 2: NEW added; with ``close`` X merged and the unit under it abolished; with
    ``move`` the province of Tây Ninh off the hub."""
    prefix = world.exchange.names.prefix
    changes: dict[str, dict[str, Any]] = {}
    if close:
        changes |= MERGED | {ABOLISHED: {"status": "closed", "closes": MERGE}}
    if move:
        changes[MOVED] = {
            "connection": "direct",
            "hub": None,
            "broker_account": f"{prefix}-h53",
        }
    path = write_version(world.root / name, world.exchange.directory, 2, changes)
    data = json.loads(path.read_text("utf-8"))
    data["agencies"] = [{k: v for k, v in a.items() if v is not None} for a in data["agencies"]]
    data["agencies"].append(
        {
            "organ_code": NEW,
            "name": "Cục mới",
            "connection": "direct",
            "broker_account": f"{prefix}-new",
        }
    )
    path.write_text(json.dumps(data, ensure_ascii=False), "utf-8")
    return path


async def started(
    world: World, monkeypatch: pytest.MonkeyPatch, at: datetime, name: str, **changes: bool
) -> tuple[Names, Path]:
    """A router running version 1 at ``at`` (apply's clock too), and ``next_version``."""
    monkeypatch.setattr(directory_cli, "clock", lambda: at)
    await world.start_router("a")
    return world.exchange.names, next_version(world, name, **changes)


async def broker_state(world: World) -> tuple[list[str], set[str], list[tuple[str, str, str]]]:
    management = ManagementClient.from_env()
    prefix = f"{world.exchange.names.prefix}."
    return (
        await management.queue_names(prefix=prefix),
        {u for u in await management.user_names() if u.startswith(prefix[:-1])},
        sorted(await management.bindings_to_queues(prefix=prefix)),
    )


async def depth_reported(queue: str, count: int) -> None:
    """Wait for the management API's sampled count (it lags publishes by seconds)."""
    management = ManagementClient.from_env()
    for _ in range(200):
        if await management.queue_message_count(queue) == count:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"{queue} never showed {count} messages")


async def test_a_new_agency_gets_its_inbox_and_account_and_receives_through_the_router(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(directory_cli, "clock", lambda: IN_WINDOW)
    router = await world.start_router("a")
    new = next_version(world, "new.json")
    names = world.exchange.names
    result = await world.apply(new, *WINDOW)
    assert result.exit_code == 0, result.output
    assert f"add queue      {names.inbox_queue(NEW)}" in result.stdout
    assert f"add account    {names.prefix}-new ({NEW})" in result.stdout
    assert "1 added" in result.stdout
    await until(lambda: router.directory.version.id == load_directory(new).version.id, "take-up")

    # The account exactly as `backbone provision` makes it.
    user = f"{names.prefix}-new"
    [spec] = [
        s for s in plan_accounts(load_directory(new), names, router_user="-") if s.user == user
    ]
    management = ManagementClient.from_env()
    # Declared as the routers declare inboxes (their delivery limit), so theirs never clash.
    inbox = names.inbox_queue(NEW)
    [planned] = [q for q in plan_topology(load_directory(new), names).queues if q.name == inbox]
    assert await management.queue_arguments(inbox) == planned.arguments
    assert await management.permissions_of(user) == (spec.configure, spec.write, spec.read)
    assert await management.user_limits(user) == spec.limits.definition()
    # Its software connects with the password written for it and receives a document.
    password = yaml.safe_load(world.passwords.read_text())[user]
    body = world.exchange.seal_document(G22, [NEW], 1)
    await world.exchange.submit(body, as_account=world.exchange.account_of(G22))
    connection = await aio_pika.connect(account_url(world.exchange.amqp_url, user, password))
    async with connection:
        fetched = await (await connection.channel()).get_queue(inbox, ensure=False)
        assert (await get_one(fetched)).body == body

    # Once in line, nothing more to change: a second run (the same version again) is a no-op.
    again = await world.apply(new, *WINDOW, running=new)
    assert again.exit_code == 0, again.output
    assert "broker: 0 queues, 0 bindings, 0 accounts to add; 0 bindings" in again.stdout
    assert "broker in line: 0 changes made" in again.stdout


async def test_a_closed_agency_goes_once_drained_and_what_waits_is_kept_and_listed(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    await world.start_router("a")
    names, _management = world.exchange.names, ManagementClient.from_env()
    for n in range(2):  # two documents wait in X's inbox
        await world.send(n, to=X)
    await depth_reported(names.inbox_queue(X), 2)
    x_account, unit_account = world.exchange.account_of(X), world.exchange.account_of(ABOLISHED)
    new = next_version(world, "closed.json", close=True)

    # Within the window both stay, listed, whatever they hold.
    monkeypatch.setattr(directory_cli, "clock", lambda: IN_WINDOW)
    checked = await world.apply(new, "--check", *WINDOW)
    assert checked.exit_code == 0, checked.output
    assert f"kept: {names.inbox_queue(ABOLISHED)}, closed; its transition window ends " in (
        checked.stdout
    )

    monkeypatch.setattr(directory_cli, "clock", lambda: AFTER_WINDOW)
    result = await world.apply(new, *WINDOW)
    assert result.exit_code == 0, result.output
    assert f"remove queue   {names.inbox_queue(ABOLISHED)} (empty)" in result.stdout
    assert f"remove account {unit_account} ({ABOLISHED})" in result.stdout
    assert f"kept: {names.inbox_queue(X)}, 2 documents waiting" in result.stdout
    queues, users, _ = await broker_state(world)
    assert names.inbox_queue(ABOLISHED) not in queues
    assert names.events_queue(ABOLISHED) not in queues
    assert unit_account not in users
    assert names.inbox_queue(X) in queues
    assert x_account in users  # it may still fetch them
    assert len(await world.exchange.drain(names.inbox_queue(X), expect=2)) == 2

    await depth_reported(names.inbox_queue(X), 0)
    pruned = await world.apply(new, *WINDOW, running=new)
    assert pruned.exit_code == 0, pruned.output
    assert f"remove queue   {names.inbox_queue(X)} (empty)" in pruned.stdout
    queues, users, _ = await broker_state(world)
    assert names.inbox_queue(X) not in queues
    assert x_account not in users
    again = await world.apply(new, *WINDOW, running=new)
    assert "broker in line: 0 changes made" in again.stdout, again.output


async def test_the_broker_never_deletes_a_queue_that_holds_documents(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Counted empty by the management API, but a document arrived since: the queue's own
    # count, asked just before deleting, keeps it and its account.
    names, new = await started(world, monkeypatch, AFTER_WINDOW, "closed.json", close=True)
    management = ManagementClient.from_env()
    real_depths = management.queue_depths

    async def stale(**kwargs: Any) -> dict[str, int]:
        return dict.fromkeys(await real_depths(**kwargs), 0)

    monkeypatch.setattr(ManagementClient, "queue_depths", lambda self, **kw: stale(**kw))
    await world.send(1, to=X)
    await asyncio.sleep(0.3)
    result = await world.apply(new, *WINDOW)
    assert result.exit_code == 0, result.output
    assert f"kept: {names.inbox_queue(X)}, 1 document waiting" in result.stdout
    queues, users, _ = await broker_state(world)
    assert names.inbox_queue(X) in queues
    assert world.exchange.account_of(X) in users
    assert len(await world.exchange.drain(names.inbox_queue(X), expect=1)) == 1


async def test_an_agency_moved_off_its_hub_takes_its_bindings_with_it_and_is_listed(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    names, new = await started(world, monkeypatch, IN_WINDOW, "moved.json", move=True)
    result = await world.apply(new, *WINDOW)
    assert result.exit_code == 0, result.output
    assert f"moved        {MOVED}: hub {HUB} → direct" in result.stdout
    assert "1 moved" in result.stdout
    assert "remove binding" in result.stdout
    # The hub's and the province's bindings on the broker are now exactly the new plan's.
    plan = plan_topology(load_directory(new), names)
    _, _, bindings = await broker_state(world)
    for system in (HUB, MOVED):
        queue = names.inbox_queue(system)
        planned = {(b.exchange, b.routing_key) for b in plan.bindings if b.queue == queue}
        assert {(x, key) for x, q, key in bindings if q == queue} == planned, system

    body = await world.send(1, to=MOVED)
    [got] = await world.exchange.drain(names.inbox_queue(MOVED), expect=1)
    assert got.body == body
    assert await world.exchange.drain(names.inbox_queue(HUB), expect=0, timeout=0.5) == []


async def test_check_shows_the_broker_changes_and_makes_none(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    names, new = await started(world, monkeypatch, AFTER_WINDOW, "all.json", close=True, move=True)
    before = await broker_state(world)
    result = await world.apply(new, "--check", *WINDOW)
    assert result.exit_code == 0, result.output
    assert f"add queue      {names.inbox_queue(NEW)}" in result.stdout
    assert f"add account    {names.prefix}-h53 ({MOVED})" in result.stdout
    assert f"remove queue   {names.inbox_queue(ABOLISHED)} (empty)" in result.stdout
    assert "remove binding" in result.stdout
    assert "nothing changed on the broker (--check)" in result.stdout
    assert "nothing published (--check)" in result.stdout
    assert await broker_state(world) == before


async def adapter_of(world: World, system: str, name: str) -> AdapterClient:
    """``system``'s adapter (every agency it serves in version 1) on its own copy of the
    running version, on the test clock, until the world closes."""
    own = world.root / f"{name}.json"
    own.write_bytes(world.running.read_bytes())
    deployment = Deployment.without_router(world.exchange, world.root / name)
    config = deployment.config(system).model_copy(update={"directory": own})
    return await world.services.enter_async_context(AdapterClient(config, clock=lambda: IN_WINDOW))


async def test_an_adapter_warns_once_of_each_served_agency_a_version_moves_or_closes(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, new = await started(world, monkeypatch, IN_WINDOW, "both.json", close=True, move=True)
    hub = await adapter_of(world, HUB, "hub")
    x = await adapter_of(world, X, "x")
    unit = await adapter_of(world, ABOLISHED, "unit")
    g22 = await adapter_of(world, G22, "g22")  # serves nothing the version changes
    assert MOVED in hub.served
    assert len(hub.served) > 1
    new_id = load_directory(new).version.id

    with structlog.testing.capture_logs() as lines:
        result = await world.apply(new, *WINDOW)
        assert result.exit_code == 0, result.output
        for client in (hub, x, unit, g22):
            await until(lambda c=client: c.directory.version.id == new_id, client.system)

    warned = [line for line in lines if line["event"] == "adapter.served_agency_changed"]
    assert all(line["log_level"] == "warning" for line in warned)
    assert all(line["version"] == new_id for line in warned)
    by_agency = {line["agency"]: line for line in warned}
    assert len(warned) == len(by_agency) == 3  # one each, none for the hub's other agencies
    assert (by_agency[MOVED]["system"], by_agency[MOVED]["change"]) == (HUB, "moved")
    assert by_agency[MOVED]["now_served_by"] == (MOVED,)  # its own connection now
    assert (by_agency[X]["system"], by_agency[X]["change"]) == (X, "closed")
    assert (by_agency[X]["now_served_by"], by_agency[X]["successors"]) == ((Y,), (Y,))
    assert by_agency[X]["closes"] == MERGE
    assert (by_agency[ABOLISHED]["change"], by_agency[ABOLISHED]["closes"]) == ("closed", MERGE)
    assert "now_served_by" not in by_agency[ABOLISHED]  # abolished: nobody takes over
    # The hub's next version changes nothing more for it: no second warning.
    taken = load_directory(new)
    assert served_changes(taken, taken, hub.served, system=HUB, at=IN_WINDOW) == []
