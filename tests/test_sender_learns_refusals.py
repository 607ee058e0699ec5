"""The sender always knows (issue 15): every refusal the router makes of what an honest
drop-folder adapter sent shows up in that agency's folder with its reason, on the real
broker and the real router, and the events queues end empty."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from adapters import AdapterClient
from adapters.abc import Event
from adapters.dropfolder import DropFolder, DropFolderOptions
from adapters.dropfolder.remedies import what_to_do
from backbone.edxml import StatusCode
from backbone.observability import metrics
from backbone.router.policy import RoutingPolicy
from testkit import Deployment, document_edxml, document_id, open_deployment, status_edxml

pytestmark = pytest.mark.clock  # document ids carry the Vietnam date, from backbone.clock

G22, G01, H41 = "000.00.00.G22", "000.00.05.G01", "000.00.00.H41"
COMMUNE, UNIT = "000.07.12.H41", "002.07.12.H41"
FAST = DropFolderOptions(poll_interval=0.05, retry_initial=0.01, retry_max=0.2)
VENDOR_01 = Path("/work/shared/interop/edxml/status_inbox__01.edxml")
VENDOR_DOCUMENT_ID = "000.00.00.G22,2015/09/30,7816/VPCP-TTĐT"


@dataclass
class Running:
    client: AdapterClient
    folder: DropFolder
    task: asyncio.Task[None]

    @property
    def root(self) -> Path:
        return next(iter(self.folder.folders.values())).root


@contextlib.asynccontextmanager
async def drop_folder(deployment: Deployment, code: str) -> AsyncIterator[Running]:
    """A started drop-folder adapter for ``code``, as ``backbone adapter run`` makes it."""
    client = AdapterClient(deployment.config(code), auto_arrival=False)
    await client.start()
    service = DropFolder(client, {code: deployment.root / "folders" / code}, FAST)
    task = asyncio.create_task(service.run(), name=f"dropfolder {code}")
    try:
        yield Running(client, service, task)
    finally:
        service.stop()
        await asyncio.wait_for(task, 20)
        await client.close()


def drop(root: Path, name: str, data: bytes) -> None:
    (root / "outbox" / f"{name}.tmp").write_bytes(data)
    (root / "outbox" / f"{name}.tmp").rename(root / "outbox" / name)


async def eventually(path: Path, timeout: float = 30.0) -> dict[str, Any]:
    """The JSON at ``path`` once it exists."""
    await appears(path, timeout)
    value: dict[str, Any] = json.loads(path.read_text())
    return value


async def appears(path: Path, timeout: float = 30.0) -> None:
    async with asyncio.timeout(timeout):
        while not path.exists():
            await asyncio.sleep(0.05)


def events_handed_out() -> float:
    """Events the adapters of this process handed out so far (every type and reason)."""
    return sum(
        sample.value
        for metric in metrics.ADAPTER_EVENTS.collect()
        for sample in metric.samples
        if sample.name.endswith("_total")
    )


async def handed_out(count: float, timeout: float = 30.0) -> None:
    async with asyncio.timeout(timeout):
        while events_handed_out() < count:
            await asyncio.sleep(0.05)


async def routed(root: Path, name: str) -> dict[str, Any]:
    receipt = root / "sent" / f"{name}.receipt.json"
    async with asyncio.timeout(30):
        while (await eventually(receipt)).get("router_outcome") != "routed":
            await asyncio.sleep(0.05)
    return await eventually(receipt)


async def events_waiting(deployment: Deployment, system: str) -> int:
    """Messages ready in ``system``'s events queue (a passive declare)."""
    channel = await deployment.exchange.channel(deployment.exchange.account_of(system))
    queue = await channel.declare_queue(deployment.exchange.events_of(system), passive=True)
    count = queue.declaration_result.message_count
    assert count is not None
    return count


async def events_delivered_to_a_new_consumer(deployment: Deployment, code: str) -> list[Event]:
    client = await deployment.adapter(code)
    taken: list[Event] = []

    async def consume() -> None:
        async for event in client.events():
            taken.append(event)

    consumer = asyncio.create_task(consume())
    await asyncio.sleep(1.5)
    consumer.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await consumer
    return taken


async def test_every_router_refusal_reaches_the_sending_folder_with_its_reason(
    amqp_url: str, tmp_path: Path
) -> None:
    policy = RoutingPolicy.model_validate({"rules": [{"from": G22, "to": COMMUNE, "allow": False}]})
    async with open_deployment(amqp_url, tmp_path, policy=policy, inactive=[UNIT]) as deployment:
        async with (
            drop_folder(deployment, G22) as sender,
            drop_folder(deployment, H41) as recipient,
        ):
            before = events_handed_out()
            await exercise(sender, recipient)
            # G22: routed, the status event of H41's 01, five rejected; H41: its 01 routed.
            await handed_out(before + 8)
            await asyncio.sleep(1.0)  # the last one is acknowledged as the next is asked for
        # Both adapters closed: anything not acknowledged went back to the queue. Nothing did:
        # a fresh consumer gets nothing (the declare's count of a quorum queue can lag).
        for code in (G22, H41):
            assert await events_waiting(deployment, code) == 0
            assert await events_delivered_to_a_new_consumer(deployment, code) == []


async def exercise(sender: Running, recipient: Running) -> None:
    """Drop one file per refusal; each must end in failed/ with the router's reason."""
    drop(sender.root, "original.edxml", document_edxml(G22, [H41], 1))
    original = await routed(sender.root, "original.edxml")
    # H41's adapter wrote it into inbox/ and sent 01; G22 has that 01 in status/.
    async with asyncio.timeout(30):
        while not list((sender.root / "status").glob("*.edxml")):
            await asyncio.sleep(0.05)
    refusals = {
        # The same DocumentId again, with other content.
        "conflict.edxml": (
            document_edxml(G22, [H41], 1, subject="Other content"),
            "duplicate_conflict",
        ),
        # A status about a document H41 never sent G22.
        "status.edxml": (
            status_edxml(G22, document_id(H41, 99), StatusCode.ACCEPTED, "tiếp nhận"),
            "status_unknown_document",
        ),
        # Revoking document 1 at an agency that never received it.
        "revocation.edxml": (
            document_edxml(G22, [G01], 1, business=1),
            "referenced_document_unknown",
        ),
        "to-inactive.edxml": (document_edxml(G22, [UNIT], 2), "recipient_unknown"),
        "denied.edxml": (document_edxml(G22, [COMMUNE], 3), "policy_denied"),
    }
    for name, (data, _) in refusals.items():
        drop(sender.root, name, data)
    # The vendor's own 01 about the document that arrived, codes adapted in memory.
    vendor = VENDOR_01.read_text(encoding="utf-8").replace(VENDOR_DOCUMENT_ID, document_id(G22, 1))
    drop(recipient.root, "vendor-01.edxml", vendor.encode())

    for name, (_, reason) in refusals.items():
        # The document moves last: its error record and receipt are there before it.
        await appears(sender.root / "failed" / name)
        error = await eventually(sender.root / "failed" / f"{name}.error.json")
        assert error["reason"] == reason, name
        assert error["refused_by"] == "router"
        assert error["message"]
        assert error["what_to_do"] == what_to_do(reason)
        assert (sender.root / "failed" / name).read_bytes() == data_of(refusals, name)
        receipt = json.loads((sender.root / "failed" / f"{name}.receipt.json").read_text())
        assert receipt["envelope_id"] == error["envelope_id"]
        assert receipt["router_outcome"] == "rejected"
        assert not (sender.root / "sent" / name).exists()
    vendor_error = await eventually(recipient.root / "failed" / "vendor-01.edxml.error.json")
    assert vendor_error["reason"] == "arrival_sent_by_adapter"
    assert vendor_error["what_to_do"] == what_to_do("arrival_sent_by_adapter")
    # Only the routed document is shown as sent.
    assert sorted(p.name for p in (sender.root / "sent").iterdir()) == [
        "original.edxml",
        "original.edxml.receipt.json",
    ]
    assert original["router_events"][0]["type"] == "routed"


def data_of(refusals: dict[str, tuple[bytes, str]], name: str) -> bytes:
    return refusals[name][0]
