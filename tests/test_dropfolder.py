"""The drop folder's state machine, with a fake Adapter (real edXML, real envelopes)."""

from __future__ import annotations

import asyncio
import json
import os
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from adapters.abc import Received, Sealed
from adapters.dropfolder import DropFolder, DropFolderOptions
from adapters.dropfolder.files import safe_file_name
from adapters.dropfolder.layout import AgencyFolder
from adapters.dropfolder.settling import name_kind
from backbone.edxml import (
    Attachment,
    EdxmlDocument,
    EdxmlStatus,
    Organization,
    Reference,
    ResponseFor,
    StatusCode,
    build,
    validate,
)
from backbone.envelope import read_frame
from backbone.observability import metrics
from testkit.fake_adapter import FakeAdapter
from tests.support import DevPki, document_edxml, document_id, make_pki

pytestmark = pytest.mark.clock  # scripts/clock-check runs it at fixed instants

G22, H41, H53, H53_DISTRICT = "000.00.00.G22", "000.00.00.H41", "000.00.00.H53", "000.00.32.H53"
# settle_seconds=0: these tests write files whole; settling has tests of its own below.
FAST = DropFolderOptions(poll_interval=0.05, retry_initial=0.01, retry_max=0.05, settle_seconds=0)


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> DevPki:
    return make_pki(tmp_path_factory.mktemp("dropfolder-pki"))


def folders(tmp_path: Path, *codes: str) -> dict[str, Path]:
    return {code: tmp_path / code for code in codes}


def drop(root: Path, name: str, data: bytes) -> Path:
    """What agency software does: write a temp name, then rename it into place."""
    outbox = root / "outbox"
    outbox.mkdir(parents=True, exist_ok=True)
    temp = outbox / f"{name}.tmp"
    temp.write_bytes(data)
    return temp.rename(outbox / name)


def received_document(
    pki: DevPki, *, sender: str = H41, recipient: str = G22, attachments: tuple[str, ...] = ()
) -> Received:
    base = validate(document_edxml(sender, [recipient], 7))
    assert isinstance(base, EdxmlDocument)
    message = base.model_copy(
        update={
            "attachments": tuple(
                Attachment(content_id=f"cid:{n}", content=f"file {n}".encode(), attachment_name=a)
                for n, a in enumerate(attachments)
            ),
            "references": tuple(
                Reference(content_id=f"cid:{n}", attachment_name=a)
                for n, a in enumerate(attachments)
            ),
        }
    )
    edxml = build(message)
    body = FakeAdapter(pki, served=(sender,)).envelope(message, edxml)
    return Received(
        header=read_frame(body).header,
        recipient=recipient,
        edxml=edxml,
        message=validate(edxml),
        signer_certificate_pem=_pem(pki, sender),
        received_at=datetime.now(UTC),
    )


def received_status(
    pki: DevPki, code: StatusCode, at: datetime, *, sender: str = H41, recipient: str = G22
) -> Received:
    status = EdxmlStatus(
        sender=Organization(organ_id=sender),
        response_for=ResponseFor(organ_id=recipient, document_id=document_id(recipient, 7)),
        status_code=code,
        timestamp=at,
    )
    edxml = build(status)
    body = FakeAdapter(pki, served=(sender,)).envelope(status, edxml)
    return Received(
        header=read_frame(body).header,
        recipient=recipient,
        edxml=edxml,
        message=status,
        signer_certificate_pem=_pem(pki, sender),
        received_at=datetime.now(UTC),
    )


def _pem(pki: DevPki, code: str) -> str:
    from cryptography.hazmat.primitives.serialization import Encoding

    return pki.agency(code).certificate.public_bytes(Encoding.PEM).decode()


# ------------------------------------------------------------------------------ outgoing


async def test_outbox_file_is_claimed_sealed_published_and_moved_to_sent_with_receipt(
    pki: DevPki, tmp_path: Path
) -> None:
    adapter = FakeAdapter(pki)
    service = DropFolder(adapter, folders(tmp_path, G22), FAST)
    service.prepare()
    data = document_edxml(G22, [H41], 1)
    drop(tmp_path / G22, "letter.edxml", data)

    assert await service.send_all() == 1

    root = tmp_path / G22
    assert (root / "sent" / "letter.edxml").read_bytes() == data
    receipt = json.loads((root / "sent" / "letter.edxml.receipt.json").read_text())
    header = read_frame(adapter.published[0]).header
    assert receipt["envelope_id"] == header.envelope_id
    assert receipt["document_id"] == document_id(G22, 1)
    assert receipt["recipients"] == [H41]
    assert receipt["sent_at"]
    assert list((root / "outbox").iterdir()) == []
    assert list((root / ".work" / "outgoing").iterdir()) == []


async def test_files_still_being_written_or_hidden_are_not_taken(
    pki: DevPki, tmp_path: Path
) -> None:
    adapter = FakeAdapter(pki)
    service = DropFolder(adapter, folders(tmp_path, G22), FAST)
    service.prepare()
    outbox = tmp_path / G22 / "outbox"
    for name in ("a.edxml.tmp", ".b.edxml", "c.xml", "d.edxml.part"):
        (outbox / name).write_bytes(document_edxml(G22, [H41], 2))

    assert await service.send_all() == 0
    assert sorted(p.name for p in outbox.iterdir()) == sorted(
        ["a.edxml.tmp", ".b.edxml", "c.xml", "d.edxml.part"]
    )
    assert adapter.published == []
    assert name_kind("x.edxml") == "document"
    assert name_kind(".edxml") == "in-progress"
    # Only the name that will never be taken is reported, once, and stays in outbox/.
    failed = tmp_path / G22 / "failed"
    assert [p.name for p in failed.iterdir()] == ["c.xml.error.json"]
    note = json.loads((failed / "c.xml.error.json").read_text())
    assert note["reason"] == "outbox_name_not_taken"
    assert "Rename it to end in .edxml" in note["message"]
    (failed / "c.xml.error.json").write_text("{}")  # a second scan does not write it again
    assert await service.send_all() == 0
    assert (failed / "c.xml.error.json").read_text() == "{}"


async def test_a_document_name_is_taken_in_any_case(pki: DevPki, tmp_path: Path) -> None:
    adapter = FakeAdapter(pki)
    service = DropFolder(adapter, folders(tmp_path, G22), FAST)
    service.prepare()
    (tmp_path / G22 / "outbox" / "UPPER.EDXML").write_bytes(document_edxml(G22, [H41], 4))
    assert await service.send_all() == 1
    assert (tmp_path / G22 / "sent" / "UPPER.EDXML").exists()


async def test_a_file_written_in_place_is_taken_only_once_it_stops_changing(
    pki: DevPki, tmp_path: Path
) -> None:
    clock = [100.0]
    options = replace(FAST, settle_seconds=1.0, monotonic=lambda: clock[0])
    adapter = FakeAdapter(pki)
    service = DropFolder(adapter, folders(tmp_path, G22), options)
    service.prepare()
    whole = document_edxml(G22, [H41], 5)
    path = tmp_path / G22 / "outbox" / "in-place.edxml"
    path.write_bytes(whole[: len(whole) // 2])  # half a file, then a pause
    assert await service.send_all() == 0
    clock[0] += 5.0
    with path.open("ab") as rest:  # the rest, before the pause is over for the adapter
        rest.write(whole[len(whole) // 2 :])
    os.utime(path, ns=(1, path.stat().st_mtime_ns + 1_000_000))
    assert await service.send_all() == 0  # changed since last seen: it waits again
    clock[0] += 0.5
    assert await service.send_all() == 0  # unchanged, but not for a whole second yet
    clock[0] += 0.6
    assert await service.send_all() == 1
    assert (tmp_path / G22 / "sent" / "in-place.edxml").read_bytes() == whole
    assert list((tmp_path / G22 / "failed").iterdir()) == []


async def test_files_in_several_agencies_outboxes_each_settle_and_are_taken(
    pki: DevPki, tmp_path: Path
) -> None:
    """A hub's adapter scans one outbox per agency: scanning one must not make the adapter
    forget how long the other's files have been unchanged."""
    clock = [100.0]
    options = replace(FAST, settle_seconds=1.0, monotonic=lambda: clock[0])
    adapter = FakeAdapter(pki, served=(G22, H41))
    service = DropFolder(adapter, folders(tmp_path, G22, H41), options)
    service.prepare()
    drop(tmp_path / G22, "a.edxml", document_edxml(G22, [H41], 7))
    drop(tmp_path / H41, "b.edxml", document_edxml(H41, [G22], 8))
    assert await service.send_all() == 0
    clock[0] += 1.5
    assert await service.send_all() == 2


async def test_a_file_cut_short_says_how_to_write_files_in_its_error(
    pki: DevPki, tmp_path: Path
) -> None:
    adapter = FakeAdapter(pki)
    service = DropFolder(adapter, folders(tmp_path, G22), FAST)
    service.prepare()
    whole = document_edxml(G22, [H41], 6)
    (tmp_path / G22 / "outbox" / "cut.edxml").write_bytes(whole[: len(whole) // 2])
    assert await service.send_all() == 1
    record = json.loads((tmp_path / G22 / "failed" / "cut.edxml.error.json").read_text())
    assert record["reason"] == "edxml_not_well_formed"
    assert "at the very end of the file" in record["message"]
    assert "x.edxml.tmp and rename it" in record["message"]


async def test_malformed_file_goes_to_failed_with_every_issue_its_line_and_element(
    pki: DevPki, tmp_path: Path
) -> None:
    adapter = FakeAdapter(pki)
    service = DropFolder(adapter, folders(tmp_path, G22), FAST)
    service.prepare()
    broken = (
        document_edxml(G22, [H41], 3)
        .replace(b"<edXML:CodeNumber>3</edXML:CodeNumber>", b"")
        .replace(b"<edXML:OrganId>000.00.00.H41</edXML:OrganId>", b"<edXML:OrganId/>")
    )
    drop(tmp_path / G22, "broken.edxml", broken)

    await service.send_all()

    failed = tmp_path / G22 / "failed"
    assert (failed / "broken.edxml").read_bytes() == broken
    error = json.loads((failed / "broken.edxml.error.json").read_text())
    assert error["reason"] == "edxml_invalid"
    assert len(error["issues"]) >= 2, error
    paths = {issue["path"] for issue in error["issues"]}
    assert any("Code" in (path or "") for path in paths), paths
    assert any("To[1]/OrganId" in (path or "") for path in paths), paths
    assert all(isinstance(issue["line"], int) for issue in error["issues"])
    assert adapter.published == []


async def test_file_that_is_not_xml_fails_with_the_parser_line(pki: DevPki, tmp_path: Path) -> None:
    service = DropFolder(FakeAdapter(pki), folders(tmp_path, G22), FAST)
    service.prepare()
    drop(tmp_path / G22, "cut.edxml", document_edxml(G22, [H41], 4)[:400])

    await service.send_all()

    error = json.loads((tmp_path / G22 / "failed" / "cut.edxml.error.json").read_text())
    assert error["reason"] == "edxml_not_well_formed"
    assert error["issues"][0]["line"] is not None
    assert error["message"]


async def test_a_file_given_back_in_failed_counts_as_a_send_failure(
    pki: DevPki, tmp_path: Path
) -> None:
    """vdx_adapter_send_failures_total (and VdxAdapterSendFailures) sees what failed/ gets."""
    failures = metrics.ADAPTER_SEND_FAILURES.labels("edxml_not_well_formed")
    before = failures._value.get()
    service = DropFolder(FakeAdapter(pki), folders(tmp_path, G22), FAST)
    service.prepare()
    drop(tmp_path / G22, "garbage.edxml", b"<not edxml")

    await service.send_all()

    assert (tmp_path / G22 / "failed" / "garbage.edxml").exists()
    assert failures._value.get() == before + 1


async def test_refusal_by_seal_is_written_with_its_reason_and_message(
    pki: DevPki, tmp_path: Path
) -> None:
    service = DropFolder(FakeAdapter(pki, served=(G22,)), folders(tmp_path, G22), FAST)
    service.prepare()
    drop(tmp_path / G22, "foreign.edxml", document_edxml(H41, [G22], 5))

    await service.send_all()

    error = json.loads((tmp_path / G22 / "failed" / "foreign.edxml.error.json").read_text())
    assert error["reason"] == "publisher_mismatch"
    assert H41 in error["message"]


async def test_hub_folder_cannot_send_as_another_served_agency(pki: DevPki, tmp_path: Path) -> None:
    adapter = FakeAdapter(pki, served=(H53, H53_DISTRICT))
    service = DropFolder(adapter, folders(tmp_path, H53, H53_DISTRICT), FAST)
    service.prepare()
    drop(tmp_path / H53, "mine.edxml", document_edxml(H53, [G22], 1))
    drop(tmp_path / H53, "theirs.edxml", document_edxml(H53_DISTRICT, [G22], 2))
    drop(tmp_path / H53_DISTRICT, "district.edxml", document_edxml(H53_DISTRICT, [G22], 3))

    await service.send_all()

    senders = sorted(read_frame(body).header.sender for body in adapter.published)
    assert senders == sorted([H53, H53_DISTRICT])
    assert (tmp_path / H53 / "sent" / "mine.edxml").exists()
    assert (tmp_path / H53_DISTRICT / "sent" / "district.edxml").exists()
    error = json.loads((tmp_path / H53 / "failed" / "theirs.edxml.error.json").read_text())
    assert H53_DISTRICT in error["message"]
    assert error["reason"] == "policy_denied"


async def test_leftover_envelope_is_republished_byte_for_byte_without_sealing_again(
    pki: DevPki, tmp_path: Path
) -> None:
    adapter = FakeAdapter(pki)
    layout = AgencyFolder(G22, tmp_path / G22)
    layout.prepare()
    data = document_edxml(G22, [H41], 6)
    original = adapter.seal(data)  # as the crashed run sealed it
    (layout.outgoing / "x.edxml").write_bytes(data)
    (layout.outgoing / "x.edxml.envelope").write_bytes(original.body)
    adapter.sealed = 0
    service = DropFolder(adapter, folders(tmp_path, G22), FAST)
    service.prepare()

    await service.resume()

    assert adapter.published == [original.body]
    assert adapter.sealed == 0
    receipt = json.loads((layout.sent / "x.edxml.receipt.json").read_text())
    assert receipt["envelope_id"] == original.header.envelope_id
    assert list(layout.outgoing.iterdir()) == []


async def test_claimed_file_without_envelope_is_sealed_and_sent_on_resume(
    pki: DevPki, tmp_path: Path
) -> None:
    adapter = FakeAdapter(pki)
    layout = AgencyFolder(G22, tmp_path / G22)
    layout.prepare()
    (layout.outgoing / "y.edxml").write_bytes(document_edxml(G22, [H41], 7))
    service = DropFolder(adapter, folders(tmp_path, G22), FAST)
    service.prepare()

    await service.resume()

    assert adapter.sealed == 1
    assert len(adapter.published) == 1
    assert (layout.sent / "y.edxml").exists()


async def test_envelope_left_after_the_move_to_sent_is_cleaned_up_not_republished(
    pki: DevPki, tmp_path: Path
) -> None:
    adapter = FakeAdapter(pki)
    layout = AgencyFolder(G22, tmp_path / G22)
    layout.prepare()
    (layout.outgoing / "z.edxml.envelope").write_bytes(
        adapter.seal(document_edxml(G22, [H41], 8)).body
    )
    service = DropFolder(adapter, folders(tmp_path, G22), FAST)
    service.prepare()

    await service.resume()

    assert adapter.published == []
    assert list(layout.outgoing.iterdir()) == []


async def test_broker_away_keeps_the_envelope_and_retries_the_same_bytes(
    pki: DevPki, tmp_path: Path
) -> None:
    adapter = FakeAdapter(pki, broker_down_for=3)
    service = DropFolder(adapter, folders(tmp_path, G22), FAST)
    service.prepare()
    drop(tmp_path / G22, "w.edxml", document_edxml(G22, [H41], 9))

    with capture_logs() as logs:
        await service.send_all()

    waits = [e for e in logs if e["event"] == "adapter.waiting_for_broker"]
    assert len(waits) == 3
    assert all(e["envelope_id"] == waits[0]["envelope_id"] for e in waits)
    assert adapter.sealed == 1
    assert len(adapter.published) == 1
    assert read_frame(adapter.published[0]).header.envelope_id == waits[0]["envelope_id"]
    assert (tmp_path / G22 / "sent" / "w.edxml").exists()


async def test_stop_while_the_broker_is_away_leaves_the_file_resumable_in_work(
    pki: DevPki, tmp_path: Path
) -> None:
    adapter = FakeAdapter(pki, broker_down_for=10_000)
    service = DropFolder(adapter, folders(tmp_path, G22), FAST)
    service.prepare()
    drop(tmp_path / G22, "v.edxml", document_edxml(G22, [H41], 10))
    await service.claim_outbox()
    await asyncio.sleep(0.2)
    service.stop()
    await service.drain()

    outgoing = tmp_path / G22 / ".work" / "outgoing"
    assert sorted(p.name for p in outgoing.iterdir()) == ["v.edxml", "v.edxml.envelope"]
    saved = (outgoing / "v.edxml.envelope").read_bytes()

    adapter.broker_down_for = 0
    restarted = DropFolder(adapter, folders(tmp_path, G22), FAST)
    restarted.prepare()
    await restarted.resume()
    assert adapter.published == [saved]


async def test_a_reused_file_name_never_overwrites_an_earlier_sent_record(
    pki: DevPki, tmp_path: Path
) -> None:
    adapter = FakeAdapter(pki)
    service = DropFolder(adapter, folders(tmp_path, G22), FAST)
    service.prepare()
    drop(tmp_path / G22, "same.edxml", document_edxml(G22, [H41], 11))
    await service.send_all()
    drop(tmp_path / G22, "same.edxml", document_edxml(G22, [H41], 12))
    await service.send_all()

    sent = sorted(p.name for p in (tmp_path / G22 / "sent").iterdir())
    assert len([n for n in sent if n.endswith(".edxml")]) == 2
    assert len([n for n in sent if n.endswith(".receipt.json")]) == 2


async def test_a_burst_is_sent_concurrently_and_every_file_once(
    pki: DevPki, tmp_path: Path
) -> None:
    adapter = FakeAdapter(pki)
    service = DropFolder(adapter, folders(tmp_path, G22), FAST)
    service.prepare()
    for n in range(30):
        drop(tmp_path / G22, f"b{n:02}.edxml", document_edxml(G22, [H41], 100 + n))

    runner = asyncio.create_task(service.run())
    for _ in range(200):
        if len(list((tmp_path / G22 / "sent").glob("*.edxml"))) == 30:
            break
        await asyncio.sleep(0.05)
    service.stop()
    await runner

    ids = [read_frame(body).header.document_id for body in adapter.published]
    assert sorted(ids) == sorted(document_id(G22, 100 + n) for n in range(30))


# ------------------------------------------------------------------------------ incoming


async def _serve(service: DropFolder, adapter: FakeAdapter, *items: Received) -> None:
    """Feed ``items`` and wait until the service asked for the item after the last one."""
    service.prepare()
    task = asyncio.create_task(service.receive_forever())
    for item in items:
        adapter.incoming.put_nowait(item)
    adapter.incoming.put_nowait(None)
    await asyncio.wait_for(task, 10)
    await service.drain()


async def test_received_document_lands_whole_in_inbox_before_any_ack_or_status_01(
    pki: DevPki, tmp_path: Path
) -> None:
    adapter = FakeAdapter(pki)
    service = DropFolder(adapter, folders(tmp_path, G22), FAST)
    item = received_document(pki, attachments=("Quyết định.pdf", "phụ lục.docx"))
    entry = tmp_path / G22 / "inbox" / item.envelope_id
    seen_at_status: list[bool] = []
    adapter.on_status = lambda: seen_at_status.append((entry / "metadata.json").exists())

    await _serve(service, adapter, item)

    assert (entry / "document.edxml").read_bytes() == item.edxml
    assert (entry / "Quyết định.pdf").read_bytes() == b"file 0"
    assert (entry / "phụ lục.docx").read_bytes() == b"file 1"
    metadata = json.loads((entry / "metadata.json").read_text())
    assert metadata["envelope_id"] == item.envelope_id
    assert metadata["sender"] == H41
    assert metadata["recipients"] == [G22]
    assert metadata["document_id"] == item.header.document_id
    assert metadata["business_type"] == 0
    assert metadata["signer"]["sha256_fingerprint"]
    assert "BEGIN CERTIFICATE" in metadata["signer"]["pem"]
    assert H41 in metadata["signer"]["subject"] or metadata["signer"]["subject"]
    assert metadata["received_at"]
    assert adapter.statuses == [(item.header.document_id, StatusCode.ARRIVED, G22)]
    assert seen_at_status == [True]
    # The next item was asked for (the broker ack) before status 01 went out.
    assert adapter.trace == [f"next after {item.envelope_id}", "status 01"]


async def test_a_redelivered_document_is_not_written_twice_nor_answered_twice(
    pki: DevPki, tmp_path: Path
) -> None:
    adapter = FakeAdapter(pki)
    item = received_document(pki)
    await _serve(DropFolder(adapter, folders(tmp_path, G22), FAST), adapter, item)
    entry = tmp_path / G22 / "inbox" / item.envelope_id
    written = (entry / "metadata.json").stat().st_mtime_ns

    # The software took the document away; then the broker redelivers it.
    (entry / "metadata.json").rename(tmp_path / "taken.json")
    adapter.incoming = asyncio.Queue()
    await _serve(DropFolder(adapter, folders(tmp_path, G22), FAST), adapter, item, item)

    assert not (entry / "metadata.json").exists()
    assert (tmp_path / "taken.json").stat().st_mtime_ns == written
    assert len(adapter.statuses) == 1


async def test_status_01_owed_by_a_crashed_run_is_sent_at_the_next_start(
    pki: DevPki, tmp_path: Path
) -> None:
    adapter = FakeAdapter(pki)
    item = received_document(pki)
    service = DropFolder(adapter, folders(tmp_path, G22), FAST)
    service.prepare()
    assert await service.store(item)  # written, then the process died before 01

    await _serve(DropFolder(adapter, folders(tmp_path, G22), FAST), adapter)

    assert adapter.statuses == [(item.header.document_id, StatusCode.ARRIVED, G22)]


async def test_a_half_written_inbox_entry_from_a_crash_is_discarded_and_written_again(
    pki: DevPki, tmp_path: Path
) -> None:
    adapter = FakeAdapter(pki)
    item = received_document(pki, attachments=("a.pdf",))
    stage = tmp_path / G22 / ".work" / "incoming" / item.envelope_id
    stage.mkdir(parents=True)
    (stage / "document.edxml").write_bytes(b"<half")

    await _serve(DropFolder(adapter, folders(tmp_path, G22), FAST), adapter, item)

    entry = tmp_path / G22 / "inbox" / item.envelope_id
    assert (entry / "document.edxml").read_bytes() == item.edxml
    assert (entry / "a.pdf").read_bytes() == b"file 0"


async def test_status_file_names_sort_in_the_order_the_statuses_happened(
    pki: DevPki, tmp_path: Path
) -> None:
    adapter = FakeAdapter(pki)
    start = datetime(2025, 3, 1, 9, 0, 0)
    happened = [
        received_status(pki, StatusCode.ARRIVED, start),
        received_status(pki, StatusCode.ACCEPTED, start + timedelta(minutes=5)),
        received_status(pki, StatusCode.ASSIGNED, start + timedelta(minutes=5)),  # same second
        received_status(pki, StatusCode.PROCESSING, start + timedelta(hours=2)),
        received_status(pki, StatusCode.COMPLETED, start + timedelta(days=1)),
    ]
    arrival_order = [happened[i] for i in (4, 2, 0, 3, 1)]

    await _serve(DropFolder(adapter, folders(tmp_path, G22), FAST), adapter, *arrival_order)

    names = sorted(p.name for p in (tmp_path / G22 / "status").glob("*.edxml"))
    codes = [
        json.loads((tmp_path / G22 / "status" / n.replace(".edxml", ".json")).read_text())[
            "status_code"
        ]
        for n in names
    ]
    assert codes == ["01", "03", "04", "05", "06"]
    assert all(item.envelope_id in name for item, name in zip(happened, names, strict=True))
    assert adapter.statuses == []  # statuses are never answered with 01


async def test_a_status_dated_long_ago_sorts_after_todays_01_and_names_its_code(
    pki: DevPki, tmp_path: Path
) -> None:
    adapter = FakeAdapter(pki)
    today = received_status(pki, StatusCode.ARRIVED, datetime(2026, 11, 20, 9))
    old_dated = received_status(pki, StatusCode.ACCEPTED, datetime(2019, 1, 16, 8))  # sent later

    await _serve(DropFolder(adapter, folders(tmp_path, G22), FAST), adapter, old_dated, today)

    names = sorted(p.name for p in (tmp_path / G22 / "status").glob("*.edxml"))
    assert [name.split("_")[1] for name in names] == ["01", "03"]
    assert names[1].endswith(f"_03_{old_dated.envelope_id}.edxml")


async def test_a_redelivered_status_is_not_written_twice(pki: DevPki, tmp_path: Path) -> None:
    adapter = FakeAdapter(pki)
    item = received_status(pki, StatusCode.ACCEPTED, datetime(2025, 3, 1, 9))

    await _serve(DropFolder(adapter, folders(tmp_path, G22), FAST), adapter, item, item)

    assert len(list((tmp_path / G22 / "status").iterdir())) == 2  # one .edxml, one .json


async def test_attachment_names_cannot_escape_the_inbox_entry(pki: DevPki, tmp_path: Path) -> None:
    adapter = FakeAdapter(pki)
    names = ("../../evil.pdf", "..", "a/b\\c.pdf", "document.edxml", "x.pdf", "X.pdf", "")
    item = received_document(pki, attachments=names)

    await _serve(DropFolder(adapter, folders(tmp_path, G22), FAST), adapter, item)

    entry = tmp_path / G22 / "inbox" / item.envelope_id
    files = sorted(p.name for p in entry.iterdir())
    assert all(p.parent == entry for p in entry.rglob("*"))
    assert "evil.pdf" in files
    assert "c.pdf" in files
    assert "document (2).edxml" in files
    assert "x.pdf" in files
    assert "X (2).pdf" in files
    assert not (tmp_path / "evil.pdf").exists()
    assert (entry / "document.edxml").read_bytes() == item.edxml
    metadata = json.loads((entry / "metadata.json").read_text())
    assert [a["attachment_name"] for a in metadata["attachments"]] == list(names)


def test_safe_file_name_strips_separators_dots_and_controls() -> None:
    assert safe_file_name("../../etc/passwd", fallback="f") == "passwd"
    assert safe_file_name("..", fallback="f") == "f"
    assert safe_file_name(".hidden", fallback="f") == "hidden"
    assert safe_file_name("a\x00b:c?.pdf", fallback="f") == "a_b_c_.pdf"
    assert safe_file_name(None, fallback="attachment-1") == "attachment-1"
    long = safe_file_name("é" * 300 + ".pdf", fallback="f")
    assert long.endswith(".pdf")
    assert len(long.encode()) <= 200


async def test_hub_received_items_go_to_the_folder_of_their_recipient(
    pki: DevPki, tmp_path: Path
) -> None:
    adapter = FakeAdapter(pki, served=(H53, H53_DISTRICT))
    for_province = received_document(pki, sender=G22, recipient=H53)
    for_district = received_document(pki, sender=G22, recipient=H53_DISTRICT)
    service = DropFolder(adapter, folders(tmp_path, H53, H53_DISTRICT), FAST)

    await _serve(service, adapter, for_province, for_district)

    assert [p.name for p in (tmp_path / H53 / "inbox").iterdir()] == [for_province.envelope_id]
    assert [p.name for p in (tmp_path / H53_DISTRICT / "inbox").iterdir()] == [
        for_district.envelope_id
    ]
    assert sorted(s[2] or "" for s in adapter.statuses) == sorted([H53, H53_DISTRICT])


def test_run_refuses_a_config_with_an_agency_without_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from adapters.cli import app

    # configure_logging would bind structlog to CliRunner's stderr, closed after the call.
    monkeypatch.setattr("adapters.cli.configure_logging", lambda: None)

    config = tmp_path / "adapter.yaml"
    config.write_text(
        "amqp_url: amqp://agency-000.00.00.G22:secret@127.0.0.1/\n"
        "system: 000.00.00.G22\n"
        f"directory: {tmp_path / 'directory.yaml'}\n"
        f"trust_anchors: [{tmp_path / 'ca.pem'}]\n"
        "agencies:\n"
        f"  - {{organ_code: 000.00.00.G22, key: {tmp_path / 'k.pem'}, "
        f"certificate: {tmp_path / 'c.pem'}}}\n"
    )

    result = CliRunner().invoke(app, ["run", "--config", str(config)])

    assert result.exit_code == 1
    assert "no drop folder configured for 000.00.00.G22" in result.output
    assert "[configuration_invalid]" in result.output  # not an envelope's reason
    assert "secret" not in result.output


async def test_an_unexpected_seal_crash_is_retried_then_the_file_is_given_back_in_failed(
    pki: DevPki, tmp_path: Path
) -> None:
    adapter = FakeAdapter(pki)
    crashes = iter([RuntimeError("flaky"), None, RuntimeError("a"), RuntimeError("b"), None])
    real_seal = adapter.seal

    def flaky_seal(edxml: bytes) -> Sealed:
        crash = next(crashes, None)
        if crash is not None:
            raise crash
        return real_seal(edxml)

    adapter.seal = flaky_seal  # type: ignore[method-assign]
    service = DropFolder(adapter, folders(tmp_path, G22), FAST)
    service.prepare()
    drop(tmp_path / G22, "once.edxml", document_edxml(G22, [H41], 13))
    await service.send_all()
    drop(tmp_path / G22, "thrice.edxml", document_edxml(G22, [H41], 14))
    # The third crash ("b") comes on the last attempt.
    crashes = iter([RuntimeError("a"), RuntimeError("b"), RuntimeError("c")])
    await service.send_all()

    assert (tmp_path / G22 / "sent" / "once.edxml").exists()
    error = json.loads((tmp_path / G22 / "failed" / "thrice.edxml.error.json").read_text())
    assert error["reason"] == "adapter_error"
    assert "RuntimeError: c" in error["message"]


def test_a_second_adapter_process_cannot_serve_the_same_folder(pki: DevPki, tmp_path: Path) -> None:
    import subprocess
    import sys

    service = DropFolder(FakeAdapter(pki), folders(tmp_path, G22), FAST)
    service.prepare()
    script = (
        "import sys; from pathlib import Path; from adapters.dropfolder import DropFolder\n"
        f"DropFolder(object(), {{'{G22}': Path(sys.argv[1])}}).prepare()"
    )

    other = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / G22)],
        capture_output=True,
        text=True,
        check=False,
    )

    assert other.returncode != 0
    assert "another adapter process is already serving" in other.stderr
    assert "[configuration_invalid]" in other.stderr
