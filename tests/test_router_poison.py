"""The router's own count of failed attempts (``backbone.router.retries``): an envelope
that keeps failing is dead-lettered by the router after ``delivery_limit`` attempts with the
broker's delivery limit switched off, a passing failure is retried and routed, and an
agency cannot preset the count or the publisher it is checked as."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aio_pika
import pytest
from aio_pika.abc import AbstractIncomingMessage, FieldValue

from backbone.broker.management import ManagementClient
from backbone.envelope import read_frame
from backbone.errors import Reason
from backbone.router.pipeline import Decision, Pipeline
from backbone.router.policy import RoutingPolicy
from backbone.router.retries import (
    Attempts,
    broker_login,
    dead_letter_message,
    is_router_dead_letter,
    read_attempts,
    retry_message,
)
from backbone.router.service import Router, RouterOptions
from backbone.store import open_store
from backbone.wire import H_ATTEMPTS, H_MESSAGE, H_PUBLISHER, H_REASON
from backbone.wire.events import EventType
from tests.support import Exchange

G22, H41 = "000.00.00.G22", "000.00.00.H41"
LIMIT = 3


class _Delivery:
    """What :func:`read_attempts` reads of a delivery: its ``user_id`` and headers."""

    def __init__(self, user_id: str | None, headers: dict[str, FieldValue]) -> None:
        self.user_id = user_id
        self.headers = headers


def _read(user_id: str | None, headers: dict[str, FieldValue]) -> Attempts:
    delivery: Any = _Delivery(user_id, headers)
    return read_attempts(delivery, router_account="router")


# -- the count and who is trusted ---------------------------------------------------------


def test_a_first_receipt_has_no_attempts_and_its_publisher_is_the_broker_checked_user_id() -> None:
    assert _read("agency-g22", {}) == Attempts(0, "agency-g22")
    assert _read(None, {}) == Attempts(0, None)


def test_an_agency_presetting_the_attempts_and_publisher_headers_is_ignored() -> None:
    forged: dict[str, FieldValue] = {H_ATTEMPTS: 99, H_PUBLISHER: "agency-h41"}
    assert _read("agency-g22", forged) == Attempts(0, "agency-g22")
    assert _read(None, forged) == Attempts(0, None)  # no user_id: not the router's either


def test_the_routers_own_copy_is_read_from_its_headers() -> None:
    assert _read("router", {H_ATTEMPTS: 2, H_PUBLISHER: "agency-g22"}) == Attempts(2, "agency-g22")


def test_the_routers_account_without_the_attempts_header_is_a_first_receipt() -> None:
    assert _read("router", {H_PUBLISHER: "agency-g22"}) == Attempts(0, "router")


@pytest.mark.parametrize("value", ["2", -1, 0, True, 2.0])
def test_a_count_that_is_not_a_positive_integer_reads_as_none(value: FieldValue) -> None:
    assert _read("router", {H_ATTEMPTS: value, H_PUBLISHER: "a"}) == Attempts(0, "a")


def test_the_copy_carries_only_the_routers_headers_persistent_under_its_account() -> None:
    message = retry_message(b"body", Attempts(2, "agency-g22"), router_account="router")
    assert message.headers == {H_ATTEMPTS: 2, H_PUBLISHER: "agency-g22"}
    assert message.user_id == "router"
    assert message.delivery_mode == aio_pika.DeliveryMode.PERSISTENT
    assert message.body == b"body"
    again = retry_message(b"body", Attempts(2, "agency-g22"), router_account="router")
    assert again.message_id != message.message_id  # returns are matched by it


def test_the_dead_lettered_copy_says_why_and_is_recognised_as_the_routers() -> None:
    error = RuntimeError("simulated bug")
    message = dead_letter_message(b"body", Attempts(5, "agency-g22"), error, router_account="r")
    headers = message.headers
    assert headers[H_REASON] == Reason.POISON.value
    assert headers[H_ATTEMPTS] == 5
    assert headers[H_PUBLISHER] == "agency-g22"
    assert headers[H_MESSAGE] == "processing failed 5 times; the last: RuntimeError: simulated bug"
    delivered: Any = _Delivery(message.user_id, dict(headers))
    assert is_router_dead_letter(delivered, router_account="r")
    forged: Any = _Delivery("agency-g22", dict(headers))
    assert not is_router_dead_letter(forged, router_account="r")


def test_the_routers_account_is_its_login_or_guest() -> None:
    assert broker_login("amqp://vdx-router:secret@broker:5672/vdx") == "vdx-router"
    assert broker_login("amqps://r%40x:s@broker/") == "r@x"
    assert broker_login("amqp://broker/") == "guest"


# -- on the broker, with its delivery limit switched off ----------------------------------


@pytest.fixture
async def deployment(amqp_url: str, tmp_path: Path) -> AsyncIterator[tuple[Exchange, Router]]:
    """A router whose inbound queue and inboxes carry no ``x-delivery-limit``: on this
    broker (3.10) nothing but the router's own count ends a failing envelope."""
    exchange = await Exchange.create(amqp_url, tmp_path / "pki")
    store = await open_store(f"sqlite+aiosqlite:///{tmp_path / 'router.db'}")
    pipeline = Pipeline(
        directory=exchange.directory,
        validator=exchange.pki.validator(),
        store=store,
        names=exchange.names,
        policy=RoutingPolicy(),
    )
    router = Router(
        RouterOptions(
            amqp_url=amqp_url,
            names=exchange.names,
            delivery_limit=LIMIT,
            broker_delivery_limit=False,
        ),
        directory=exchange.directory,
        pipeline=pipeline,
        store=store,
    )
    await router.start()
    try:
        yield exchange, router
    finally:
        await router.stop()
        await exchange.close()


def _failing(
    router: Router, monkeypatch: pytest.MonkeyPatch, failures: dict[bytes, int]
) -> Counter[bytes]:
    """Make processing of each body in ``failures`` fail that many times (a bug, the store);
    returns how often each body was processed, with the publisher it was checked as."""
    seen: Counter[bytes] = Counter()
    evaluate = router.pipeline.evaluate

    async def sometimes_failing(
        body: bytes, *, user_id: str | None, redelivered: bool = False
    ) -> Decision:
        seen[body] += 1
        if seen[body] <= failures.get(body, 0):
            raise RuntimeError(f"simulated failure {seen[body]}")
        return await evaluate(body, user_id=user_id, redelivered=redelivered)

    monkeypatch.setattr(router.pipeline, "evaluate", sometimes_failing)
    return seen


async def _submit_with_headers(
    exchange: Exchange, body: bytes, *, as_account: str, headers: dict[str, FieldValue]
) -> None:
    channel = await exchange.channel(as_account)
    submit = await channel.get_exchange(exchange.names.submit_exchange, ensure=False)
    await submit.publish(
        aio_pika.Message(
            body,
            headers=headers,
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            user_id=as_account,
            message_id=str(uuid.uuid4()),
        ),
        routing_key=exchange.names.submit_routing_key,
    )


def _dead_letter(messages: list[AbstractIncomingMessage]) -> AbstractIncomingMessage:
    assert len(messages) == 1, [m.headers for m in messages]
    return messages[0]


@pytest.mark.broker
async def test_with_no_broker_delivery_limit_the_router_dead_letters_after_its_own_count(
    deployment: tuple[Exchange, Router], monkeypatch: pytest.MonkeyPatch
) -> None:
    exchange, router = deployment
    arguments = await ManagementClient.from_env().queue_arguments(exchange.names.inbound_queue)
    assert "x-delivery-limit" not in arguments  # nothing but the router can end it
    poison = exchange.seal_document(G22, [H41], 1)
    healthy = exchange.seal_document(G22, [H41], 2)
    seen = _failing(router, monkeypatch, {poison: 1000})
    account = exchange.account_of(G22)
    await exchange.submit(poison, as_account=account)
    await exchange.submit(healthy, as_account=account)

    assert [m.body for m in await exchange.drain(exchange.inbox_of(H41), expect=1)] == [healthy]
    dead = _dead_letter(await exchange.drain(exchange.names.dead_letter_parked, expect=1))
    assert dead.body == poison
    assert dead.headers[H_ATTEMPTS] == LIMIT
    assert dead.headers[H_PUBLISHER] == account
    assert dead.headers[H_REASON] == Reason.POISON.value
    assert "x-death" not in dead.headers  # the router dead-lettered it, not the broker
    assert seen[poison] == LIMIT  # processed exactly delivery_limit times, never again
    events = await exchange.events(G22, expect=2)
    (dead_lettered,) = [e for e in events if e.type is EventType.DEAD_LETTERED]
    assert dead_lettered.reason is Reason.POISON
    assert dead_lettered.document_id == read_frame(poison).header.document_id
    assert (
        dead_lettered.message == f"processing failed {LIMIT} times; kept in the dead-letter queue"
    )


@pytest.mark.broker
async def test_a_failure_that_passes_is_retried_and_routed_once(
    deployment: tuple[Exchange, Router], monkeypatch: pytest.MonkeyPatch
) -> None:
    exchange, router = deployment
    body = exchange.seal_document(G22, [H41], 3)
    seen = _failing(router, monkeypatch, {body: LIMIT - 1})
    await exchange.submit(body, as_account=exchange.account_of(G22))

    assert [m.body for m in await exchange.drain(exchange.inbox_of(H41), expect=1)] == [body]
    assert seen[body] == LIMIT
    assert await exchange.drain(exchange.names.dead_letter_parked, expect=0, timeout=0.5) == []
    events = await exchange.events(G22, expect=1)
    assert [e.type for e in events] == [EventType.ROUTED]


@pytest.mark.broker
async def test_an_agency_cannot_preset_its_attempts(
    deployment: tuple[Exchange, Router], monkeypatch: pytest.MonkeyPatch
) -> None:
    exchange, router = deployment
    poison = exchange.seal_document(G22, [H41], 4)
    seen = _failing(router, monkeypatch, {poison: 1000})
    account = exchange.account_of(G22)
    await _submit_with_headers(
        exchange, poison, as_account=account, headers={H_ATTEMPTS: LIMIT - 1}
    )

    dead = _dead_letter(await exchange.drain(exchange.names.dead_letter_parked, expect=1))
    assert dead.body == poison
    assert seen[poison] == LIMIT  # every attempt, not one


@pytest.mark.broker
async def test_an_agency_cannot_name_another_publisher_to_be_checked_as(
    deployment: tuple[Exchange, Router],
) -> None:
    exchange, _ = deployment
    forged = exchange.seal_document(G22, [H41], 5)
    # H41's account publishes G22's envelope and claims G22's account published it.
    await _submit_with_headers(
        exchange,
        forged,
        as_account=exchange.account_of(H41),
        headers={H_ATTEMPTS: 1, H_PUBLISHER: exchange.account_of(G22)},
    )

    quarantined = await exchange.drain(exchange.names.quarantine_queue, expect=1)
    assert [m.headers[H_REASON] for m in quarantined] == [Reason.PUBLISHER_MISMATCH.value]
    assert [m.headers[H_PUBLISHER] for m in quarantined] == [exchange.account_of(H41)]
    assert await exchange.drain(exchange.inbox_of(H41), expect=0, timeout=0.5) == []
