"""The 2025 reform applied live on the real broker while documents flow (docs/directory.md,
"Worked example: the 2025 reform"): a synthetic country of 3 provinces in the suite (the whole
country, 63 provinces and the ministries, runs this same code in ``make faults``:
tests/faults/test_reform_scenario.py), its reform published with `backbone directory apply`
(which declares the new communes' inboxes and bindings itself first) in the middle of a stream
of documents that goes on until 12 more went after the router took it up. Each document is
decided against exactly one version: before it, delivered as addressed; after it, to a merged
code forwarded to the heir, to a split commune refused with its candidates; none lost, the
sender told each time.
The routers' clock is injected: the day after the reform."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import pytest

from backbone.directory import Directory, Share, dump_directory
from backbone.directory.reform import reform_directory
from backbone.envelope import read_frame
from backbone.errors import Reason
from backbone.router import directory_cli
from backbone.wire.events import Event, EventType
from testkit.country import GOVERNMENT_OFFICE as G22
from testkit.country import country_directory
from tests.support import Exchange
from tests.test_directory_apply import NOW, World, opened_world, until

pytestmark = [pytest.mark.broker, pytest.mark.clock]


@asynccontextmanager
async def country_world(
    amqp_url: str, root: Path, provinces: int, *, ministries: bool = False
) -> AsyncIterator[World]:
    """A world whose exchange serves the synthetic country of ``provinces``."""
    exchange = await Exchange.create(
        amqp_url,
        root / "pki",
        directory=partial(country_directory, provinces=provinces, ministries=ministries),
    )
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(directory_cli, "clock", lambda: NOW)  # `directory apply` as the routers
        async with opened_world(exchange, root) as made:
            yield made


# 3 provinces in the suite: the whole country (12,500 agencies) loads the shared broker with
# thousands of bindings, too much beside clock-check's parallel runs; `make faults` runs it.
@pytest.fixture
async def world(amqp_url: str, tmp_path: Path) -> AsyncIterator[World]:
    async with country_world(amqp_url, tmp_path, 3) as made:
        yield made


async def decisions(world: World, ids: set[str]) -> list[Event]:
    """The sender's events until every envelope in ``ids`` is routed or refused."""
    events: list[Event] = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 30
    decided: set[str] = set()
    while not ids <= decided and loop.time() < deadline:
        events += await world.exchange.events(G22, expect=1, timeout=1)
        decided = {
            e.envelope_id or "" for e in events if e.type in (EventType.ROUTED, EventType.REJECTED)
        }
    return events


@dataclass(frozen=True)
class ReformRun:
    """What one live reform saw: counts over the documents sent, the seconds from the
    operator's apply to the router's taking it up."""

    agencies: int
    sent: int
    before_version: int  # decided on the old version: delivered as addressed
    forwarded: int
    refused: int
    delivered: int  # arrived in the inbox expected, each exactly once
    taken_up_seconds: float


async def test_a_reform_applied_while_documents_flow_forwards_merges_refuses_splits_loses_none(
    world: World,
) -> None:
    run = await apply_reform_while_documents_flow(world)
    print(
        f"\nreform live, {run.agencies} agencies: applied and taken up in "
        f"{run.taken_up_seconds:.1f} s; {run.sent} documents, {run.before_version} before the "
        f"version, {run.forwarded} forwarded, {run.refused} refused (split)"
    )


async def apply_reform_while_documents_flow(world: World) -> ReformRun:
    """The reform of ``world``'s country published while documents flow; asserts every
    decision (see the module's docstring) and returns the counts."""
    before = world.exchange.directory
    reformed = reform_directory(before.file.model_copy(update={"revision": 1}), seed=3)
    new_file = world.root / "reform.json"
    dump_directory(reformed.file, new_file)
    after = Directory(reformed.file)
    keeper, (closed_province, *_) = next(
        (k, others) for k, others in reformed.summary.merged_provinces.items() if others
    )
    closed = {a.organ_code: a for a in after if not a.active}
    in_closed = [a for a in closed.values() if str(a.organ_code).endswith(closed_province[-3:])]
    in_districts = [a for a in in_closed if a.organ_code.levels[1] >= "30"]
    district = next(a for a in in_districts if a.organ_code.level == 2)
    commune = next(  # merged into a new commune, HKK.NNN: its inbox is the new topology's
        a for a in in_districts if a.organ_code.level == 3 and a.successors[0].share is Share.FULL
    )
    split = next(a for a in closed.values() if len(a.successors) > 1)
    heir = {
        closed_province: keeper,
        str(district.organ_code): keeper,
        str(commune.organ_code): str(commune.successors[0].organ_code),
    }
    candidates = [str(s.organ_code) for s in split.successors]
    targets = [*heir, str(split.organ_code)]

    router = await world.start_router("a")
    old_id = router.directory.version.id
    sent: dict[str, tuple[str, bytes]] = {}  # envelope id → (addressed to, body)

    async def send(number: int) -> None:
        to = targets[number % len(targets)]
        body = await world.send(number, to=to)
        sent[read_frame(body).header.envelope_id] = (to, body)

    new_id = after.version.id
    numbers = iter(range(100_000))

    async def flow() -> None:
        """Documents every 20 ms, through the version's arrival, until 12 more went after
        the router took it up."""
        after_it = 0
        while after_it < 12:
            after_it += router.directory.version.id == new_id
            await send(next(numbers))
            await asyncio.sleep(0.02)

    sending = asyncio.create_task(flow())
    await asyncio.sleep(0.2)  # documents are flowing when the version arrives
    started = time.perf_counter()
    result = await world.apply(new_file)
    assert result.exit_code == 0, result.output
    await until(lambda: router.directory.version.id == new_id, "the router to take it up", 60)
    taken_up = time.perf_counter() - started
    await sending

    events = await decisions(world, set(sent))
    version = {
        e.envelope_id: e.directory_version
        for e in events
        if e.type in (EventType.ROUTED, EventType.REJECTED)
    }
    assert set(version) == set(sent)  # the sender told of each: none lost
    assert set(version.values()) <= {old_id, new_id}
    forwarded = {e.envelope_id: e for e in events if e.type is EventType.FORWARDED}
    rejected = {e.envelope_id: e for e in events if e.type is EventType.REJECTED}

    expected: dict[str, list[bytes]] = {}  # inbox → bodies
    for envelope_id, (to, body) in sent.items():
        if version[envelope_id] == old_id:  # decided before: delivered as addressed
            assert envelope_id not in forwarded
            assert envelope_id not in rejected
            expected.setdefault(world.exchange.inbox_of(to), []).append(body)
        elif to == str(split.organ_code):  # a split: refused, every candidate named
            event = rejected[envelope_id]
            assert event.reason is Reason.RECIPIENT_CLOSED
            assert event.message is not None
            assert all(code in event.message for code in candidates), event.message
        else:  # a merge: forwarded to the heir, the sender told the new address
            assert forwarded[envelope_id].recipients == (heir[to],)
            system = after.serving_system(heir[to]).system_id
            expected.setdefault(world.exchange.names.inbox_queue(system), []).append(body)
    assert sum(v == new_id for v in version.values()) >= 12
    assert {(e.reason, e.directory_version) for e in rejected.values()} == {
        (Reason.RECIPIENT_CLOSED, new_id)
    }
    for inbox, bodies in expected.items():
        arrived = await world.exchange.drain(inbox, expect=len(bodies))
        assert sorted(m.body for m in arrived) == sorted(bodies), inbox  # each exactly once
    return ReformRun(
        agencies=len(before),
        sent=len(sent),
        before_version=sum(v == old_id for v in version.values()),
        forwarded=len(forwarded),
        refused=len(rejected),
        delivered=sum(len(bodies) for bodies in expected.values()),
        taken_up_seconds=taken_up,
    )
