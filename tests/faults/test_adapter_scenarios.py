"""Faults on the adapters' side: the network to the broker cut and restored, and the
recipient's inbox disk full."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from backbone.broker.management import ManagementClient
from tests.faults.harness import DOCUMENTS, H41, RouterProcess, Run, run_with_fault
from tests.faults.proxy import TcpProxy
from tests.support import Exchange

pytestmark = [pytest.mark.faults, pytest.mark.broker]

CUT_SECONDS = 6.0
DISK_FULL_SECONDS = 30.0  # longer than the inbox's delivery limit of redeliveries takes


async def test_network_between_the_adapters_and_the_broker_cut_and_restored_loses_nothing(
    shared_exchange: Exchange, tmp_path: Path
) -> None:
    broker = urlsplit(shared_exchange.amqp_url)
    async with TcpProxy((broker.hostname or "127.0.0.1", broker.port or 5672)) as proxy:
        run = Run(shared_exchange, tmp_path, adapter_url=f"amqp://127.0.0.1:{proxy.port}/")
        router = RouterProcess(shared_exchange, tmp_path)  # straight to the broker
        during_cut: list[int] = []

        async def cut_and_restore() -> str:
            proxy.cut()
            at_cut = run.delivered_entries()
            await asyncio.sleep(CUT_SECONDS)
            during_cut.append(run.delivered_entries() - at_cut)
            proxy.restore()
            return f"cut {CUT_SECONDS:.0f}s: {proxy.cuts} connections reset"

        outcome = await run_with_fault(run, [router], cut_and_restore)
    result = run.result(
        "network cut adapter<->broker",
        f"at {outcome.at_fault}; {outcome.note}"
        + "".join(f"; {problem}" for problem in outcome.stop_problems),
    )
    assert proxy.cuts >= 2, "both adapters' connections went through the proxy and were cut"
    assert during_cut[0] <= 32, "delivery went on through a cut network (beyond the prefetch)"
    for adapter in (run.sender, run.recipient):
        assert '"adapter.reconnected"' in adapter.log.read_text(), adapter.tail()
    outcome.check(result, logs=router.tail())


class FullDisk:
    """The recipient's folder on a small tmpfs of its own; ``fill()`` takes every free
    byte (ENOSPC for every write the adapter tries), ``free()`` gives them back."""

    def __init__(self, folder: Path, size_mb: int) -> None:
        self.folder = folder
        self.filler = folder / "filler"
        folder.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size_mb}m", "tmpfs", str(folder)],
            check=True,
            capture_output=True,
        )

    def fill(self) -> None:
        with self.filler.open("wb") as out:
            for _ in range(10):  # the adapter may take a few pages between the two calls
                free = os.statvfs(self.folder)
                try:
                    os.posix_fallocate(out.fileno(), 0, free.f_bavail * free.f_frsize)
                except OSError as error:
                    if error.errno != errno.ENOSPC:
                        raise
                    continue
                return
        raise AssertionError(f"could not fill {self.folder}")

    def free(self) -> None:
        self.filler.unlink()

    def unmount(self) -> None:
        subprocess.run(["umount", str(self.folder)], check=False, capture_output=True)


@contextlib.contextmanager
def full_disk_for(folder: Path, size_mb: int) -> Iterator[FullDisk]:
    disk = FullDisk(folder, size_mb)
    try:
        yield disk
    finally:
        disk.unmount()


async def test_recipient_inbox_disk_full_acknowledges_nothing_and_delivery_resumes_when_freed(
    shared_exchange: Exchange, tmp_path: Path
) -> None:
    run = Run(shared_exchange, tmp_path)
    management = ManagementClient.from_env()
    inbox_queue = shared_exchange.inbox_of(H41)
    router = RouterProcess(shared_exchange, tmp_path)
    seen: dict[str, int] = {}

    async def fill_then_free() -> str:
        disk.fill()
        seen["at_full"] = run.delivered_entries()
        await asyncio.sleep(DISK_FULL_SECONDS)
        # Everything the sender got confirmed meanwhile is routed, none of it is stored.
        seen["stored"] = run.delivered_entries()
        seen["sent"] = len(list((run.sender.folder / "sent").glob("*.receipt.json")))
        # A document the broker confirmed to the sender may still wait in the router's
        # inbound queue under load: count the inbox once the router has routed them all.
        seen["queued"] = await _settled_depth(
            management, inbox_queue, drained=shared_exchange.names.inbound_queue
        )
        seen["parked"] = (
            await management.queue_message_count(shared_exchange.names.dead_letter_parked) or 0
        )
        disk.free()
        return f"full {DISK_FULL_SECONDS:.0f}s: {seen['queued']} held in the queue meanwhile"

    # Some 16 KiB a document on tmpfs (its files, the journal): room for every one.
    with full_disk_for(run.recipient.folder, size_mb=64 + DOCUMENTS // 40) as disk:
        outcome = await run_with_fault(run, [router], fill_then_free)
        result = run.result(  # counted before the tmpfs goes away
            "recipient inbox disk full", f"at {outcome.at_fault}; {outcome.note}"
        )
    assert seen["stored"] - seen["at_full"] <= 1, "stored on a full disk"  # one mid-write
    assert seen["queued"] >= seen["sent"] - seen["stored"] > 0, (
        f"{seen['sent']} sent, {seen['stored']} stored, but only {seen['queued']} in "
        f"{inbox_queue}: acknowledged while not stored"
    )
    assert seen["parked"] == 0, "documents were dead-lettered while the disk was full"
    outcome.check(result, logs=router.tail())


async def _settled_depth(management: ManagementClient, queue: str, *, drained: str) -> int:
    """``queue``'s depth (ready + unacknowledged) once ``drained`` is empty and four samples
    2 s apart agree (longer than the management API's 5 s statistics interval): its
    statistics are sampled per queue, so a sum over two queues a message moves between is
    not to be trusted."""
    seen: list[int] = []
    for _ in range(45):
        if (await management.queue_message_count(drained) or 0) == 0:
            seen.append(await management.queue_message_count(queue) or 0)
            if len(seen) >= 4 and len(set(seen[-4:])) == 1:
                return seen[-1]
        else:
            seen.clear()
        await asyncio.sleep(2)
    raise AssertionError(f"the depth of {queue} did not settle (or {drained} drain): {seen}")
