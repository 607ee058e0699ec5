"""The ``journeys`` table the store keeps as it routes (``backbone.store.journeys``)
against its definition worked out from every delivery row, on SQLite and PostgreSQL: for
random histories routed one envelope at a time, many in one group commit, in any order,
and for a store from before journeys were kept (worked out when it is opened)."""

from __future__ import annotations

import itertools
import random
import uuid
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, text

from backbone.envelope import EnvelopeHeader
from backbone.store import SqlStore
from backbone.store.calls import ClaimRouteCall
from backbone.store.journeys import PROGRESS_STATES, facts_of, merge, state_of
from backbone.store.schema import deliveries, journeys
from backbone.tracking import State
from testkit.store import backend, header
from tests.support.tracking_fixtures import BACKENDS, G01, G22, H41, H41_COMMUNE, H53_DISTRICT

pytestmark = pytest.mark.clock  # scripts/clock-check runs it at fixed instants

AGENCIES = (G01, H41, H41_COMMUNE, H53_DISTRICT)
STATUSES = ("01", "02", "03", "04", "05", "06", "13", "15", "16")
START = datetime(2026, 11, 2, 8, tzinfo=UTC)


def history(seed: int, documents: int = 25) -> list[tuple[EnvelopeHeader, datetime]]:
    """Documents from G22 to one to three agencies, then revocations, updates with new due
    dates and every kind of status both ways, at random times after each document."""
    rng = random.Random(seed)
    routed: list[tuple[EnvelopeHeader, datetime]] = []
    for number in range(documents):
        document_id = f"{G22},2026/11/02,{number}/VP"
        recipients = tuple(rng.sample(AGENCIES, rng.randint(1, 3)))
        sent = START + timedelta(minutes=number)
        due = date(2026, 11, rng.randint(3, 28)) if rng.random() < 0.6 else None
        routed.append((_document(document_id, recipients, 0, due), sent))
        for _ in range(rng.randint(0, 8)):
            at = sent + timedelta(seconds=rng.randint(1, 86_400))
            recipient = rng.choice(recipients)
            roll = rng.random()
            if roll < 0.1:
                routed.append((_document(document_id, (recipient,), 1, None), at))
            elif roll < 0.25:
                routed.append((_document(document_id, (recipient,), 2, _a_day(rng)), at))
            else:
                code = rng.choice(STATUSES)
                sender, to = (G22, recipient) if code == "13" else (recipient, G22)
                routed.append((_status(document_id, sender, to, code), at))
    return routed


def _a_day(rng: random.Random) -> date | None:
    return date(2026, 12, rng.randint(1, 28)) if rng.random() < 0.7 else None


def _document(
    document_id: str, recipients: tuple[str, ...], business: int, due: date | None
) -> EnvelopeHeader:
    base = header(
        sender=G22,
        recipients=recipients,
        document_id=document_id,
        business_type=business,
        payload=uuid.uuid4().hex,
    )
    return base.model_copy(update={"due_date": due})


def _status(document_id: str, sender: str, to: str, code: str) -> EnvelopeHeader:
    return header(
        sender=sender,
        recipients=(to,),
        document_id=document_id,
        status_code=code,
        payload=uuid.uuid4().hex,
    )


def defined(rows: Sequence[Any]) -> dict[tuple[str, str, str], dict[str, Any]]:
    """Every journey as defined over all delivery rows at once: one per new document
    (BussinessDocType 0) and recipient, stated from the whole pair's history."""
    found: dict[tuple[str, str, str], dict[str, Any]] = {}
    for doc in rows:
        if doc.kind != "document" or doc.business_type != 0:
            continue
        d, s, r = doc.document_id, doc.sender, doc.recipient
        forth = [x for x in rows if (x.document_id, x.sender, x.recipient) == (d, s, r)]
        back = [
            x
            for x in rows
            if (x.document_id, x.sender, x.recipient) == (d, r, s) and x.kind == "status"
        ]
        progress = max(
            (x.status_code for x in back if x.status_code in PROGRESS_STATES), default=None
        )
        if any(x.kind == "document" and x.business_type == 1 for x in forth):
            state = "revoked"
        elif any(x.status_code == "13" for x in forth) and any(x.status_code == "15" for x in back):
            state = "taken_back"
        elif any(x.status_code == "02" for x in back):
            state = "rejected"
        else:
            state = PROGRESS_STATES[progress] if progress else "routed"
        dated = [x for x in forth if x.kind == "document" and x.due_date is not None]
        latest_due = max(dated, key=lambda x: x.at).due_date if dated else None
        found[(d, s, r)] = {
            "state": state,
            "due_date": latest_due,
            "routed_at": min(x.at for x in forth if x.kind == "document" and x.business_type == 0),
            "last_at": max(x.at for x in [*forth, *back]),
        }
    return found


async def kept(store: SqlStore) -> dict[tuple[str, str, str], dict[str, Any]]:
    async with store.engine.connect() as conn:
        rows = (await conn.execute(select(journeys).where(journeys.c.routed_at.is_not(None)))).all()
    return {
        (row.document_id, row.sender, row.recipient): {
            "state": row.state,
            "due_date": row.due_date,
            "routed_at": row.routed_at,
            "last_at": row.last_at,
        }
        for row in rows
    }


async def all_deliveries(store: SqlStore) -> list[Any]:
    async with store.engine.connect() as conn:
        return list((await conn.execute(select(deliveries))).all())


async def route_one_by_one(
    store: SqlStore, routed: Sequence[tuple[EnvelopeHeader, datetime]]
) -> None:
    for envelope, at in routed:
        await store.record_routed(envelope, at)


@pytest.mark.parametrize("name", BACKENDS)
@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_journeys_kept_one_envelope_at_a_time_match_their_definition(
    name: str, seed: int, tmp_path: Path
) -> None:
    async with backend(name, tmp_path) as where:
        store = await SqlStore.open(where.url, schema=where.schema)
        try:
            routed = history(seed)
            await route_one_by_one(store, routed)
            expected = defined(await all_deliveries(store))
            assert len(expected) >= 30
            assert {j["state"] for j in expected.values()} >= {"routed", "completed", "rejected"}
            assert await kept(store) == expected
        finally:
            await store.close()


@pytest.mark.parametrize("name", BACKENDS)
async def test_journeys_kept_in_shuffled_group_commits_match_their_definition(
    name: str, tmp_path: Path
) -> None:
    """Statuses routed before their document's other statuses, many touching one journey in
    a single statement, and every envelope routed twice (a redelivery)."""
    async with backend(name, tmp_path) as where:
        store = await SqlStore.open(where.url, schema=where.schema)
        try:
            routed = history(7)
            documents = [pair for pair in routed if pair[0].business_type == 0]
            rest = [pair for pair in routed if pair[0].business_type != 0]
            random.Random(7).shuffle(rest)
            await route_one_by_one(store, documents)
            for start in range(0, len(rest), 40):
                await store.apply([ClaimRouteCall(h) for h, _ in rest[start : start + 40]])
            await route_one_by_one(store, routed)  # replayed: changes nothing
            assert await kept(store) == defined(await all_deliveries(store))
        finally:
            await store.close()


@pytest.mark.parametrize("name", BACKENDS)
async def test_a_store_from_before_journeys_works_them_out_when_opened(
    name: str, tmp_path: Path
) -> None:
    (tmp_path / "store").mkdir()
    async with backend(name, tmp_path) as where:
        store = await SqlStore.open(where.url, schema=where.schema)
        try:
            await route_one_by_one(store, history(11, documents=40))
            before = await kept(store)
            table = f'"{where.schema}".journeys' if where.schema else "journeys"
            async with store.engine.begin() as conn:
                await conn.execute(text(f"DROP TABLE {table}"))
        finally:
            await store.close()
        reopened = await SqlStore.open(where.url, schema=where.schema)
        try:
            assert await kept(reopened) == before
        finally:
            await reopened.close()


def test_merging_facts_in_any_order_gives_the_same_journey() -> None:
    routed = history(5, documents=5)
    facts = [fact for h, at in routed for fact in facts_of(h, at)]
    shuffled = list(facts)
    random.Random(5).shuffle(shuffled)
    assert merge(facts) == merge(shuffled) == merge(shuffled + facts)


def test_every_state_the_store_keeps_is_a_tracking_state() -> None:
    flags = itertools.product([False, True], repeat=4)
    kept_states = {
        state_of(*combination, progress)
        for combination in flags
        for progress in (None, *PROGRESS_STATES)
    }
    assert kept_states == {state.value for state in State}
