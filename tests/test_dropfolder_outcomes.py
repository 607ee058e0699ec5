"""What the drop folder writes when the router tells the sender what became of a sent file
(``adapters.dropfolder.outcomes``), and the status 01 the software must not send; with the
fake Adapter (real edXML, real envelopes)."""

from __future__ import annotations

import asyncio
import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from adapters.abc import Event, EventType, Receipt, Sealed
from adapters.dropfolder import DropFolder, DropFolderOptions
from adapters.dropfolder.remedies import what_to_do
from backbone.clock import edxml_now
from backbone.edxml import EdxmlStatus, Organization, ResponseFor, StatusCode, build
from backbone.envelope import EnvelopeHeader, read_frame
from backbone.errors import Reason
from testkit.fake_adapter import FakeAdapter
from tests.support import DevPki, document_edxml, document_id, make_pki

pytestmark = pytest.mark.clock  # document ids carry the Vietnam date, from backbone.clock

G22, H41 = "000.00.00.G22", "000.00.00.H41"
# settle_seconds=0: these tests write files whole (atomic rename).
FAST = DropFolderOptions(poll_interval=0.05, retry_initial=0.01, retry_max=0.05, settle_seconds=0)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> DevPki:
    return make_pki(tmp_path_factory.mktemp("outcomes-pki"))


@dataclass
class GatedAdapter(FakeAdapter):
    """Publishes only once ``gate`` is set: the router's answer can overtake the file."""

    gate: asyncio.Event = field(default_factory=asyncio.Event)
    publishing: list[EnvelopeHeader] = field(default_factory=list)

    async def publish(self, sealed: Sealed) -> Receipt:
        self.publishing.append(sealed.header)
        await self.gate.wait()
        return await super().publish(sealed)


def drop(root: Path, name: str, data: bytes) -> None:
    (root / "outbox").mkdir(parents=True, exist_ok=True)
    (root / "outbox" / f"{name}.tmp").write_bytes(data)
    (root / "outbox" / f"{name}.tmp").rename(root / "outbox" / name)


async def sent(
    pki: DevPki, tmp_path: Path, name: str = "letter.edxml"
) -> tuple[DropFolder, FakeAdapter, EnvelopeHeader]:
    """A folder for G22 that has sent one document, and that envelope's header."""
    adapter = FakeAdapter(pki)
    service = DropFolder(adapter, {G22: tmp_path / G22}, FAST)
    service.prepare()
    drop(tmp_path / G22, name, document_edxml(G22, [H41], 1))
    assert await service.send_all() == 1
    return service, adapter, read_frame(adapter.published[-1]).header


def refused(header: EnvelopeHeader, reason: Reason = Reason.POLICY_DENIED) -> Event:
    return Event.about(EventType.REJECTED, header, reason=reason, message="the router says no")


def read(path: Path) -> dict[str, Any]:
    value: dict[str, Any] = json.loads(path.read_text())
    return value


async def test_a_router_refusal_moves_the_sent_file_its_receipt_and_the_reason_into_failed(
    pki: DevPki, tmp_path: Path
) -> None:
    service, _, header = await sent(pki, tmp_path)
    root = tmp_path / G22
    data = (root / "sent" / "letter.edxml").read_bytes()
    event = refused(header)

    await service.outcomes.record(event)

    assert sorted(p.name for p in (root / "sent").iterdir()) == []
    assert (root / "failed" / "letter.edxml").read_bytes() == data  # the document is kept
    error = read(root / "failed" / "letter.edxml.error.json")
    assert error["reason"] == "policy_denied"
    assert error["message"] == "the router says no"
    assert error["what_to_do"] == what_to_do("policy_denied")
    assert error["what_to_do"].startswith("Send through the permitted channel")
    assert error["refused_by"] == "router"
    assert (error["envelope_id"], error["document_id"]) == (header.envelope_id, header.document_id)
    assert error["file"] == "letter.edxml"
    receipt = read(root / "failed" / "letter.edxml.receipt.json")
    assert receipt["envelope_id"] == header.envelope_id
    assert receipt["router_outcome"] == "rejected"
    assert [e["event_id"] for e in receipt["router_events"]] == [event.event_id]


async def test_a_redelivered_refusal_finishes_a_move_a_crash_interrupted_and_changes_nothing_else(
    pki: DevPki, tmp_path: Path
) -> None:
    service, _, header = await sent(pki, tmp_path)
    root = tmp_path / G22
    event = refused(header)
    await service.outcomes.record(event)
    # As if the process died after moving the receipt, before moving the document.
    shutil.move(root / "failed" / "letter.edxml", root / "sent" / "letter.edxml")
    before = read(root / "failed" / "letter.edxml.error.json")

    await service.outcomes.record(event)
    await service.outcomes.record(event)

    assert list((root / "sent").iterdir()) == []
    assert sorted(p.name for p in (root / "failed").iterdir()) == [
        "letter.edxml",
        "letter.edxml.error.json",
        "letter.edxml.receipt.json",
    ]
    assert read(root / "failed" / "letter.edxml.error.json") == before
    assert len(read(root / "failed" / "letter.edxml.receipt.json")["router_events"]) == 1


async def test_routed_and_duplicate_events_are_added_to_the_receipt_once_each(
    pki: DevPki, tmp_path: Path
) -> None:
    service, _, header = await sent(pki, tmp_path)
    receipt_file = tmp_path / G22 / "sent" / "letter.edxml.receipt.json"
    routed = Event.about(EventType.ROUTED, header)
    duplicate = Event.about(
        EventType.DUPLICATE, header, original_outcome="routed", message="already processed"
    )

    for event in (routed, routed, duplicate):
        await service.outcomes.record(event)

    receipt = read(receipt_file)
    assert [(e["type"], e["event_id"]) for e in receipt["router_events"]] == [
        ("routed", routed.event_id),
        ("duplicate", duplicate.event_id),
    ]
    assert receipt["router_events"][1]["original_outcome"] == "routed"
    assert receipt["router_outcome"] == "duplicate"
    assert (tmp_path / G22 / "sent" / "letter.edxml").exists()  # still shown as sent


async def test_an_overdue_event_is_recorded_in_the_receipt_of_its_document(
    pki: DevPki, tmp_path: Path
) -> None:
    service, _, header = await sent(pki, tmp_path)
    overdue = Event(
        type=EventType.OVERDUE,
        party=G22,
        document_id=header.document_id,
        sender=G22,
        recipients=(H41,),
        message="due 2026-01-01, not completed by 000.00.00.H41 (state: arrived)",
    )

    await service.outcomes.record(overdue)

    receipt = read(tmp_path / G22 / "sent" / "letter.edxml.receipt.json")
    assert receipt["router_outcome"] == "overdue"
    assert receipt["router_events"][0]["message"].startswith("due 2026-01-01")


async def test_a_refusal_of_a_status_the_adapter_sent_itself_is_written_under_its_envelope_id(
    pki: DevPki, tmp_path: Path
) -> None:
    service, _, header = await sent(pki, tmp_path)
    own_01 = header.model_copy(update={"envelope_id": "0d1e7f9a-own-status"})

    written = await service.outcomes.record(refused(own_01, Reason.DUPLICATE_CONFLICT))

    assert written == tmp_path / G22 / "failed" / "0d1e7f9a-own-status.error.json"
    error = read(written)
    assert (error["reason"], error["file"]) == ("duplicate_conflict", None)
    assert (tmp_path / G22 / "sent" / "letter.edxml").exists()  # nothing else moved


async def test_a_refusal_that_overtakes_its_file_waits_for_it_to_reach_sent(
    pki: DevPki, tmp_path: Path
) -> None:
    adapter = GatedAdapter(pki)
    service = DropFolder(adapter, {G22: tmp_path / G22}, FAST)
    service.prepare()
    drop(tmp_path / G22, "quick.edxml", document_edxml(G22, [H41], 2))
    await service.claim_outbox()
    async with asyncio.timeout(10):
        while not adapter.publishing:
            await asyncio.sleep(0.01)
    recording = asyncio.create_task(service.outcomes.record(refused(adapter.publishing[0])))
    await asyncio.sleep(0.1)
    assert not recording.done()  # the file is still on its way

    adapter.gate.set()
    await asyncio.wait_for(recording, 10)

    root = tmp_path / G22
    assert read(root / "failed" / "quick.edxml.error.json")["reason"] == "policy_denied"
    assert list((root / "sent").iterdir()) == []


async def test_an_event_is_acknowledged_only_once_its_record_is_written(
    pki: DevPki, tmp_path: Path
) -> None:
    service, adapter, header = await sent(pki, tmp_path)
    root = tmp_path / G22
    run = asyncio.create_task(service.run())
    routed = Event.about(EventType.ROUTED, header)
    adapter.router_events.put_nowait(routed)
    adapter.router_events.put_nowait(Event.about(EventType.ROUTED, header))  # asks past it
    async with asyncio.timeout(10):
        while routed.event_id not in adapter.events_taken:
            await asyncio.sleep(0.01)
    assert read(root / "sent" / "letter.edxml.receipt.json")["router_outcome"] == "routed"

    # A refusal whose record cannot be written (failed/ is no directory) is not taken.
    shutil.rmtree(root / "failed")
    (root / "failed").write_text("in the way")
    refusal = refused(header)
    adapter.router_events.put_nowait(refusal)
    await asyncio.sleep(0.3)
    service.stop()
    await asyncio.wait_for(run, 10)

    assert refusal.event_id not in adapter.events_taken
    assert (root / "sent" / "letter.edxml").exists()


async def test_a_status_01_from_the_software_is_not_sent_and_failed_says_the_adapter_sent_it(
    pki: DevPki, tmp_path: Path
) -> None:
    adapter = FakeAdapter(pki, served=(H41,))
    service = DropFolder(adapter, {H41: tmp_path / H41}, FAST)
    service.prepare()
    arrived = EdxmlStatus(
        sender=Organization(organ_id=H41),
        response_for=ResponseFor(organ_id=G22, document_id=document_id(G22, 1)),
        status_code=StatusCode.ARRIVED,
        timestamp=edxml_now(),
    )
    drop(tmp_path / H41, "arrived.edxml", build(arrived))
    accepted = arrived.model_copy(update={"status_code": StatusCode.ACCEPTED})
    drop(tmp_path / H41, "accepted.edxml", build(accepted))

    assert await service.send_all() == 2

    assert [read_frame(body).header.status_code for body in adapter.published] == ["03"]
    error = read(tmp_path / H41 / "failed" / "arrived.edxml.error.json")
    assert error["reason"] == "arrival_sent_by_adapter"
    assert document_id(G22, 1) in error["message"]
    assert error["what_to_do"] == what_to_do("arrival_sent_by_adapter")


def test_every_reason_has_its_what_to_do_from_docs_reasons() -> None:
    for reason in Reason:
        assert not what_to_do(reason.value).startswith("see docs/reasons.md"), reason
    assert what_to_do("no_such_reason") == "see docs/reasons.md for 'no_such_reason'"


async def test_a_receipt_name_reused_after_the_software_cleared_sent_is_found_by_its_new_id(
    pki: DevPki, tmp_path: Path
) -> None:
    service, adapter, first = await sent(pki, tmp_path)
    root = tmp_path / G22
    await service.outcomes.record(Event.about(EventType.ROUTED, first))  # indexed
    for entry in (root / "sent").iterdir():  # the software took its copies away
        entry.unlink()
    drop(root, "letter.edxml", document_edxml(G22, [H41], 2))
    assert await service.send_all() == 1
    second = read_frame(adapter.published[-1]).header

    await service.outcomes.record(refused(second))

    assert read(root / "failed" / "letter.edxml.error.json")["envelope_id"] == second.envelope_id
    assert list((root / "sent").iterdir()) == []
