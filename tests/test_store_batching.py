"""The group-commit store: concurrent writes share a transaction, resolve as sequential calls
would, fail together and commit nothing when their transaction fails, and close cleanly."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy.engine import Connection
from sqlalchemy.exc import OperationalError

from backbone.errors import StoreUnavailableError
from backbone.store import BatchingStore, SqlStore, open_store
from backbone.store.abc import Claim, ClaimState, Outcome, SubmissionKey
from backbone.store.calls import Call, ClaimCall
from backbone.store.sql import ONE_HOP_CALLS
from testkit.store import (
    DOCUMENT_ID,
    RECIPIENT,
    SENDER,
    backend,
    digest,
    envelope_id,
    header,
)

T0 = datetime(2024, 5, 1, 8, 0, tzinfo=UTC)


class Spy:
    """Counts the transactions a store commits, and the calls in each."""

    def __init__(self, store: SqlStore) -> None:
        self.batches: list[int] = []
        self._apply = store.apply

        async def apply(calls: Sequence[Call]) -> list[Claim | None]:
            self.batches.append(len(calls))
            return await self._apply(calls)

        store.apply = apply  # type: ignore[method-assign]


@pytest.fixture(params=["sqlite", "postgresql", "sqlite-aiosqlite"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[BatchingStore]:
    """The group commit as open_store makes it, and on SQLite with every transaction through
    aiosqlite (``one_hop_calls=0``), as a router's large batches go."""
    database, _, variant = request.param.partition("-")
    async with backend(database, tmp_path) as opened:
        if variant:
            batching = BatchingStore(await SqlStore.open(opened.url, one_hop_calls=0))
        else:
            opened_store = await open_store(opened.url, schema=opened.schema)
            assert isinstance(opened_store, BatchingStore)
            batching = opened_store
        yield batching
        await batching.close()


def identity(variant: str = "document:0", payload: str = "payload") -> SubmissionKey:
    return SubmissionKey(SENDER, "000.00.32.H53,2024/05/01,123/UBND-VP", variant, digest(payload))


async def test_concurrent_writes_share_a_few_transactions(store: BatchingStore) -> None:
    spy = Spy(store.store)
    headers = [header(business_type=n % 4, document_id=f"doc {n}") for n in range(200)]

    claims = await asyncio.gather(
        *(store.claim(SubmissionKey.of(h), h.envelope_id) for h in headers)
    )
    await asyncio.gather(*(store.record_routed(h, T0) for h in headers))

    assert all(claim.state is ClaimState.NEW for claim in claims)
    assert sum(spy.batches) == 400
    assert len(spy.batches) <= 4  # the first call alone, then whatever queued meanwhile
    again = await store.claim(SubmissionKey.of(headers[-1]), headers[-1].envelope_id)
    assert again == Claim(ClaimState.DUPLICATE, headers[-1].envelope_id, Outcome.ROUTED)


async def test_claims_in_one_batch_resolve_as_sequential_calls(store: BatchingStore) -> None:
    spy = Spy(store.store)
    first, second, third, reused = (envelope_id() for _ in range(4))
    routed = header(envelope=first, document_id="000.00.32.H53,2024/05/01,123/UBND-VP")

    results = await asyncio.gather(
        store.claim(identity(), first),  # new
        store.claim(identity(), first),  # the same envelope again: resumed
        store.claim(identity(), second),  # same payload, new envelope: takes it over
        store.claim(identity(payload="other"), third),  # different payload
        store.claim(identity("document:1"), second),  # second already holds an identity
        store.record_routed(routed, T0),  # first no longer holds the claim: lands nowhere
        store.claim(identity(), envelope_id()),
        store.claim(identity("document:2"), reused),
        store.finish(reused, Outcome.REJECTED),
        store.claim(identity("document:2"), envelope_id()),
    )

    assert spy.batches == [10]  # all queued before the flush started: one transaction
    assert results == [
        Claim(ClaimState.NEW, first, None),
        Claim(ClaimState.RESUMED, first, None),
        Claim(ClaimState.RESUMED, first, None),
        Claim(ClaimState.CONFLICT, second, None),
        Claim(ClaimState.CONFLICT, second, None),
        None,
        Claim(ClaimState.RESUMED, second, None),
        Claim(ClaimState.NEW, reused, None),
        None,
        Claim(ClaimState.DUPLICATE, reused, Outcome.REJECTED),
    ]


async def test_routes_claimed_in_one_batch_are_all_recorded_routed_new_or_taken_over(
    store: BatchingStore,
) -> None:
    # A new claim is inserted routed in the batch's one insert; a claim taking over an
    # unfinished one, and claims of one identity twice in the batch, get their outcome
    # apart. Every one ends routed, with its deliveries, whichever way it went.
    spy = Spy(store.store)
    unfinished = header(document_id="doc taken over")
    await store.claim(SubmissionKey.of(unfinished), unfinished.envelope_id)
    fresh = [header(document_id=f"doc {n}", recipients=(RECIPIENT, SENDER)) for n in range(5)]
    taking_over = header(document_id="doc taken over")  # same payload, another envelope
    twice = header(document_id="doc twice")
    spy.batches.clear()

    claims = await asyncio.gather(
        *(store.claim_route(h) for h in (*fresh, taking_over, twice, twice))
    )

    assert spy.batches == [8]
    assert claims == [
        *(Claim(ClaimState.NEW, h.envelope_id, None) for h in fresh),
        Claim(ClaimState.RESUMED, unfinished.envelope_id, None),
        Claim(ClaimState.NEW, twice.envelope_id, None),
        Claim(ClaimState.DUPLICATE, twice.envelope_id, Outcome.ROUTED),
    ]
    for routed in (*fresh, taking_over, twice):
        again = await store.claim(SubmissionKey.of(routed), routed.envelope_id)
        assert again == Claim(ClaimState.DUPLICATE, routed.envelope_id, Outcome.ROUTED)
        (delivery,) = await store.history(routed.document_id, sender=SENDER, recipient=RECIPIENT)
        assert delivery.envelope_id == routed.envelope_id


async def test_a_failed_transaction_fails_every_caller_and_commits_nothing(
    store: BatchingStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    sql = store.store
    claim_many = sql._claim_many
    lost = header(business_type=1)

    def failing(conn: Connection, run: Sequence[ClaimCall], now: datetime) -> list[Claim]:
        claims = claim_many(conn, run, now)
        if any(call.identity == SubmissionKey.of(lost) for call in run):  # the others are written
            raise OperationalError("COMMIT", {}, Exception("disk I/O error"))
        return claims

    await store.claim(identity("document:3"), envelope_id())  # the next calls queue behind it
    monkeypatch.setattr(sql, "_claim_many", failing)
    results = await asyncio.gather(
        store.claim(identity(), envelope_id()),
        store.record_routed(lost, T0),
        store.claim(SubmissionKey.of(lost), lost.envelope_id),
        return_exceptions=True,
    )
    monkeypatch.undo()

    errors = {id(error) for error in results if isinstance(error, StoreUnavailableError)}
    assert len(errors) == 1, results
    assert "disk I/O error" in str(results[0])
    # Nothing of the batch was committed: both identities are free, and no delivery exists.
    assert (await store.claim(identity(), envelope_id())).state is ClaimState.NEW
    assert (await store.claim(SubmissionKey.of(lost), lost.envelope_id)).state is ClaimState.NEW
    assert await store.history(DOCUMENT_ID, sender=SENDER, recipient=RECIPIENT) == []


async def test_a_naive_time_is_refused_without_failing_the_others(store: BatchingStore) -> None:
    good = header()
    results = await asyncio.gather(
        store.record_routed(header(), datetime(2024, 5, 1, 8, 0)),
        store.record_routed(good, T0),
        return_exceptions=True,
    )

    assert isinstance(results[0], ValueError)
    assert results[1] is None
    history = await store.history(DOCUMENT_ID, sender=SENDER, recipient=RECIPIENT)
    assert [delivery.envelope_id for delivery in history] == [good.envelope_id]


async def test_close_commits_what_is_queued_then_refuses_calls(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'router.db'}"
    store = await open_store(url)
    pending = [
        asyncio.create_task(store.claim(identity(f"document:{n}"), envelope_id()))
        for n in range(20)
    ]
    await asyncio.sleep(0)  # queued, the first flush under way

    await store.close()

    claims = await asyncio.gather(*pending)  # committed by close, not failed
    assert {claim.state for claim in claims} == {ClaimState.NEW}
    with pytest.raises(StoreUnavailableError, match="closed"):
        await store.claim(identity(), envelope_id())
    reopened = await open_store(url)
    try:
        committed = await reopened.claim(identity("document:7"), envelope_id())
        assert committed == Claim(ClaimState.RESUMED, claims[7].envelope_id, None)
    finally:
        await reopened.close()


async def test_a_caller_cancelled_while_queued_is_left_out(store: BatchingStore) -> None:
    spy = Spy(store.store)
    cancelled_envelope = envelope_id()
    first = asyncio.create_task(store.claim(identity("document:1"), envelope_id()))
    await asyncio.sleep(0)  # the first flush under way: the next calls queue
    cancelled = asyncio.create_task(store.claim(identity(), cancelled_envelope))
    kept = asyncio.create_task(store.claim(identity("document:2"), envelope_id()))
    await asyncio.sleep(0)
    cancelled.cancel()

    await asyncio.gather(first, kept)
    assert cancelled.cancelled()
    assert spy.batches == [1, 1]
    assert (await store.claim(identity(), envelope_id())).state is ClaimState.NEW


async def test_on_sqlite_a_few_calls_run_on_the_writing_thread_and_a_large_batch_on_the_loop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # One thread hop for a transaction of a few calls; a large batch keeps aiosqlite, its
    # hops amortised and the database's work overlapping the event loop's.
    store = await SqlStore.open(f"sqlite+aiosqlite:///{tmp_path / 'router.db'}")
    threads: list[str] = []
    apply_on = store._apply_on

    def spied(conn: Connection, calls: Sequence[Call], now: datetime) -> list[Claim | None]:
        threads.append(threading.current_thread().name)
        return apply_on(conn, calls, now)

    monkeypatch.setattr(store, "_apply_on", spied)
    try:
        for count in (1, ONE_HOP_CALLS, ONE_HOP_CALLS + 1):
            calls = [
                ClaimCall(identity(f"document:{i}:{count}"), envelope_id()) for i in range(count)
            ]
            claims = await store.apply(calls)
            assert all(c is not None and c.state is ClaimState.NEW for c in claims)
    finally:
        await store.close()
    writer, loop = "vdx-store-writer", threading.current_thread().name
    assert [name.startswith(writer) for name in threads] == [True, True, False]
    assert threads[2] == loop


async def test_replicas_opening_a_new_sqlite_file_at_the_same_moment_all_open(
    tmp_path: Path,
) -> None:
    # Each switches the new file to WAL; SQLite may answer one "database is locked" at once,
    # whatever the busy timeout (3 rounds in 30 failed so before engine._into_wal).
    for round_ in range(20):
        url = f"sqlite+aiosqlite:///{tmp_path / str(round_) / 'router.db'}"
        stores = await asyncio.gather(*(open_store(url) for _ in range(4)))
        for store in stores:
            await store.close()
