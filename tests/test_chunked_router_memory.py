"""The router's memory does not grow with a chunked document (issue 18): a router process
of its own, its peak RSS (VmHWM) read once warm, and again after it took a document several
times larger than what it may hold in flight. Bounded, not timed."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.faults.harness import RouterProcess, deployment_for, exchange_on
from tests.support import document_with_attachment

pytestmark = pytest.mark.broker

G22, H41 = "000.00.00.G22", "000.00.00.H41"
MiB = 1 << 20
CHUNKS = {"chunk_bytes": MiB}
DOCUMENT = 48 * MiB  # of edXML, base64 annex included


def _peak_rss(pid: int) -> int:
    """The process's peak resident set (VmHWM), in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmHWM for process {pid}")


def _annex(annex_bytes: int) -> bytes:
    return b"%PDF-1.7\n" + os.urandom(annex_bytes)


async def test_the_routers_peak_memory_stays_flat_with_a_document_waiting_at_default_prefetch(
    amqp_url: str, tmp_path: Path
) -> None:
    """The worst case for memory: a whole document's chunks waiting in the queue when the
    router starts, at the default prefetch (256 envelopes). Chunks come from their own
    queue, ``chunk_prefetch`` (4) at a time, so the router never takes in the document."""
    async with exchange_on(amqp_url, tmp_path) as exchange:
        deployment = deployment_for(exchange, tmp_path)
        router = RouterProcess(exchange, tmp_path)
        try:
            router.start()
            await router.started()
            a = await deployment.adapter(G22, settings=CHUNKS)
            b = deployment.inbox(await deployment.adapter(H41, settings=CHUNKS))
            await a.send(document_with_attachment(G22, [H41], 1, _annex(2 * MiB)))
            await b.wait_for(1, timeout=120)  # warm: every code path taken once
            assert router.process is not None
            before = _peak_rss(router.process.pid)
            router.stop()

            receipt = await a.send(  # all of it waits in the queues: no router
                document_with_attachment(G22, [H41], 2, _annex(DOCUMENT * 3 // 4))
            )
            router.start()
            await router.started()
            items = await b.wait_for(2, timeout=180)
            assert items[-1].envelope_id == receipt.envelope_id
            after = _peak_rss(router.process.pid)
        finally:
            await deployment.close()
            router.stop()

    grown = after - before
    # A few chunks in flight (each held as received, as read and as published), never the
    # document: well under a third of it. Taken 256 at a time, it would be all of it.
    assert grown < DOCUMENT // 3, f"the router's peak RSS grew by {grown / MiB:.1f} MiB"
    print(
        f"router peak RSS {before / MiB:.1f} (warm) → {after / MiB:.1f} MiB (restarted with "
        f"{DOCUMENT / MiB:.0f} MiB waiting)"
    )
