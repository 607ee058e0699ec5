"""Issue 18's crash safety with a large document: the sending adapter, the router or the
recipient adapter SIGKILLed mid-document and restarted; the document arrives exactly once,
byte for byte, the sender gets its receipt and status 01, no partial document is ever in
the recipient's inbox, and every staging directory is reclaimed.

The document's size is ``VDX_FAULTS_LARGE_MIB`` (default 200, the issue's size); the chunks
are 1 MiB (the smallest the router admits), so that a kill lands between many of them.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from testkit import document_with_attachment
from tests.faults.harness import (
    G22,
    H41,
    RESULTS,
    Result,
    RouterProcess,
    deployment_for,
    wait_for,
)
from tests.support import Exchange
from tests.support.adapter_process import AdapterProcess, drop, inbox_documents

pytestmark = [pytest.mark.faults, pytest.mark.broker, pytest.mark.clock]

MiB = 1 << 20
LARGE_MIB = int(os.environ.get("VDX_FAULTS_LARGE_MIB", "200"))
CHUNK = 1 * MiB
SIGNATURE = re.compile(rb"<ds:Signature\b.*?</ds:Signature>", re.S)
NUMBER = 180_018


def _large_document() -> tuple[bytes, bytes]:
    """An edXML of about ``LARGE_MIB`` MiB: its annex is base64 inside (4 bytes per 3)."""
    annex = b"%PDF-1.7\n" + os.urandom(LARGE_MIB * MiB * 3 // 4)
    return document_with_attachment(G22, [H41], NUMBER, annex), annex


class Scene:
    """The router and both drop-folder adapters as processes; the document in flight."""

    def __init__(self, exchange: Exchange, root: Path) -> None:
        self.router = RouterProcess(exchange, root)
        deployment = deployment_for(exchange, root)
        chunked = {"chunk_bytes": CHUNK}
        self.sender = AdapterProcess(deployment, G22, "sender", settings=chunked)
        self.recipient = AdapterProcess(deployment, H41, "recipient", settings=chunked)
        self.partial_seen: list[str] = []  # inbox entries ever seen not whole

    # -- where the document is ---------------------------------------------------------

    def staging(self, adapter: AdapterProcess) -> Path:
        return adapter.folder / ".work" / "staging"

    def sender_confirmed(self) -> int:
        """Messages of the kept send the broker confirmed (0 before or after it)."""
        counts = self.staging(self.sender).glob("outgoing/pending/*/confirmed")
        return max((int(p.read_text() or 0) for p in counts), default=0)

    def recipient_staged(self) -> int:
        """Chunk files in the recipient's staging (the document being received)."""
        return sum(1 for _ in self.staging(self.recipient).glob("incoming/*/*.chunk"))

    def watch_inbox(self, size: int) -> None:
        """Every inbox entry seen must already hold the whole document."""
        inbox = self.recipient.folder / "inbox"
        for entry in inbox.iterdir() if inbox.is_dir() else ():
            document = entry / "document.edxml"
            if not document.exists() or document.stat().st_size < size:
                self.partial_seen.append(entry.name)

    def leftovers(self) -> list[str]:
        """What staging still holds once the document is in and acknowledged."""
        left = [
            *self.staging(self.sender).glob("outgoing/pending/*"),
            *self.staging(self.sender).glob("outgoing/*.xml"),
            *self.staging(self.recipient).glob("incoming/*"),
            *self.staging(self.recipient).glob("delivered/*"),
        ]
        return [str(p.relative_to(p.parents[3])) for p in left]


async def _until(check: Callable[[], bool], timeout: float, what: str) -> None:
    await wait_for(check, timeout, what)


async def _kill_and_restart(
    scene: Scene,
    victim: str,
    size: int,
    *,
    mid: Callable[[], bool],
    start: Callable[[], None],
    up: Callable[[], Awaitable[None]],
) -> str:
    """SIGKILL ``victim`` once ``mid()`` holds (and the document is not in the inbox yet),
    then start it again; returns where the kill hit."""

    def ready() -> bool:
        scene.watch_inbox(size)
        for refusal in (scene.sender.folder / "failed").glob("*.error.json"):
            # e.g. edxml_too_large: the edXML limit (64 MiB) below the document's size
            raise AssertionError(f"the sender refused the document: {refusal.read_text()}")
        return mid()

    await _until(ready, 600, f"the document mid-way to kill the {victim}")
    at = f"sender confirmed {scene.sender_confirmed()}, recipient staged {scene.recipient_staged()}"
    assert not inbox_documents(scene.recipient.folder), "the kill came after the delivery"
    process = {"sender": scene.sender, "router": scene.router, "recipient": scene.recipient}[
        victim
    ].process
    assert process is not None
    process.send_signal(signal.SIGKILL)
    process.wait()
    await asyncio.sleep(1)
    start()
    await up()
    return f"{victim} SIGKILLed ({at} of {-(-size // CHUNK)} chunks)"


async def _run(shared_exchange: Exchange, tmp_path: Path, victim: str) -> None:
    began = time.monotonic()
    edxml, annex = _large_document()
    scene = Scene(shared_exchange, tmp_path)
    router, sender, recipient = scene.router, scene.sender, scene.recipient
    router.start()
    await router.started()
    sender.start()
    recipient.start()
    try:
        await asyncio.gather(sender.serving(), recipient.serving())
        drop(sender.folder, "large.edxml", edxml)
        # Past the first few chunks, far from the last: the kill lands mid-document.
        quarter = max(3, LARGE_MIB // 4)
        kills: dict[
            str, tuple[Callable[[], bool], Callable[[], None], Callable[[], Awaitable[None]]]
        ] = {
            "sender": (lambda: scene.sender_confirmed() >= quarter, sender.start, sender.serving),
            "router": (lambda: scene.recipient_staged() >= quarter, router.start, router.started),
            "recipient": (
                lambda: scene.recipient_staged() >= quarter,
                recipient.start,
                recipient.serving,
            ),
        }
        mid, start, up = kills[victim]
        note = await _kill_and_restart(scene, victim, len(edxml), mid=mid, start=start, up=up)

        inbox = recipient.folder / "inbox"

        def delivered() -> bool:
            scene.watch_inbox(len(edxml))
            return bool(inbox_documents(recipient.folder))

        await _until(delivered, 900, "the document in H41's inbox")
        status = sender.folder / "status"
        await _until(lambda: any(status.glob("*_01_*.json")), 120, "status 01 in G22's status/")
        receipt = sender.folder / "sent" / "large.edxml.receipt.json"
        await _until(receipt.exists, 60, "the receipt in sent/")
        await _until(lambda: not scene.leftovers(), 60, "staging reclaimed")
        await asyncio.sleep(3)  # a second delivery would be written by now
        scene.watch_inbox(len(edxml))
    finally:
        for adapter in (sender, recipient):
            adapter.stop()
        router.stop()

    entries = list(inbox.iterdir())
    documents = inbox_documents(recipient.folder)
    arrivals = [json.loads(p.read_text()) for p in status.glob("*.json")]
    result = Result(
        scenario=f"{LARGE_MIB} MiB document, {victim} kill -9, restarted",
        sent=1,
        delivered=len(set(documents)),
        duplicates=len(documents) - len(set(documents)),
        lost=1 - len(set(documents)),
        statuses=sum(1 for a in arrivals if a["status_code"] == "01"),
        seconds=round(time.monotonic() - began, 1),
        notes=note,
    )
    RESULTS.append(result)
    assert result.ok, result
    assert not scene.partial_seen, f"partial documents seen in the inbox: {scene.partial_seen}"
    [entry] = entries
    assert SIGNATURE.sub(b"", (entry / "document.edxml").read_bytes()) == edxml
    assert (entry / "vb.pdf").read_bytes() == annex
    metadata = json.loads((entry / "metadata.json").read_text())
    assert json.loads(receipt.read_text())["envelope_id"] == metadata["envelope_id"]
    assert not list((sender.folder / "failed").glob("*")), "the sender's file was failed"
    log = sender.log.read_text()
    # Sealed once: a restarted sender finishes the envelope it began, never seals anew.
    assert log.count('"event": "adapter.sealed"') == 1, sender.tail()
    if victim == "sender":
        assert '"event": "adapter.send_resumed"' in log, sender.tail()


@pytest.mark.parametrize("victim", ["sender", "router", "recipient"])
async def test_a_large_document_arrives_exactly_once_when_a_party_is_killed_mid_document(
    shared_exchange: Exchange, tmp_path: Path, victim: str
) -> None:
    await _run(shared_exchange, tmp_path, victim)
