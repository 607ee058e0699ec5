"""The chunked form's hostile cases (``tests/hostile/chunked_cases.py``) against the real
broker and router: each hostile message is refused with its precise reason, its sender is
told, it is quarantined and never reaches the recipient's inbox, and the genuine messages
around it are forwarded as if it had not come."""

from __future__ import annotations

import asyncio
import re
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from aio_pika.abc import AbstractIncomingMessage
from prometheus_client import REGISTRY

from backbone.envelope import read_frame
from backbone.errors import Reason
from backbone.wire.events import EventType, decode_events
from backbone.wire.names import H_REASON
from tests.hostile.chunked_build import (
    OTHER,
    RECIPIENT,
    SENDER,
    ChunkedKit,
    attempt,
    missing_builders,
    publish,
)
from tests.hostile.chunked_cases import CHUNKED_CASES, ChunkedCase
from tests.hostile.observe import WAIT, event, quarantined, take
from tests.support import Deployment, open_deployment

pytestmark = pytest.mark.broker

BUILT = [case for case in CHUNKED_CASES if case.source.startswith("build:")]
HALF_SENT = 2000


@dataclass
class World:
    deployment: Deployment
    kit: ChunkedKit


@pytest.fixture(scope="module")
async def world(amqp_url: str, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[World]:
    root = tmp_path_factory.mktemp("chunked-hostile")
    async with open_deployment(amqp_url, root) as deployment:
        yield World(deployment, ChunkedKit(deployment.exchange, root))


def test_every_chunked_case_is_built_here_or_proven_by_a_test_that_exists() -> None:
    assert len({case.id for case in CHUNKED_CASES}) == len(CHUNKED_CASES)
    assert missing_builders(BUILT) == []
    root = Path(__file__).parent.parent
    for case in CHUNKED_CASES:
        if case.source.startswith("build:"):
            continue
        file, _, name = case.source.removeprefix("test:").partition("::")
        source = (root / file).read_text(encoding="utf-8")
        assert re.search(rf"^(async )?def {name}\(", source, re.MULTILINE), case.id


@pytest.mark.parametrize("case", BUILT, ids=[case.id for case in BUILT])
async def test_a_hostile_chunked_message_is_refused_with_its_reason_and_nothing_else_moves(
    case: ChunkedCase, world: World
) -> None:
    exchange = world.deployment.exchange
    made = attempt(case, world.kit)
    for sent in made.before:
        await publish(exchange, sent)
    await publish(exchange, made.hostile)

    told = await event(exchange, made.told, EventType.REJECTED, made.envelope_id)
    assert told.reason == case.expect, told
    for words in case.mentions:
        assert words in (told.message or ""), told.message
    kept = await quarantined(exchange, made.hostile.body)
    assert (kept.headers or {}).get(H_REASON) == case.expect

    for sent in made.after:
        await publish(exchange, sent)
    genuine = [sent.body for sent in (*made.before, *made.after)]
    forwarded = await exchange.drain(
        exchange.inbox_of(RECIPIENT), expect=len(genuine), timeout=WAIT
    )
    assert sorted(message.body for message in forwarded) == sorted(genuine)


async def test_thousands_of_half_sent_documents_are_capped_and_the_router_goes_on(
    amqp_url: str, tmp_path: Path
) -> None:
    async with open_deployment(amqp_url, tmp_path) as deployment:
        exchange = deployment.exchange
        kit = ChunkedKit(exchange, tmp_path)
        headers = kit.half_sent(kit.seal(), HALF_SENT)
        cap = deployment.router.options.max_open_chunked_per_sender
        for sent in headers:
            await publish(exchange, sent)

        answers: Counter[tuple[EventType, Reason | None]] = Counter()
        refusals: list[str] = []

        def counted(message: AbstractIncomingMessage) -> bool:
            for one in decode_events(message.body):
                if one.party == SENDER:
                    answers[(one.type, one.reason)] += 1
                    if one.type is EventType.REJECTED:
                        refusals.append(one.message or "")
            return sum(answers.values()) >= HALF_SENT

        queue = exchange.names.events_operators_queue
        await take(exchange, queue, counted, f"an answer to each of {HALF_SENT}", wait=180)
        assert answers == {
            (EventType.ROUTED, None): cap,
            (EventType.REJECTED, Reason.TOO_MANY_OPEN_DOCUMENTS): HALF_SENT - cap,
        }
        assert all("max_open_chunked_per_sender" in text for text in refusals)
        # Nothing else moves: the sender's single-message documents, and another agency's
        # chunked ones, are routed as before.
        single = exchange.seal_document(SENDER, [RECIPIENT], 1)
        await exchange.submit(single, as_account=exchange.account_of(SENDER))
        await event(exchange, SENDER, EventType.ROUTED, read_frame(single).header.envelope_id)
        other = kit.seal(OTHER)
        for sent in (*other.messages(), *other.messages(range(len(other.chunks)))):
            await publish(exchange, sent)
        await event(exchange, OTHER, EventType.ROUTED, other.envelope_id)


async def test_an_account_flooding_chunks_of_no_header_is_bounded_and_another_still_waits(
    amqp_url: str, tmp_path: Path
) -> None:
    bound, wait = 3, 10.0
    async with open_deployment(
        amqp_url,
        tmp_path,
        router_options={
            "max_waiting_chunks_per_account": bound,
            "chunk_header_wait_seconds": wait,
        },
    ) as deployment:
        exchange = deployment.exchange
        kit = ChunkedKit(exchange, tmp_path)
        orphans = [kit.seal() for _ in range(3)]  # their headers never sent: 12 chunks
        flood = [sent for orphan in orphans for sent in orphan.messages(range(4))]
        other = kit.seal(OTHER)
        refused_before = REGISTRY.get_sample_value("vdx_chunks_waiting_refused_total") or 0.0
        loop = asyncio.get_running_loop()
        started = loop.time()
        for sent in flood:
            await publish(exchange, sent)

        answers: Counter[Reason | None] = Counter()
        at: dict[Reason | None, float] = {}
        refusals: list[str] = []
        named: set[str | None] = set()

        def counted_until(total: int) -> Callable[[AbstractIncomingMessage], bool]:
            def counted(message: AbstractIncomingMessage) -> bool:
                for one in decode_events(message.body):
                    if one.party == SENDER and one.type is EventType.REJECTED:
                        answers[one.reason] += 1
                        at[one.reason] = loop.time() - started
                        refusals.append(one.message or "")
                        named.add(one.envelope_id)
                        named.add(one.envelope_id)
                return sum(answers.values()) >= total

            return counted

        queue = exchange.names.events_operators_queue
        past = len(flood) - bound
        await take(exchange, queue, counted_until(past), f"{past} refusals", wait=WAIT)
        waiting = REGISTRY.get_sample_value("vdx_chunks_waiting")  # the bound's worth circles
        # Meanwhile another agency's document, two chunks before its header: they wait for it.
        for sent in (*other.messages([0, 1]), *other.messages(), *other.messages([2, 3])):
            await publish(exchange, sent)
        await take(exchange, queue, counted_until(len(flood)), "the rest refused", wait=60)
        waited = REGISTRY.get_sample_value("vdx_chunks_waiting")
        forwarded = await exchange.drain(exchange.inbox_of(RECIPIENT), expect=5, timeout=WAIT)
        kept = await quarantined(exchange, flood[-1].body)  # the last is past the bound

    # The bound's worth waits its time and is then foreign; the rest is refused at once.
    assert answers == {
        Reason.TOO_MANY_WAITING_CHUNKS: len(flood) - bound,
        Reason.CHUNK_FOREIGN: bound,
    }
    assert at[Reason.TOO_MANY_WAITING_CHUNKS] < wait / 2, at
    assert (waiting, waited) == (bound, 0)
    assert at[Reason.CHUNK_FOREIGN] >= wait, at
    too_many = [text for text in refusals if "max_waiting_chunks_per_account" in text]
    assert len(too_many) == len(flood) - bound, refusals
    assert (kept.headers or {}).get(H_REASON) == Reason.TOO_MANY_WAITING_CHUNKS
    assert named == {orphan.envelope_id for orphan in orphans}  # each refusal names its own
    refused = REGISTRY.get_sample_value("vdx_chunks_waiting_refused_total") or 0.0
    assert refused - refused_before == len(flood) - bound
    # The other account's early chunks waited and passed, with the rest of its document.
    genuine = [sent.body for sent in (*other.messages(), *other.messages(range(4)))]
    assert sorted(message.body for message in forwarded) == sorted(genuine)
