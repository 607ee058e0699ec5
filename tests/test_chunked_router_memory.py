"""The router's memory does not grow with a chunked document (issue 18): a router process
of its own, its peak RSS (VmHWM) read before and after a document several times larger
than what it may hold in flight. Bounded, not timed."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from adapters import AdapterClient
from tests.faults.harness import RouterProcess, deployment_for, exchange_on
from tests.support import Inbox, document_with_attachment

pytestmark = pytest.mark.broker

G22, H41 = "000.00.00.G22", "000.00.00.H41"
MiB = 1 << 20
CHUNKS = {"chunk_bytes": MiB}
PREFETCH = 4  # chunks the router may hold unacknowledged, as configured
DOCUMENT = 48 * MiB  # of edXML, base64 annex included


def _peak_rss(pid: int) -> int:
    """The process's peak resident set (VmHWM), in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmHWM for process {pid}")


async def _deliver(a: AdapterClient, b: Inbox, number: int, annex_bytes: int) -> None:
    receipt = await a.send(
        document_with_attachment(G22, [H41], number, b"%PDF-1.7\n" + os.urandom(annex_bytes))
    )
    items = await b.wait_for(number, timeout=120)
    assert items[-1].envelope_id == receipt.envelope_id


async def test_the_routers_peak_memory_does_not_grow_with_a_chunked_document(
    amqp_url: str, tmp_path: Path
) -> None:
    async with exchange_on(amqp_url, tmp_path) as exchange:
        router = RouterProcess(exchange, tmp_path, settings={"prefetch": PREFETCH})
        router.start()
        deployment = deployment_for(exchange, tmp_path)
        try:
            await router.started()
            assert router.process is not None
            a = await deployment.adapter(G22, settings=CHUNKS)
            b = deployment.inbox(await deployment.adapter(H41, settings=CHUNKS))
            try:
                await _deliver(a, b, 1, 2 * MiB)  # warm: every code path taken once
                before = _peak_rss(router.process.pid)
                await _deliver(a, b, 2, DOCUMENT * 3 // 4)  # base64: 4/3 of the annex
                after = _peak_rss(router.process.pid)
            finally:
                await deployment.close()
        finally:
            router.stop()

    grown = after - before
    # A few chunks in flight (each held as received, as read and as published), never the
    # document: well under a third of it.
    assert grown < DOCUMENT // 3, f"the router's peak RSS grew by {grown / MiB:.1f} MiB"
    print(
        f"router peak RSS {before / MiB:.1f} → {after / MiB:.1f} MiB for {DOCUMENT / MiB:.0f} MiB"
    )
