"""The hostile-input corpus (``tests/hostile/cases.py``) against the real broker, a router
and two drop-folder adapters: every case is refused with its reason where it can be seen,
its sender is told why, it is kept (failed/, quarantine, rejected/), and the worker that
refused it handles a valid document right after."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from adapters import AdapterClient, Refused
from adapters.dropfolder import DropFolder, DropFolderOptions
from backbone.edxml import EdxmlStatus, StatusCode
from backbone.envelope import read_frame
from backbone.errors import BackboneError, Reason
from backbone.pki.validation import CertificateValidator
from backbone.router.quarantine import DEFAULT_KEEP_BODY_BYTES
from backbone.wire.events import EventType
from backbone.wire.names import H_BODY_KEPT, H_REASON
from backbone.wire.quarantine import QuarantineRecord
from tests.hostile.build import (
    ADAPTER_DOCUMENT_LIMIT,
    HONEST,
    RECIPIENT,
    SHARED_EDXML,
    Kit,
    missing_builders,
    receive_input,
    router_input,
    send_input,
)
from tests.hostile.cases import CASES, DUPLICATE, Case, Layer
from tests.hostile.observe import WAIT, event, quarantined
from tests.support import Deployment, DevPki, make_pki, open_deployment

pytestmark = pytest.mark.broker

ROUTER_LIMIT = 1 << 20  # the router's envelope limit here, so "oversized" stays small
FAST = DropFolderOptions(poll_interval=0.05, retry_initial=0.05, retry_max=0.5, settle_seconds=0)


@dataclass
class World:
    deployment: Deployment
    kit: Kit
    outgoing: Path  # HONEST's drop folder
    incoming: Path  # RECIPIENT's drop folder
    services: list[tuple[DropFolder, asyncio.Task[None]]]

    def alive(self) -> None:
        for service, task in self.services:
            assert not task.done(), f"drop folder {list(service.folders)} stopped: {task}"


@pytest.fixture(scope="module")
async def world(amqp_url: str, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[World]:
    root = tmp_path_factory.mktemp("hostile")
    validators: list[CertificateValidator] = []

    def router_validator(pki: DevPki) -> CertificateValidator:
        validators.append(pki.validator())
        return validators[-1]

    async with open_deployment(
        amqp_url,
        root,
        router_max_envelope_bytes=ROUTER_LIMIT,
        router_validator=router_validator,
    ) as deployment:
        kit = Kit(deployment.exchange, make_pki(root / "foreign"), validators[0], ROUTER_LIMIT)
        folders = {code: root / "folders" / code for code in (HONEST, RECIPIENT)}
        services = []
        for code in (HONEST, RECIPIENT):
            client = await deployment.adapter(
                code, auto_arrival=False, settings={"max_document_bytes": ADAPTER_DOCUMENT_LIMIT}
            )
            service = DropFolder(client, {code: folders[code]}, FAST)
            services.append((service, asyncio.create_task(service.run(), name=f"drop {code}")))
        world = World(deployment, kit, folders[HONEST], folders[RECIPIENT], services)
        try:
            yield world
        finally:
            for service, _ in services:
                service.stop()
            for _, task in services:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(task, 30)


def test_the_corpus_has_thirty_cases_or_more_covering_every_layer() -> None:
    assert len(CASES) >= 30
    assert len({case.id for case in CASES}) == len(CASES)
    assert {case.layer for case in CASES} == set(Layer)
    assert missing_builders() == []
    inputs = Path(__file__).parent / "hostile"
    for case in CASES:
        if case.source.startswith("inputs/"):
            assert (inputs / case.source).is_file(), case.id


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
async def test_hostile_input_is_refused_with_its_reason_kept_and_the_worker_goes_on(
    case: Case, world: World
) -> None:
    if case.layer is Layer.SEND:
        await _refused_before_sealing(case, world)
        await _a_valid_file_is_sent(world)
    elif case.layer is Layer.ROUTER:
        await _refused_by_the_router(case, world)
        await _a_valid_envelope_is_routed(world)
    else:
        await _refused_by_the_recipient(case, world)
        await _a_valid_document_is_delivered(world)
    world.alive()


# -- adapter-send ----------------------------------------------------------------------------


async def _refused_before_sealing(case: Case, world: World) -> None:
    if case.source.startswith("shared:") and not SHARED_EDXML.is_dir():
        pytest.skip(f"{SHARED_EDXML} is absent (it is always there in CI)")
    data = send_input(case, world.kit)
    name = f"{case.id}.edxml"
    _drop(world.outgoing, name, data)
    kept = world.outgoing / "failed" / name
    error_file = kept.with_name(f"{name}.error.json")
    # The error record is written first, the file moved beside it last.
    await _until(kept.is_file, f"{kept} to appear")
    record = json.loads(error_file.read_text())
    assert record["reason"] == case.expect, record
    assert record["message"]
    assert kept.stat().st_size == len(data)
    assert kept.read_bytes() == data  # nothing lost: the very bytes, beside the reason
    assert not (world.outgoing / "sent" / name).exists()
    assert not (world.outgoing / "outbox" / name).exists()


async def _a_valid_file_is_sent(world: World) -> None:
    name = f"valid-{world.kit.number()}.edxml"
    _drop(world.outgoing, name, send_input(_GENUINE, world.kit))
    receipt = world.outgoing / "sent" / f"{name}.receipt.json"
    await _until(receipt.is_file, f"{receipt} to appear")


_GENUINE = Case("genuine", "a valid document", Layer.SEND, DUPLICATE, "build:genuine")


def _drop(folder: Path, name: str, data: bytes) -> None:
    """What agency software does: write under a temporary name, rename into outbox/."""
    temp = folder / "outbox" / f"{name}.tmp"
    temp.write_bytes(data)
    temp.rename(folder / "outbox" / name)


# -- router ----------------------------------------------------------------------------------


async def _refused_by_the_router(case: Case, world: World) -> None:
    exchange = world.deployment.exchange
    submission = router_input(case, world.kit)
    for original in submission.before:
        await exchange.submit(original, as_account=exchange.account_of(submission.before_by))
        await event(exchange, submission.before_by, EventType.ROUTED, _envelope_id(original))
    await exchange.submit(submission.body, as_account=exchange.account_of(submission.publisher))
    envelope_id = _envelope_id(submission.body)
    if case.expect == DUPLICATE:
        told = await event(exchange, submission.told, EventType.DUPLICATE, envelope_id)
        assert told.original_outcome == "routed"
        return
    told = await event(exchange, submission.told, EventType.REJECTED, envelope_id)
    assert told.reason == case.expect, told
    assert told.message
    kept_message = await quarantined(exchange, submission.body)
    assert (kept_message.headers or {}).get(H_REASON) == case.expect
    # Small and readable: kept whole for operators; else a record, never the bulk.
    kept = envelope_id is not None and len(submission.body) <= DEFAULT_KEEP_BODY_BYTES
    assert (kept_message.headers or {}).get(H_BODY_KEPT) is kept
    if kept:
        assert kept_message.body == submission.body
    else:
        record = QuarantineRecord.model_validate_json(kept_message.body)
        assert (record.reason, record.body_bytes) == (case.expect, len(submission.body))
        assert len(kept_message.body) < 4096


async def _a_valid_envelope_is_routed(world: World) -> None:
    exchange = world.deployment.exchange
    body = world.kit.genuine()
    await exchange.submit(body, as_account=exchange.account_of(HONEST))
    await event(exchange, HONEST, EventType.ROUTED, _envelope_id(body))


def _envelope_id(body: bytes) -> str | None:
    """The id the router can read (None when it cannot read a header within its limit)."""
    try:
        return read_frame(body, max_size=ROUTER_LIMIT).header.envelope_id
    except BackboneError:
        return None


# -- adapter-receive -------------------------------------------------------------------------


async def _refused_by_the_recipient(case: Case, world: World) -> None:
    exchange = world.deployment.exchange
    submission = receive_input(case, world.kit)
    header = read_frame(submission.body).header
    await exchange.submit(submission.body, as_account=exchange.account_of(HONEST))
    kept = world.incoming / "rejected" / header.envelope_id
    await _until((kept / "error.json").is_file, f"{kept}/error.json to appear")
    record = json.loads((kept / "error.json").read_text())
    assert record["reason"] == case.expect, record
    assert record["sender"] == HONEST
    assert record["document_id"] == header.document_id
    assert (kept / "envelope.vdx").read_bytes() == submission.body  # nothing lost
    assert not (world.incoming / "inbox" / header.envelope_id).exists()
    told = await _status_02(world, header.document_id)
    assert told["description"].startswith(f"[{case.expect}] "), told
    assert told["sender"] == RECIPIENT


async def _status_02(world: World, document_id: str) -> dict[str, Any]:
    """The status 02 about ``document_id`` in HONEST's status/ folder."""
    found: list[dict[str, Any]] = []

    def arrived() -> bool:
        for path in (world.outgoing / "status").glob("*.json"):
            record = json.loads(path.read_text())
            if record["document_id"] == document_id and record["status_code"] == "02":
                found.append(record)
                return True
        return False

    await _until(arrived, f"status 02 about {document_id} in the sender's status/")
    return found[0]


async def _a_valid_document_is_delivered(world: World) -> None:
    exchange = world.deployment.exchange
    body = world.kit.genuine()
    await exchange.submit(body, as_account=exchange.account_of(HONEST))
    entry = world.incoming / "inbox" / read_frame(body).header.envelope_id
    await _until((entry / "metadata.json").is_file, f"{entry} in the recipient's inbox")


async def _until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"waited {WAIT} s for {what}")
        await asyncio.sleep(0.05)


# -- the client's refusal path without the drop folder -------------------------------------


async def test_without_a_keeper_refused_content_is_answered_with_02_and_dead_lettered(
    amqp_url: str, tmp_path: Path
) -> None:
    async with open_deployment(amqp_url, tmp_path) as deployment:
        exchange = deployment.exchange
        sender = deployment.inbox(await deployment.adapter(HONEST))
        recipient = deployment.inbox(await deployment.adapter(RECIPIENT))
        unsigned = exchange.seal_document(HONEST, [RECIPIENT], 1)  # no XML-DSig inside
        await exchange.submit(unsigned, as_account=exchange.account_of(HONEST))

        [status] = await sender.wait_for(1)
        assert isinstance(status.message, EdxmlStatus)
        assert status.message.status_code is StatusCode.REJECTED
        assert status.message.response_for.document_id == read_frame(unsigned).header.document_id
        assert (status.message.description or "").startswith("[xml_signature_invalid] ")
        parked = await exchange.drain(exchange.names.dead_letter_parked, expect=1)
        assert [message.body for message in parked] == [unsigned]
        assert await recipient.quiet() == []
        assert len(await sender.quiet()) == 1


async def test_a_keeper_that_fails_gets_the_envelope_again_and_the_sender_is_told_once(
    amqp_url: str, tmp_path: Path
) -> None:
    kept: list[Refused] = []
    attempts: list[Reason] = []

    async def keeper(refusal: Refused) -> None:
        attempts.append(refusal.reason)
        if len(attempts) == 1:
            raise OSError(28, "No space left on device")
        kept.append(refusal)

    async with open_deployment(amqp_url, tmp_path) as deployment:
        exchange = deployment.exchange
        sender = deployment.inbox(await deployment.adapter(HONEST))
        client = AdapterClient(deployment.config(RECIPIENT), keep_refused=keeper)
        await client.start()
        recipient = deployment.inbox(client)
        try:
            unsigned = exchange.seal_document(HONEST, [RECIPIENT], 2)
            await exchange.submit(unsigned, as_account=exchange.account_of(HONEST))
            [status] = await sender.wait_for(1)
            assert isinstance(status.message, EdxmlStatus)
            assert (status.message.description or "").startswith("[xml_signature_invalid] ")
            assert attempts == [Reason.XML_SIGNATURE_INVALID] * 2
            assert [refusal.body for refusal in kept] == [unsigned]
            assert kept[0].edxml is not None  # decrypted, then refused
            assert len(await sender.quiet()) == 1
            assert await recipient.quiet() == []
            assert await exchange.drain(exchange.names.dead_letter_parked, expect=0) == []
        finally:
            await recipient.stop()
            await client.close()
