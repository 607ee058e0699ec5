"""Drop-folder adapters as real processes on a real broker and router: folder to folder,
statuses back, and SIGKILL in the middle of sending and of receiving."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
from collections import Counter
from collections.abc import AsyncIterator
from functools import partial
from pathlib import Path

import httpx
import pytest
from structlog.testing import capture_logs

from adapters.dropfolder import DropFolder, DropFolderOptions
from backbone.edxml import (
    Attachment,
    EdxmlDocument,
    EdxmlStatus,
    Reference,
    StatusCode,
)
from testkit import status_edxml
from tests.support import (
    HUB,
    Deployment,
    Inbox,
    document_edxml,
    document_id,
    free_port,
    open_deployment,
)
from tests.support.adapter_process import (
    AdapterProcess,
    adapter_command,
    drop,
    inbox_documents,
    running,
    wait_for,
)

pytestmark = pytest.mark.broker

G22, H41 = "000.00.00.G22", "000.00.00.H41"
H53, H53_DISTRICT = "000.00.00.H53", "000.00.32.H53"
BURST = 60


@pytest.fixture(autouse=True)
def _no_bare_amqp_url(amqp_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Adapters log in with their own account from their config; a bare AMQP_URL (the test
    broker's admin URL, read once for ``amqp_url``) currently overrides it in
    ``AdapterConfig``, so keep it out of adapters' way."""
    monkeypatch.delenv("AMQP_URL", raising=False)


@pytest.fixture
async def deployment(amqp_url: str, tmp_path: Path) -> AsyncIterator[Deployment]:
    async with open_deployment(amqp_url, tmp_path) as opened:
        yield opened


def sent_files(folder: Path) -> list[str]:
    sent = folder / "sent"
    return sorted(p.name for p in sent.glob("*.edxml")) if sent.is_dir() else []


def status_codes(folder: Path) -> list[str]:
    """Status codes in the order the file names sort."""
    status = folder / "status"
    if not status.is_dir():
        return []
    return [
        json.loads(p.with_suffix(".json").read_text())["status_code"]
        for p in sorted(status.glob("*.edxml"))
    ]


def with_attachment(number: int, content: bytes) -> bytes:
    return document_edxml(
        G22,
        [H41],
        number,
        sender_name="Văn phòng Chính phủ",
        subject=f"Văn bản số {number} kèm tệp",
        references=(Reference(content_id="cid:1", attachment_name="Quyết định.pdf"),),
        attachments=(
            Attachment(
                content_id="cid:1",
                content=content,
                attachment_name="Quyết định.pdf",
                content_type="application/pdf",
            ),
        ),
    )


async def test_a_document_with_a_large_attachment_goes_folder_to_folder_and_statuses_01_to_06_come_back_in_order(  # noqa: E501
    deployment: Deployment,
) -> None:
    a = AdapterProcess(deployment, G22, "a")
    b = AdapterProcess(deployment, H41, "b")
    pdf = b"%PDF-1.7\n" + os.urandom(4 * 1024 * 1024)
    with running(a, b):
        await a.serving()
        await b.serving()
        drop(a.folder, "quyet-dinh.edxml", with_attachment(1, pdf))

        await wait_for(
            lambda: _true(len(inbox_documents(b.folder)) == 1), 60, "the document in B's inbox"
        )
        [entry] = (b.folder / "inbox").iterdir()
        assert (entry / "Quyết định.pdf").read_bytes() == pdf
        metadata = json.loads((entry / "metadata.json").read_text())
        assert metadata["sender"] == G22
        assert metadata["signer"]["sha256_fingerprint"]
        receipt = json.loads((a.folder / "sent" / "quyet-dinh.edxml.receipt.json").read_text())
        assert receipt["envelope_id"] == entry.name == metadata["envelope_id"]
        await wait_for(lambda: _true(status_codes(a.folder) == ["01"]), 30, "01 in A's status/")

        # B's clerk registers, gets it assigned, processes and completes it: each status is
        # a file B's software drops into B's outbox.
        for n, code in enumerate(
            [StatusCode.ACCEPTED, StatusCode.ASSIGNED, StatusCode.PROCESSING, StatusCode.COMPLETED]
        ):
            drop(
                b.folder, f"status-{code.value}.edxml", status_edxml(H41, document_id(G22, 1), code)
            )
            await wait_for(partial(_sent_count_is, b.folder, n + 1), 30, f"status {code} sent")

        await wait_for(
            lambda: _true(len(status_codes(a.folder)) == 5), 30, "five statuses in A's status/"
        )
    assert status_codes(a.folder) == ["01", "03", "04", "05", "06"]
    assert not list((a.folder / "failed").iterdir())


async def test_the_sending_adapter_killed_mid_burst_and_restarted_sends_every_file_exactly_once(
    deployment: Deployment,
) -> None:
    a = AdapterProcess(deployment, G22, "a")
    b = AdapterProcess(deployment, H41, "b")
    with running(a, b):
        await a.serving()
        await b.serving()
        for n in range(BURST):
            drop(a.folder, f"vb-{n:03}.edxml", document_edxml(G22, [H41], 1000 + n))
        await wait_for(lambda: _true(len(sent_files(a.folder)) >= 5), 60, "the first sends")
        a.kill()
        sent_at_kill = len(sent_files(a.folder))
        in_flight = list((a.folder / ".work" / "outgoing").iterdir())
        a.start()

        await wait_for(
            lambda: _true(len(sent_files(a.folder)) == BURST), 120, "every file in A's sent/"
        )
        await wait_for(
            lambda: _true(len(inbox_documents(b.folder)) >= BURST), 60, "every document at B"
        )
        await asyncio.sleep(1.5)  # a document delivered twice would be there by now

    assert sent_at_kill < BURST, "the kill came too late to prove anything"
    assert in_flight or sent_at_kill < BURST
    assert sent_files(a.folder) == [f"vb-{n:03}.edxml" for n in range(BURST)]
    receipts = list((a.folder / "sent").glob("*.receipt.json"))
    assert len(receipts) == BURST
    assert not list((a.folder / "outbox").iterdir())
    assert not list((a.folder / ".work" / "outgoing").iterdir())
    counts = Counter(inbox_documents(b.folder))
    assert set(counts) == {document_id(G22, 1000 + n) for n in range(BURST)}
    assert max(counts.values()) == 1, [d for d, c in counts.items() if c > 1]


async def test_the_receiving_adapter_killed_mid_burst_and_restarted_stores_every_document_once(
    deployment: Deployment,
) -> None:
    sender = await deployment.adapter(G22)
    sender_inbox = deployment.inbox(sender)
    b = AdapterProcess(deployment, H41, "b")
    with running(b):
        await b.serving()
        for n in range(BURST):
            await sender.send(document_edxml(G22, [H41], 2000 + n))
        await wait_for(
            lambda: _true(len(inbox_documents(b.folder)) >= 5), 60, "the first documents at B"
        )
        b.kill()
        stored_at_kill = len(inbox_documents(b.folder))
        b.start()
        await wait_for(
            lambda: _true(len(inbox_documents(b.folder)) >= BURST), 120, "every document at B"
        )
        # What the sender is told, not B's log: SIGKILL can land between B recording a 01
        # as sent and logging it, while its event loop is busy opening the next envelopes.
        await wait_for(
            lambda: _true(len(_arrivals(sender_inbox)) >= BURST), 60, "status 01 for each"
        )
        await asyncio.sleep(1.5)  # a document delivered twice would be written by now

    assert stored_at_kill < BURST, "the kill came too late to prove anything"
    counts = Counter(inbox_documents(b.folder))
    assert set(counts) == {document_id(G22, 2000 + n) for n in range(BURST)}
    assert max(counts.values()) == 1
    assert not list((b.folder / ".work" / "incoming").iterdir())
    # Status 01 reached the sender for every document (a 01 may come twice when the kill
    # fell between sending it and recording it: at least once, as the module promises).
    assert _arrivals(sender_inbox) == set(counts)


async def test_a_crash_after_the_inbox_write_and_before_the_ack_writes_nothing_twice(
    deployment: Deployment,
) -> None:
    """The exact window, made certain: stored, then the process dies before the ack."""
    a = await deployment.adapter(G22)
    a_inbox = deployment.inbox(a)
    folder = Path(str(deployment.config(H41).agencies[0].folder))
    first = await deployment.adapter(H41, auto_arrival=False)
    crashed = DropFolder(first, {H41: folder})
    crashed.prepare()
    receipt = await a.send(document_edxml(G22, [H41], 4000))
    items = first.received()
    item = await anext(items)
    assert await crashed.store(item)  # on disk, not acknowledged, no 01 yet
    entry = folder / "inbox" / receipt.envelope_id
    written = (entry / "metadata.json").stat().st_mtime_ns
    await first.close()  # the connection goes away with the message unacknowledged
    with contextlib.suppress(Exception):
        await items.aclose()

    second = await deployment.adapter(H41, auto_arrival=False)
    restarted = DropFolder(second, {H41: folder})
    with capture_logs() as logs:
        running_task = asyncio.create_task(restarted.run())
        [arrived] = await a_inbox.wait_for(1, timeout=30)
        restarted.stop()
        await running_task

    assert [e["envelope_id"] for e in logs if e["event"] == "adapter.redelivered"] == [
        receipt.envelope_id
    ]
    assert [p.name for p in (folder / "inbox").iterdir()] == [receipt.envelope_id]
    assert (entry / "metadata.json").stat().st_mtime_ns == written
    assert isinstance(arrived.message, EdxmlStatus)
    assert arrived.message.status_code == StatusCode.ARRIVED
    assert await a_inbox.quiet(1.0) == [arrived]  # 01 once


async def test_a_hub_serves_a_folder_per_agency_sending_as_each_and_delivering_to_each(
    deployment: Deployment,
) -> None:
    g22 = await deployment.adapter(G22)
    g22_inbox = deployment.inbox(g22)
    hub = await deployment.adapter(HUB, [H53, H53_DISTRICT], auto_arrival=False)
    roots = {code: deployment.root / "hub" / code for code in (H53, H53_DISTRICT)}
    service = DropFolder(hub, roots, DropFolderOptions(poll_interval=0.05))
    runner = asyncio.create_task(service.run())
    try:
        await g22.send(document_edxml(G22, [H53, H53_DISTRICT], 5000))
        drop(roots[H53], "tinh.edxml", document_edxml(H53, [G22], 5001))
        drop(roots[H53_DISTRICT], "huyen.edxml", document_edxml(H53_DISTRICT, [G22], 5002))
        # G22 gets both documents and a 01 from each hub agency.
        items = await g22_inbox.wait_for(4, timeout=30)
    finally:
        service.stop()
        await runner

    for code in (H53, H53_DISTRICT):
        assert inbox_documents(roots[code]) == [document_id(G22, 5000)]
        metadata = json.loads(next((roots[code] / "inbox").glob("*/metadata.json")).read_text())
        assert metadata["recipient"] == code
    documents = {i.header.sender for i in items if isinstance(i.message, EdxmlDocument)}
    assert documents == {H53, H53_DISTRICT}
    arrivals = {i.header.sender for i in items if isinstance(i.message, EdxmlStatus)}
    assert arrivals == {H53, H53_DISTRICT}
    assert sent_files(roots[H53]) == ["tinh.edxml"]
    assert sent_files(roots[H53_DISTRICT]) == ["huyen.edxml"]


async def test_send_publishes_one_file_and_prints_its_receipt(deployment: Deployment) -> None:
    b = await deployment.adapter(H41)
    b_inbox = deployment.inbox(b)
    a = AdapterProcess(deployment, G22, "a")
    letter = deployment.root / "letter.edxml"
    letter.write_bytes(document_edxml(G22, [H41], 6000))
    env = {k: v for k, v in os.environ.items() if not k.startswith("VDX_") and k != "AMQP_URL"}

    done = await asyncio.to_thread(
        subprocess.run,
        [*adapter_command(), "send", str(letter), "--config", str(a.config_file)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )

    assert done.returncode == 0, done.stderr[-2000:]
    receipt = json.loads(done.stdout)
    assert receipt["document_id"] == document_id(G22, 6000)
    assert receipt["recipients"] == [H41]
    [item] = await b_inbox.wait_for(1)
    assert item.envelope_id == receipt["envelope_id"]


def _arrivals(inbox: Inbox) -> set[str]:
    """Document ids the sender has received status 01 for."""
    return {
        item.message.response_for.document_id
        for item in inbox.items
        if isinstance(item.message, EdxmlStatus) and item.message.status_code == StatusCode.ARRIVED
    }


async def test_a_malformed_outbox_file_ends_in_failed_with_a_clear_error(
    deployment: Deployment,
) -> None:
    a = AdapterProcess(deployment, G22, "a")
    broken = document_edxml(G22, [H41], 3000).replace(b"<edXML:Subject>", b"<edXML:Subjekt>")
    with running(a):
        await a.serving()
        drop(a.folder, "broken.edxml", broken)
        error_file = a.folder / "failed" / "broken.edxml.error.json"
        await wait_for(lambda: _true(error_file.exists()), 30, "the error file")

    error = json.loads(error_file.read_text())
    assert (a.folder / "failed" / "broken.edxml").read_bytes() == broken
    assert error["reason"] in {"edxml_invalid", "edxml_not_well_formed"}
    assert error["issues"], error
    assert all(issue["line"] for issue in error["issues"])
    assert error["message"]
    assert not list((a.folder / "sent").iterdir())


async def _true(value: bool) -> bool:
    return value


async def _sent_count_is(folder: Path, count: int) -> bool:
    return len(sent_files(folder)) == count


async def test_an_adapter_serves_health_readiness_and_metrics(deployment: Deployment) -> None:
    port = free_port()
    adapter = AdapterProcess(deployment, G22, "a-http", http_port=port)
    with running(adapter):
        await adapter.serving()
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
            assert (await http.get("/healthz")).json() == {"status": "alive"}
            ready = await http.get("/readyz")
            metrics = (await http.get("/metrics")).text
    assert ready.status_code == 200, ready.text
    assert ready.json()["checks"] == {"broker": "ok", "certificates": "ok"}
    assert f'vdx_certificate_not_after_timestamp_seconds{{agency="{G22}"}}' in metrics
    assert "vdx_adapter_sent_total" in metrics
