"""Both gateways killed (SIGKILL) and restarted while the agencies' software sends and
receives through them: A's during ``sendEdoc``, B's during the list/get/done loop.

The operation's promises (docs/gateway.md, issue 16): ``sendEdoc`` answers OK with a DocId
only once the broker confirmed, the same file sent again gets the same DocId and is not
sent twice; a received item is stored before the broker is acknowledged, so a kill loses
none and shows none twice; 01 goes to the sender once the software said ``done``, once.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from testkit import Deployment
from tests.faults.gateway_harness import (
    Failures,
    GatewayProcess,
    KillPoint,
    ReceivingSoftware,
    SendingSoftware,
    document_of,
    envelopes_seen_by_router,
    four_kib_document,
    kill_at,
    received_per_document,
    routed_per_document,
)
from tests.faults.harness import G22, H41, RESULTS, STALL_TIMEOUT, Result, RouterProcess
from tests.support import Exchange

pytestmark = [pytest.mark.faults, pytest.mark.broker]

DOCUMENTS = int(os.environ.get("VDX_FAULTS_GATEWAY_DOCUMENTS", "300"))


async def test_gateways_killed_during_send_and_receive_lose_nothing_and_repeat_nothing(
    shared_exchange: Exchange, tmp_path: Path
) -> None:
    started = time.monotonic()
    deployment = Deployment.without_router(shared_exchange, tmp_path)
    router = RouterProcess(shared_exchange, tmp_path)
    a = GatewayProcess(deployment, G22, tmp_path, "gateway-a")
    b = GatewayProcess(deployment, H41, tmp_path, "gateway-b")
    files = [four_kib_document(G22, [H41], 200_000 + n) for n in range(DOCUMENTS)]
    expected = {document_of(data) for data in files}
    once = Counter(expected)  # every document exactly once
    assert len(expected) == DOCUMENTS
    assert all(4000 < len(f) <= 4200 for f in files)

    router.start()
    await router.started()
    a.start()
    b.start()
    try:
        await asyncio.gather(asyncio.to_thread(a.serving), asyncio.to_thread(b.serving))
        sending = SendingSoftware(a, G22, files, stall_timeout=STALL_TIMEOUT)
        receiving = ReceivingSoftware(b, DOCUMENTS, stall_timeout=STALL_TIMEOUT)
        sending.start()
        receiving.start()
        # A is killed after a quarter, a half, three quarters of the OKs: while a document
        # is sealed and recorded but not yet confirmed, while a request is with it, and
        # right after an answer. B after an eighth, three, five, seven eighths of the
        # `done`s: while a 01 is owed and not yet sealed, owed and kept but not confirmed,
        # while the software's list/get/done call is with it, right after an answer.
        quarter, eighth = DOCUMENTS // 4, DOCUMENTS // 8
        a_points = [
            KillPoint(quarter, "unconfirmed", lambda: _has(a, _UNCONFIRMED)),
            _in_request(2 * quarter, sending.failures),
            KillPoint(3 * quarter, "after-answer"),
        ]
        b_points = [
            KillPoint(eighth, "01-unsealed", lambda: _has(b, _OWED_UNSEALED)),
            KillPoint(3 * eighth, "01-kept", lambda: _has(b, _OWED_KEPT)),
            _in_request(5 * eighth, receiving.failures),
            KillPoint(7 * eighth, "after-answer"),
        ]
        a_hits, b_hits = await asyncio.gather(
            kill_at(a, a_points, sending, lambda: len(sending.doc_ids)),
            kill_at(b, b_points, receiving, lambda: len(receiving.done)),
        )
        while sending.is_alive() or receiving.is_alive():
            await asyncio.sleep(0.1)
        for thread in (sending, receiving):
            if thread.error is not None:
                raise thread.error

        # Every 01 back at A (B sends each once the software said done).
        await _until(lambda: sum(received_per_document(a, "status", "01").values()), DOCUMENTS)
        # The same files again: the same DocIds, and nothing new reaches B.
        again = [a.sdk().send_edoc(data, sender=G22) for data in files[:5]]
        await asyncio.sleep(3)  # a document sent twice would have reached B by now
        arrivals = received_per_document(a, "status", "01")
        received_at_b = received_per_document(b, "edoc")
        listed_at_end = b.sdk().received_list()
    finally:
        for process in (a, b):
            process.stop(timeout=30)
        router_code = router.stop()
    routed = routed_per_document(tmp_path / "router.db", "document", H41)
    routed_01 = routed_per_document(tmp_path / "router.db", "status", G22)
    shown = Counter(receiving.done.values())
    envelopes = envelopes_seen_by_router(router.log, G22)  # A's documents
    envelopes_01 = envelopes_seen_by_router(router.log, H41)  # B's 01s

    notes = (
        f"A killed at {a_hits} OKs (sendEdoc: {sending.failures.describe()}); "
        f"B killed at {b_hits} done ({receiving.failures.describe()}); "
        f"router: {router.count('router.routed')} routed, "
        f"{router.count('router.duplicate')} duplicates answered; envelopes per document "
        f"{_spread(envelopes)}, per 01 {_spread(envelopes_01)}"
    )
    result = Result(
        scenario="gateways kill -9, A x3, B x4",
        sent=DOCUMENTS,
        delivered=len(set(shown) & expected),
        duplicates=sum(n - 1 for n in shown.values()) + len(receiving.shown_again),
        lost=len(expected - set(shown)),
        statuses=len(set(arrivals) & expected),
        seconds=round(time.monotonic() - started, 1),
        notes=notes,
    )
    RESULTS.append(result)
    print(
        f"\n{notes}\nB: {len(receiving.done)} done, {receiving.listings} listings, "
        f"{len(receiving.shown_again)} shown after done; received rows {received_at_b.total()}"
        f"; router deliveries to B {routed.total()}, 01s to A {routed_01.total()}; "
        f"A's 01 rows {arrivals.total()}; sendEdoc attempts {sending.attempts}"
    )

    assert router_code == 0, router.tail()
    assert len(a_hits) == len(a_points), "a kill of A came after the last sendEdoc"
    assert len(b_hits) == len(b_points), "a kill of B came after the last done"
    assert not [hit for hit in a_hits + b_hits if "missed" in hit], (a_hits, b_hits)
    assert sending.failures.cut_mid_request > 0, "no kill landed inside a sendEdoc"
    # sendEdoc: one OK per file, one DocId per file, and a repeat gives the same DocId.
    assert len(set(sending.doc_ids)) == DOCUMENTS
    assert [answer and answer["DocId"] for answer in again] == sending.doc_ids[:5]
    # Nothing lost, nothing shown twice: every document done exactly once at B, and no
    # item listed again after its done was answered.
    assert shown == once
    assert receiving.shown_again == []
    assert listed_at_end is not None
    assert listed_at_end["data"] == []
    # No document published twice: one envelope per document reached B's state and the
    # router's deliveries (a republish of the same sealed bytes is answered duplicate).
    assert received_at_b == once
    assert routed == once
    assert {document: len(ids) for document, ids in envelopes.items()} == once
    # Each 01 sealed once: a kill while it is owed resends the kept bytes, never a second 01.
    assert {document: len(ids) for document, ids in envelopes_01.items()} == once
    # Exactly one 01 per document came back to A.
    assert arrivals == once
    assert routed_01 == once
    assert result.ok, result


_UNCONFIRMED = "SELECT 1 FROM sent WHERE sent_time IS NULL LIMIT 1"
_OWED_UNSEALED = "SELECT 1 FROM received WHERE arrival_state = 'owed' AND arrival IS NULL LIMIT 1"
_OWED_KEPT = "SELECT 1 FROM received WHERE arrival_state = 'owed' AND arrival IS NOT NULL LIMIT 1"


def _in_request(after: int, failures: Failures) -> KillPoint:
    """A kill while the software's call is with the gateway, tried again until the call
    died under it (the call may end between the poll and the kill)."""
    cut_before = [failures.cut_mid_request]

    def window() -> bool:
        cut_before[0] = failures.cut_mid_request
        return failures.in_call_for(0.002)

    return KillPoint(
        after, "in-request", window, landed=lambda: failures.cut_mid_request > cut_before[0]
    )


def _has(gateway: GatewayProcess, sql: str) -> bool:
    try:
        return bool(gateway.query(sql))
    except sqlite3.OperationalError:  # busy or not created yet: not now
        return False


def _spread(envelopes: dict[str, set[str]]) -> str:
    counts = [len(ids) for ids in envelopes.values()] or [0]
    return f"{min(counts)}..{max(counts)}"


async def _until(progress: Callable[[], int], count: int) -> None:
    last, moved = -1, time.monotonic()
    while (now := progress()) < count:
        if now != last:
            last, moved = now, time.monotonic()
        elif time.monotonic() - moved > STALL_TIMEOUT:
            raise AssertionError(f"stalled at {now} of {count}")
        await asyncio.sleep(0.25)
