"""The store contract: one set of tests run against the in-memory fake, SQLite and PostgreSQL,
so the fake other components test with behaves like the databases the router runs on."""

from __future__ import annotations

import asyncio
import os
import re
import sqlite3
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import create_async_engine

from backbone.errors import Reason, StoreUnavailableError
from backbone.store import BatchingStore, MemoryStore, SqlStore, open_store
from backbone.store.abc import (
    Claim,
    ClaimState,
    Delivery,
    OpenChunked,
    Outcome,
    Refusal,
    Routing,
    Store,
    SubmissionKey,
)
from testkit.store import (
    DOCUMENT_ID,
    OTHER,
    RECIPIENT,
    SENDER,
    Backend,
    backend,
    digest,
    envelope_id,
    header,
)

UNREACHABLE_POSTGRES = "postgresql+asyncpg://postgres@127.0.0.1:1/test"
T0 = datetime(2024, 5, 1, 8, 0, tzinfo=UTC)


class UnbatchedBackend(Backend):
    """The bare :class:`SqlStore` (a transaction per call), under the group commit that
    :func:`open_store` adds by default."""

    async def open(self) -> Store:
        return await open_store(self.url, schema=self.schema, batching=False)


class AiosqliteBackend(Backend):
    """SQLite's group commit with every transaction through aiosqlite, as a router's large
    batches go (``ONE_HOP_CALLS``), never on the store's writing thread."""

    async def open(self) -> Store:
        return BatchingStore(await SqlStore.open(self.url, one_hop_calls=0))


@asynccontextmanager
async def backend_or_unbatched(name: str, directory: Path) -> AsyncIterator[Backend]:
    database, _, variant = name.partition("-")
    kinds = {"": Backend, "unbatched": UnbatchedBackend, "aiosqlite": AiosqliteBackend}
    async with backend(database, directory) as opened:
        yield kinds[variant](opened.name, opened.url, opened.schema)


# "sqlite" and "postgresql" are what open_store returns: the batching store (group commit),
# its SQLite transactions of a few calls on the writing thread.
SQL_BACKENDS = [
    "sqlite",
    "postgresql",
    "sqlite-unbatched",
    "postgresql-unbatched",
    "sqlite-aiosqlite",
]


@pytest.fixture(params=["memory", *SQL_BACKENDS])
async def any_backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    async with backend_or_unbatched(request.param, tmp_path) as opened:
        yield opened


@pytest.fixture(params=SQL_BACKENDS)
async def shared_backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    """A database several store instances (processes, replicas) open at once."""
    async with backend_or_unbatched(request.param, tmp_path) as opened:
        yield opened


async def test_open_store_batches_sql_stores_unless_told_not_to(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'router.db'}"
    batching, bare, memory = (
        await open_store(url),
        await open_store(url, batching=False),
        await open_store("memory://"),
    )
    try:
        assert isinstance(batching, BatchingStore)
        assert isinstance(bare, SqlStore)
        assert isinstance(memory, MemoryStore)
    finally:
        for store in (batching, bare, memory):
            await store.close()


@pytest.fixture
async def store(any_backend: Backend) -> AsyncIterator[Store]:
    opened = await any_backend.open()
    yield opened
    await opened.close()


def identity(variant: str = "document:0", payload: str = "payload") -> SubmissionKey:
    return SubmissionKey(SENDER, DOCUMENT_ID, variant, digest(payload))


async def test_a_first_claim_is_new_and_a_resend_after_finish_is_answered_with_the_original(
    store: Store,
) -> None:
    first, resent = envelope_id(), envelope_id()

    assert await store.claim(identity(), first) == Claim(ClaimState.NEW, first, None)
    await store.finish(first, Outcome.REJECTED, reason=Reason.POLICY_DENIED)

    answered = Claim(ClaimState.DUPLICATE, first, Outcome.REJECTED)
    assert await store.claim(identity(), first) == answered
    assert await store.claim(identity(), resent) == answered


async def test_a_redelivered_unfinished_envelope_is_resumed(store: Store) -> None:
    envelope = envelope_id()
    await store.claim(identity(), envelope)

    assert await store.claim(identity(), envelope) == Claim(ClaimState.RESUMED, envelope, None)
    assert await store.claim(identity(), envelope) == Claim(ClaimState.RESUMED, envelope, None)


async def test_the_same_payload_in_a_new_envelope_takes_over_an_unfinished_claim(
    store: Store,
) -> None:
    first, second = header(), header()
    await store.claim(SubmissionKey.of(first), first.envelope_id)

    resumed = await store.claim(SubmissionKey.of(second), second.envelope_id)
    assert resumed == Claim(ClaimState.RESUMED, first.envelope_id, None)

    # The superseded envelope no longer holds the claim: its late finish changes nothing.
    await store.finish(first.envelope_id, Outcome.REJECTED)
    assert await store.claim(SubmissionKey.of(first), first.envelope_id) == Claim(
        ClaimState.RESUMED, second.envelope_id, None
    )
    # ...and the claim handed back to the first envelope lands its outcome.
    await store.record_routed(first, T0)
    assert await store.claim(SubmissionKey.of(second), second.envelope_id) == Claim(
        ClaimState.DUPLICATE, first.envelope_id, Outcome.ROUTED
    )


async def test_a_different_payload_for_a_claimed_identity_conflicts_with_the_original(
    store: Store,
) -> None:
    original = envelope_id()
    await store.claim(identity(payload="first"), original)

    assert await store.claim(identity(payload="second"), envelope_id()) == Claim(
        ClaimState.CONFLICT, original, None
    )
    await store.finish(original, Outcome.ROUTED)
    assert await store.claim(identity(payload="second"), envelope_id()) == Claim(
        ClaimState.CONFLICT, original, Outcome.ROUTED
    )


async def test_an_envelope_id_already_holding_another_identity_conflicts(store: Store) -> None:
    reused, other = envelope_id(), envelope_id()
    await store.claim(identity("document:0", "a"), reused)
    await store.claim(identity("document:1", "b"), other)

    # As a new identity's claimant, and as the taker of an unfinished one.
    taken = Claim(ClaimState.CONFLICT, reused, None)
    assert await store.claim(identity("document:2", "c"), reused) == taken
    assert await store.claim(identity("document:1", "b"), reused) == taken
    # Neither attempt claimed anything: the identities are free, or still with their holder.
    assert (await store.claim(identity("document:2", "c"), envelope_id())).state is ClaimState.NEW
    assert await store.claim(identity("document:1", "b"), other) == Claim(
        ClaimState.RESUMED, other, None
    )


async def test_document_variants_statuses_and_senders_are_independent_identities(
    store: Store,
) -> None:
    same_document = [
        header(business_type=0),
        header(business_type=1),
        header(status_code="03"),
        header(sender="000.00.00.G09", business_type=0),
    ]
    for submitted in same_document:
        claim = await store.claim(SubmissionKey.of(submitted), submitted.envelope_id)
        assert claim == Claim(ClaimState.NEW, submitted.envelope_id, None), SubmissionKey.of(
            submitted
        )


async def test_record_routed_twice_marks_routed_and_keeps_one_delivery_per_recipient(
    store: Store,
) -> None:
    routed = header(recipients=(RECIPIENT, OTHER))
    await store.claim(SubmissionKey.of(routed), routed.envelope_id)

    await store.record_routed(routed, T0)
    await store.record_routed(routed, T0 + timedelta(seconds=5))  # a redelivery

    assert await store.history(DOCUMENT_ID, sender=SENDER, recipient=RECIPIENT) == [
        Delivery(routed.envelope_id, DOCUMENT_ID, SENDER, RECIPIENT, "document", 0, None, T0)
    ]
    assert len(await store.history(DOCUMENT_ID, sender=SENDER, recipient=OTHER)) == 1
    assert await store.claim(SubmissionKey.of(routed), routed.envelope_id) == Claim(
        ClaimState.DUPLICATE, routed.envelope_id, Outcome.ROUTED
    )


async def test_claim_route_records_the_route_only_when_the_claim_says_to_route(
    store: Store,
) -> None:
    first = header(recipients=(RECIPIENT, OTHER))
    assert await store.claim_route(first) == Claim(ClaimState.NEW, first.envelope_id, None)
    # Recorded in the same call: routed, with one delivery per recipient.
    assert [
        d.recipient for d in await store.history(DOCUMENT_ID, sender=SENDER, recipient=OTHER)
    ] == [OTHER]
    assert await store.claim_route(first) == Claim(
        ClaimState.DUPLICATE, first.envelope_id, Outcome.ROUTED
    )
    # Another payload under the same identity is refused and records nothing.
    forged = header(recipients=(RECIPIENT,), payload="other content")
    assert (await store.claim_route(forged)).state is ClaimState.CONFLICT
    assert [
        d.envelope_id for d in await store.history(DOCUMENT_ID, sender=SENDER, recipient=RECIPIENT)
    ] == [first.envelope_id]


async def test_concurrent_claim_routes_for_one_envelope_route_it_once_then_answer(
    store: Store,
) -> None:
    routed = header()
    claims = await asyncio.gather(*(store.claim_route(routed) for _ in range(3)))

    # As one after the other: the first to reach the database routes and records; the
    # others find it routed. (Which of the three is first is the scheduler's choice: on
    # PostgreSQL without batching they race, and any one may win.)
    assert sorted(claim.state for claim in claims) == sorted(
        [ClaimState.NEW, ClaimState.DUPLICATE, ClaimState.DUPLICATE]
    )
    assert len(await store.history(DOCUMENT_ID, sender=SENDER, recipient=RECIPIENT)) == 1


async def test_refusals_are_kept_once_per_envelope_and_read_per_document_and_sender(
    store: Store,
) -> None:
    def refusal(
        envelope_id: str, sender: str, at: datetime, document: str = DOCUMENT_ID
    ) -> Refusal:
        return Refusal(
            envelope_id=envelope_id,
            document_id=document,
            sender=sender,
            kind="document",
            status_code=None,
            reason=Reason.DUPLICATE_CONFLICT.value,
            message="already sent with other content",
            at=at,
        )

    later = refusal("e2", SENDER, T0 + timedelta(minutes=1))
    first = refusal("e1", SENDER, T0)
    await store.record_refusal(later)
    await store.record_refusal(first)
    await store.record_refusal(refusal("e1", SENDER, T0 + timedelta(hours=1)))  # redelivered
    await store.record_refusal(refusal("e3", RECIPIENT, T0))
    await store.record_refusal(refusal("e4", SENDER, T0, "000.00.32.H53,2024/05/01,999/UBND-VP"))

    assert await store.refusals(DOCUMENT_ID, sender=SENDER) == [first, later]
    assert [r.envelope_id for r in await store.refusals(DOCUMENT_ID, sender=RECIPIENT)] == ["e3"]
    assert await store.refusals(DOCUMENT_ID, sender=OTHER) == []


async def test_history_holds_both_directions_oldest_first_and_nothing_else(
    store: Store,
) -> None:
    document = header()
    status = header(sender=RECIPIENT, recipients=(SENDER,), status_code="03")
    to_someone_else = header(recipients=(OTHER,), business_type=2)
    another_document = header(document_id="000.00.32.H53,2024/05/01,999/UBND-VP")
    # Recorded out of order: history sorts by time, not by arrival.
    await store.record_routed(status, T0 + timedelta(minutes=5))
    await store.record_routed(document, T0)
    await store.record_routed(to_someone_else, T0 + timedelta(minutes=1))
    await store.record_routed(another_document, T0 - timedelta(days=1))

    expected = [
        Delivery(document.envelope_id, DOCUMENT_ID, SENDER, RECIPIENT, "document", 0, None, T0),
        Delivery(
            status.envelope_id,
            DOCUMENT_ID,
            RECIPIENT,
            SENDER,
            "status",
            None,
            "03",
            T0 + timedelta(minutes=5),
        ),
    ]
    assert await store.history(DOCUMENT_ID, sender=SENDER, recipient=RECIPIENT) == expected
    assert await store.history(DOCUMENT_ID, sender=RECIPIENT, recipient=SENDER) == expected


HEIR = "000.00.00.G03"  # the successor a closed RECIPIENT's documents are forwarded to


async def test_a_forwarded_route_keeps_its_successor_and_every_row_its_directory_version(
    store: Store,
) -> None:
    claimed = header(recipients=(RECIPIENT, OTHER))
    recorded = header(recipients=(RECIPIENT,), document_id=f"{SENDER},2024/05/01,7/UBND-VP")
    routing = Routing("v42", forwarded=((RECIPIENT, HEIR),))

    await store.claim_route(claimed, routing)
    await store.record_routed(recorded, T0, Routing("v43", forwarded=((RECIPIENT, HEIR),)))

    (to_closed,) = await store.history(DOCUMENT_ID, sender=SENDER, recipient=RECIPIENT)
    (to_other,) = await store.history(DOCUMENT_ID, sender=SENDER, recipient=OTHER)
    assert (to_closed.recipient, to_closed.forwarded_to, to_closed.directory_version) == (
        RECIPIENT,
        HEIR,
        "v42",
    )
    assert (to_other.forwarded_to, to_other.directory_version) == (None, "v42")
    (alone,) = await store.history(recorded.document_id, sender=SENDER, recipient=RECIPIENT)
    assert (alone.forwarded_to, alone.directory_version) == (HEIR, "v43")


async def test_routes_claimed_together_keep_each_their_own_forward_and_version(
    store: Store,
) -> None:
    # Concurrent claims: one batch (one statement on PostgreSQL) for the batching store.
    documents = [
        header(recipients=(RECIPIENT, OTHER), document_id=f"{SENDER},2024/05/01,{n}/UBND-VP")
        for n in range(6)
    ]
    routings = [Routing(f"v{n}", forwarded=((RECIPIENT, HEIR),) if n % 2 else ()) for n in range(6)]
    await asyncio.gather(
        *(store.claim_route(d, r) for d, r in zip(documents, routings, strict=True))
    )

    for n, document in enumerate(documents):
        rows = {
            d.recipient: (d.forwarded_to, d.directory_version)
            for code in (RECIPIENT, OTHER)
            for d in await store.history(document.document_id, sender=SENDER, recipient=code)
        }
        assert rows == {RECIPIENT: (HEIR if n % 2 else None, f"v{n}"), OTHER: (None, f"v{n}")}


async def test_history_counts_a_document_forwarded_to_the_successor_as_sent_to_it(
    store: Store,
) -> None:
    document = header(recipients=(RECIPIENT,))
    answer = header(sender=HEIR, recipients=(SENDER,), status_code="01")
    await store.record_routed(document, T0, Routing("v1", forwarded=((RECIPIENT, HEIR),)))
    await store.record_routed(answer, T0 + timedelta(minutes=1), Routing("v1"))

    from_heir = await store.history(DOCUMENT_ID, sender=HEIR, recipient=SENDER)
    assert [(d.sender, d.recipient, d.kind) for d in from_heir] == [
        (SENDER, RECIPIENT, "document"),
        (HEIR, SENDER, "status"),
    ]
    assert await store.history(DOCUMENT_ID, sender=SENDER, recipient=HEIR) == from_heir
    # The closed code itself sees its document, not its successor's status.
    assert [
        d.kind for d in await store.history(DOCUMENT_ID, sender=SENDER, recipient=RECIPIENT)
    ] == ["document"]
    assert await store.history(DOCUMENT_ID, sender=OTHER, recipient=SENDER) == []


async def test_times_come_back_as_aware_utc_and_naive_times_are_refused(store: Store) -> None:
    hanoi = timezone(timedelta(hours=7))
    routed = header()
    await store.record_routed(routed, datetime(2024, 5, 1, 15, 0, tzinfo=hanoi))

    (delivery,) = await store.history(DOCUMENT_ID, sender=SENDER, recipient=RECIPIENT)
    assert delivery.at == datetime(2024, 5, 1, 8, 0, tzinfo=UTC)
    assert delivery.at.tzinfo is UTC
    with pytest.raises(ValueError, match="naive"):
        await store.record_routed(header(), datetime(2024, 5, 1, 8, 0))


@pytest.mark.parametrize(
    ("same_payload", "others"), [(True, ClaimState.RESUMED), (False, ClaimState.CONFLICT)]
)
async def test_concurrent_claims_for_one_identity_grant_exactly_one_new(
    store: Store, same_payload: bool, others: ClaimState
) -> None:
    envelopes = [envelope_id() for _ in range(40)]
    claims = await asyncio.gather(
        *(
            store.claim(identity(payload="same" if same_payload else envelope), envelope)
            for envelope in envelopes
        )
    )

    assert Counter(claim.state for claim in claims) == {ClaimState.NEW: 1, others: 39}
    (winner,) = (claim.envelope_id for claim in claims if claim.state is ClaimState.NEW)
    if not same_payload:
        assert {claim.envelope_id for claim in claims} == {winner}


async def test_ping_answers_when_the_store_is_reachable(store: Store) -> None:
    await store.ping()


async def test_two_replicas_sharing_a_database_grant_exactly_one_new(
    shared_backend: Backend,
) -> None:
    # Opened at once: creating the tables concurrently must not fail either replica.
    replicas = await asyncio.gather(shared_backend.open(), shared_backend.open())
    try:
        claims = await asyncio.gather(
            *(
                replicas[n % 2].claim(identity(payload=f"payload {n}"), envelope_id())
                for n in range(40)
            )
        )
    finally:
        for replica in replicas:
            await replica.close()

    assert Counter(claim.state for claim in claims) == {
        ClaimState.NEW: 1,
        ClaimState.CONFLICT: 39,
    }


async def test_claims_and_deliveries_survive_close_and_reopen(shared_backend: Backend) -> None:
    routed, unfinished = header(), header(business_type=1)
    first = await shared_backend.open()
    await first.claim(SubmissionKey.of(routed), routed.envelope_id)
    await first.record_routed(routed, T0)
    await first.claim(SubmissionKey.of(unfinished), unfinished.envelope_id)
    await first.close()

    reopened = await shared_backend.open()
    try:
        assert await reopened.claim(SubmissionKey.of(routed), envelope_id()) == Claim(
            ClaimState.DUPLICATE, routed.envelope_id, Outcome.ROUTED
        )
        assert await reopened.claim(SubmissionKey.of(unfinished), unfinished.envelope_id) == Claim(
            ClaimState.RESUMED, unfinished.envelope_id, None
        )
        history = await reopened.history(DOCUMENT_ID, sender=SENDER, recipient=RECIPIENT)
        assert [delivery.envelope_id for delivery in history] == [routed.envelope_id]
    finally:
        await reopened.close()


async def test_an_unreachable_postgresql_is_reported_as_store_unavailable() -> None:
    with pytest.raises(StoreUnavailableError) as opening:
        await open_store(UNREACHABLE_POSTGRES)
    assert opening.value.reason is Reason.STORE_UNAVAILABLE

    # A store whose database goes away after it was opened.
    store = SqlStore(create_async_engine(UNREACHABLE_POSTGRES))
    try:
        with pytest.raises(StoreUnavailableError, match=re.escape("127.0.0.1:1")):
            await store.ping()
        with pytest.raises(StoreUnavailableError):
            await store.claim(identity(), envelope_id())
    finally:
        await store.close()


async def test_a_sqlite_store_creates_its_directory_and_uses_wal(tmp_path: Path) -> None:
    path = tmp_path / "var" / "lib" / "vdx" / "router.db"
    store = await open_store(f"sqlite+aiosqlite:///{path}")
    await store.close()

    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)


@pytest.mark.parametrize(
    ("url", "schema"),
    [
        ("mysql+aiomysql://root@localhost/vdx", None),
        ("sqlite+aiosqlite://", None),
        ("sqlite+aiosqlite:///:memory:", None),
        ("sqlite+aiosqlite:///router.db", "isolated"),
        ("memory://", "isolated"),
        ("not a url", None),
    ],
)
async def test_open_store_refuses_unusable_urls(url: str, schema: str | None) -> None:
    with pytest.raises(ValueError, match=r"URL|SQLite|schema"):
        await open_store(url, schema=schema)


# -- chunked documents under way (backbone.router.chunks) -----------------------------------


def open_document(
    opened_at: datetime = T0, *, sender: str = SENDER, chunks: int = 3, publisher: str = "g22"
) -> OpenChunked:
    return OpenChunked(
        envelope_id=envelope_id(),
        sender=sender,
        publisher=publisher,
        header_message=b"VDXH\x00" + os.urandom(64),  # bytes kept as they are
        plan=(("vdx.tier.central", ("a.b", "a.c")), ("vdx.tier.local", ("d",))),
        chunk_count=chunks,
        opened_at=opened_at,
    )


async def test_an_open_chunked_document_is_kept_whole_and_its_passed_chunks_counted_once(
    store: Store,
) -> None:
    document = open_document()
    assert await store.chunked(document.envelope_id) is None

    assert await store.open_chunked(document) == document
    assert await store.chunk_passed(document.envelope_id, 1) == 1
    assert await store.chunk_passed(document.envelope_id, 1) == 1  # once however often
    assert await store.chunk_passed(document.envelope_id, 0) == 2
    assert await store.chunk_has_passed(document.envelope_id, 0)
    assert not await store.chunk_has_passed(document.envelope_id, 2)

    kept = await store.chunked(document.envelope_id)
    assert kept == replace(document, passed=frozenset({0, 1}))
    assert kept is not None
    assert not kept.complete


async def test_opening_a_chunked_document_again_resets_nothing(store: Store) -> None:
    document = open_document()
    await store.open_chunked(document)
    await store.chunk_passed(document.envelope_id, 0)

    # Its header again, later, from another account: the document stays as it was.
    again = replace(document, opened_at=T0 + timedelta(minutes=5), publisher="other")
    assert await store.open_chunked(again) == replace(document, passed=frozenset({0}))


async def test_chunked_documents_under_way_count_the_incomplete_and_recent_only(
    store: Store,
) -> None:
    mine, complete, old = open_document(), open_document(chunks=1), open_document()
    theirs = open_document(sender=OTHER)
    for document in (mine, complete, theirs):
        await store.open_chunked(replace(document, opened_at=T0 + timedelta(minutes=1)))
    await store.open_chunked(old)
    await store.chunk_passed(complete.envelope_id, 0)

    assert await store.chunked_under_way(SENDER, since=T0) == (1, 2)
    assert await store.chunked_under_way(OTHER, since=T0 - timedelta(seconds=1)) == (1, 3)


async def test_forgetting_chunked_documents_drops_those_opened_before_the_cutoff(
    store: Store,
) -> None:
    old, recent = open_document(), open_document(T0 + timedelta(hours=1))
    for document in (old, recent):
        await store.open_chunked(document)
        await store.chunk_passed(document.envelope_id, 0)

    await store.forget_chunked(before=T0 + timedelta(minutes=30))

    assert await store.chunked(old.envelope_id) is None
    assert await store.chunked(recent.envelope_id) == replace(recent, passed=frozenset({0}))
    # Opened again after it was forgotten: nothing of its old chunks is left.
    assert (await store.open_chunked(old)).passed == frozenset()


async def test_replicas_sharing_a_database_see_one_chunked_document(
    shared_backend: Backend,
) -> None:
    first, second = await asyncio.gather(shared_backend.open(), shared_backend.open())
    try:
        document = open_document(chunks=40)
        await first.open_chunked(document)
        counts = await asyncio.gather(
            *((first, second)[n % 2].chunk_passed(document.envelope_id, n // 2) for n in range(80))
        )
        kept = await second.chunked(document.envelope_id)
    finally:
        await first.close()
        await second.close()

    assert max(counts) == 40  # each chunk recorded once, whoever recorded it
    assert kept is not None
    assert kept.complete
    assert kept.passed == frozenset(range(40))
