"""The router killed (alone, then restarted; one of two replicas sharing the work), and a
poison envelope the router cannot process."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest

from backbone.broker.management import ManagementClient
from backbone.envelope import read_frame
from backbone.errors import Reason
from backbone.router.topology import DEFAULT_DELIVERY_LIMIT
from backbone.wire import H_ATTEMPTS, H_PUBLISHER
from backbone.wire.events import EventType
from tests.faults.harness import (
    DOCUMENTS,
    G22,
    RouterProcess,
    Run,
    find_event,
    postgres_database,
    run_with_fault,
)
from tests.support import Exchange, document_id

pytestmark = [pytest.mark.faults, pytest.mark.broker]


async def test_router_killed_with_sigkill_mid_run_and_restarted_loses_and_duplicates_nothing(
    shared_exchange: Exchange, tmp_path: Path
) -> None:
    run = Run(shared_exchange, tmp_path)
    router = RouterProcess(shared_exchange, tmp_path)

    async def kill_and_restart() -> str:
        router.kill()
        await asyncio.sleep(1)
        router.start()
        await router.started()
        return "restarted after 1s"

    outcome = await run_with_fault(run, [router], kill_and_restart)
    result = run.result("router kill -9, restarted", f"killed at {outcome.at_fault} delivered")
    outcome.check(result, logs=router.tail())


async def test_one_of_two_routers_sharing_a_postgresql_store_killed_the_other_finishes_the_work(
    shared_exchange: Exchange, tmp_path: Path
) -> None:
    run = Run(shared_exchange, tmp_path)
    async with postgres_database() as store_url:
        doomed, survivor = (
            RouterProcess(shared_exchange, tmp_path, name=name, store_url=store_url)
            for name in ("router-a", "router-b")
        )
        routed_before: list[int] = []

        async def kill_one() -> str:
            routed_before.extend(router.count("router.routed") for router in (doomed, survivor))
            doomed.kill()
            return "routed by each before: {}/{}".format(*routed_before)

        outcome = await run_with_fault(run, [doomed, survivor], kill_one)
    result = run.result("two routers, one kill -9", f"at {outcome.at_fault}; {outcome.note}")
    assert all(routed_before), "both replicas took a share of the work before the kill"
    assert survivor.count("router.routed") > routed_before[1], "the survivor took over"
    outcome.check(result, router_codes=[None, 0], logs=survivor.tail())


@pytest.mark.parametrize(
    "broker_limit",
    [pytest.param(False, id="broker-limit-off"), pytest.param(True, id="broker-limit-default")],
)
async def test_a_poison_envelope_is_dead_lettered_with_an_event_and_the_router_goes_on(
    shared_exchange: Exchange, tmp_path: Path, broker_limit: bool
) -> None:
    """Twice: with no ``x-delivery-limit`` on any queue (as on 3.10 without one declared, or
    4.3 where nacks are not counted, nothing but the router's own count can end the poison),
    and with the default one the router declares."""
    run = Run(shared_exchange, tmp_path)
    poison_id = document_id(G22, run.first_number + DOCUMENTS)  # beyond the healthy ones
    router = RouterProcess(
        shared_exchange,
        tmp_path,
        command=[sys.executable, "-m", "tests.faults.poisoned_router", poison_id],
        settings={"broker_delivery_limit": broker_limit},
    )

    async def drop_the_poison() -> str:
        run.drop_documents([DOCUMENTS])
        return "one poison document dropped"

    outcome = await run_with_fault(run, [router], drop_the_poison)
    names = shared_exchange.names
    declared = await inbound_delivery_limit(shared_exchange)
    dead = await shared_exchange.drain(names.dead_letter_parked, expect=1, timeout=30)
    event = await find_event(
        shared_exchange, G22, EventType.DEAD_LETTERED, document_id=poison_id, timeout=60
    )
    failures = router.count("router.processing_failed")
    log = router.log.read_text()
    dead_lettered_at = log.find('"event": "router.dead_lettered"')
    routed_after = log[dead_lettered_at:].count('"event": "router.routed"')
    result = run.result(
        f"poison message, broker delivery limit {declared or 'off'}",
        f"+1 poison at {outcome.at_fault}: dead-lettered by the router after {failures} "
        f"attempts, event sent; {routed_after} envelopes routed after it",
    )
    assert declared == (DEFAULT_DELIVERY_LIMIT if broker_limit else None)
    assert dead_lettered_at >= 0, "the router logged no dead-lettering"
    assert routed_after > 0, "the router routed nothing after the poison"
    assert [read_frame(m.body).header.document_id for m in dead] == [poison_id]
    # The router's own count ended it, not the broker's (which would add x-death).
    assert dead[0].headers[H_ATTEMPTS] == DEFAULT_DELIVERY_LIMIT == failures
    assert "x-death" not in dead[0].headers
    assert dead[0].headers[H_PUBLISHER] == shared_exchange.account_of(G22)
    assert event.reason == Reason.POISON
    assert poison_id not in run.delivered_documents()
    outcome.check(result, logs=router.tail())


async def inbound_delivery_limit(exchange: Exchange) -> int | None:
    """The broker delivery limit in force on the inbound queue: its ``x-delivery-limit``
    argument, or a policy's ``delivery-limit`` (None when neither sets one)."""
    management = ManagementClient.from_env()
    queue = exchange.names.inbound_queue
    arguments = await management.queue_arguments(queue)
    _, policy = await management.queue_policy(queue)
    limit = arguments.get("x-delivery-limit", policy.get("delivery-limit"))
    return int(limit) if limit is not None else None
