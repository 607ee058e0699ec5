"""Tracking over the real store back-ends (SQLite and PostgreSQL): timelines through every
status, rejections, take-backs, revocations and updates, overdue detection, who may see
what, filters and pages. The store is written exactly as the router writes it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from backbone.store import SqlStore
from backbone.store.abc import Routing
from backbone.tracking import (
    JourneyFilter,
    OverdueWatch,
    Principal,
    State,
    StepKind,
    Tracker,
    Tracking,
    TrackingOptions,
)
from backbone.wire.events import Event, EventType
from testkit.store import backend
from tests.support.tracking_fixtures import (
    BACKENDS,
    G01,
    G22,
    H41,
    H41_COMMUNE,
    H53_DISTRICT,
    TIERS,
    TODAY,
    TRACKING_NOW,
    Ledger,
    ManualClock,
    fixed_clock,
    tracked_store,
)

pytestmark = pytest.mark.clock  # scripts/clock-check runs it at fixed instants

OPERATOR = Principal(operator=True)
PAST = TODAY - timedelta(days=10)
FUTURE = TODAY + timedelta(days=30)


class Heard(list[Event]):
    """An announcer that keeps what it is told."""

    async def __call__(self, event: Event) -> None:
        self.append(event)


@pytest.fixture(params=BACKENDS)
async def tracked(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[tuple[Ledger, Tracker]]:
    async with tracked_store(request.param, tmp_path) as pair:
        yield pair


async def test_a_document_through_every_status_has_one_timeline_per_recipient(
    tracked: tuple[Ledger, Tracker],
) -> None:
    ledger, tracker = tracked
    sent = await ledger.send(G22, (H41, H53_DISTRICT), 1, due=FUTURE)
    for code in ("01", "03", "04", "05", "06"):
        await ledger.status(H41, G22, sent.document_id, code)
    await ledger.status(H53_DISTRICT, G22, sent.document_id, "01")

    track = await tracker.document(OPERATOR, sent.document_id)

    assert track is not None
    assert track.sender == G22
    assert track.submitted_at is not None
    by_recipient = {r.journey.recipient: r for r in track.recipients}
    assert set(by_recipient) == {H41, H53_DISTRICT}
    h41 = by_recipient[H41]
    assert [step.kind for step in h41.steps] == [
        StepKind.SUBMITTED,
        StepKind.ROUTED,
        StepKind.DELIVERED,
        StepKind.ACCEPTED,
        StepKind.ASSIGNED,
        StepKind.PROCESSING,
        StepKind.COMPLETED,
    ]
    assert [step.by for step in h41.steps[2:]] == [H41] * 5
    assert [step.at for step in h41.steps] == sorted(step.at for step in h41.steps)
    assert h41.journey.state is State.COMPLETED
    assert h41.journey.due_date == FUTURE
    assert h41.journey.tier == "central-provincial"
    assert h41.journey.last_at == h41.steps[-1].at
    district = by_recipient[H53_DISTRICT]
    assert [step.kind for step in district.steps] == [
        StepKind.SUBMITTED,
        StepKind.ROUTED,
        StepKind.DELIVERED,
    ]
    assert district.journey.state is State.DELIVERED
    assert district.journey.tier == "department-district"
    assert not h41.journey.overdue
    assert not district.journey.overdue


async def test_a_document_forwarded_from_a_closed_code_shows_whom_it_went_to_and_the_version(
    tracked: tuple[Ledger, Tracker],
) -> None:
    ledger, tracker = tracked
    # H41 had closed: the router sent G22's document on to its successor G01.
    sent = await ledger.send(
        G22, (H41, H53_DISTRICT), 1, routing=Routing("v7", forwarded=((H41, G01),))
    )

    track = await tracker.document(OPERATOR, sent.document_id)

    assert track is not None
    tracks = {t.journey.recipient: t for t in track.recipients}
    assert (tracks[H41].journey.forwarded_to, tracks[H53_DISTRICT].journey.forwarded_to) == (
        G01,
        None,
    )
    routed = [step for step in tracks[H41].steps if step.kind is StepKind.ROUTED]
    assert [(s.forwarded_to, s.directory_version) for s in routed] == [(G01, "v7")]
    # The successor is a party to the journey: it sees it, in the list too.
    successor = Principal(agencies=(G01,))
    seen = await tracker.document(successor, sent.document_id)
    assert seen is not None
    assert [t.journey.recipient for t in seen.recipients] == [H41]
    listed = (await tracker.journeys(successor, JourneyFilter(document_id=sent.document_id))).items
    assert [(j.recipient, j.forwarded_to) for j in listed] == [(H41, G01)]


async def test_a_successors_answer_moves_the_journey_of_the_code_it_took_over(
    tracked: tuple[Ledger, Tracker],
) -> None:
    ledger, tracker = tracked
    sent = await ledger.send(G22, (H41,), 2, routing=Routing("v7", forwarded=((H41, G01),)))
    await ledger.status(G01, G22, sent.document_id, "03", routing=Routing(stands_for=((G01, H41),)))

    track = await tracker.document(OPERATOR, sent.document_id)

    assert track is not None
    [journey] = track.recipients
    assert (journey.journey.recipient, journey.journey.state) == (H41, State.ACCEPTED)
    assert [(s.kind, s.by) for s in journey.steps][-1] == (StepKind.ACCEPTED, G01)


async def test_a_rejection_shows_its_reason(tracked: tuple[Ledger, Tracker]) -> None:
    ledger, tracker = tracked
    sent = await ledger.send(G22, (H41,), 2)
    await ledger.status(H41, G22, sent.document_id, "01")
    await ledger.status(H41, G22, sent.document_id, "02", "Gửi nhầm đơn vị")

    track = await tracker.document(OPERATOR, sent.document_id)

    assert track is not None
    [h41] = track.recipients
    assert h41.journey.state is State.REJECTED
    rejection = h41.steps[-1]
    assert (rejection.kind, rejection.status_code, rejection.note) == (
        StepKind.REJECTED,
        "02",
        "Gửi nhầm đơn vị",
    )


async def test_a_take_back_agreed_by_one_recipient_and_refused_by_another(
    tracked: tuple[Ledger, Tracker],
) -> None:
    ledger, tracker = tracked
    sent = await ledger.send(G22, (H41, H41_COMMUNE), 3)
    await ledger.status(H41, G22, sent.document_id, "03")
    await ledger.status(H41_COMMUNE, G22, sent.document_id, "03")
    for recipient in (H41, H41_COMMUNE):
        await ledger.status(G22, recipient, sent.document_id, "13", "Xin lấy lại văn bản")
    await ledger.status(H41, G22, sent.document_id, "15", "Đồng ý")
    await ledger.status(H41_COMMUNE, G22, sent.document_id, "16", "Đã xử lý xong")

    track = await tracker.document(OPERATOR, sent.document_id)

    assert track is not None
    by_recipient = {r.journey.recipient: r for r in track.recipients}
    agreed, refused = by_recipient[H41], by_recipient[H41_COMMUNE]
    assert [s.kind for s in agreed.steps][-3:] == [
        StepKind.ACCEPTED,
        StepKind.TAKE_BACK_REQUESTED,
        StepKind.AGREED,
    ]
    request = agreed.steps[-2]
    assert (request.by, request.note) == (G22, "Xin lấy lại văn bản")
    assert agreed.journey.state is State.TAKEN_BACK
    assert [s.kind for s in refused.steps][-2:] == [StepKind.TAKE_BACK_REQUESTED, StepKind.REFUSED]
    assert refused.journey.state is State.ACCEPTED  # still the recipient's


async def test_an_update_then_a_revocation_show_in_the_timeline_and_the_update_moves_the_due_date(
    tracked: tuple[Ledger, Tracker],
) -> None:
    ledger, tracker = tracked
    sent = await ledger.send(G22, (H41,), 4, due=PAST)
    await ledger.send(G22, (H41,), 4, business=2, due=FUTURE)  # an update: a new due date
    [journey] = (
        await tracker.journeys(OPERATOR, JourneyFilter(document_id=sent.document_id))
    ).items
    assert (journey.state, journey.due_date, journey.overdue) == (State.ROUTED, FUTURE, False)

    await ledger.send(G22, (H41,), 4, business=3)  # a replacement without a due date
    await ledger.send(G22, (H41,), 4, business=1)  # the revocation

    track = await tracker.document(OPERATOR, sent.document_id)
    assert track is not None
    [h41] = track.recipients
    assert [s.kind for s in h41.steps] == [
        StepKind.SUBMITTED,
        StepKind.ROUTED,
        StepKind.UPDATED,
        StepKind.REPLACED,
        StepKind.REVOKED,
    ]
    assert h41.journey.state is State.REVOKED
    assert h41.journey.due_date == FUTURE  # the latest due date given


async def test_overdue_journeys_are_flagged_once_counted_and_announced(
    tracked: tuple[Ledger, Tracker],
) -> None:
    ledger, tracker = tracked
    late = await ledger.send(G22, (H41, H41_COMMUNE, H53_DISTRICT), 5, due=PAST)
    await ledger.status(H41, G22, late.document_id, "06")  # done: not overdue
    await ledger.status(H41_COMMUNE, G22, late.document_id, "05")  # still working: overdue
    rejected = await ledger.send(G22, (H41,), 6, due=PAST)
    await ledger.status(H41, G22, rejected.document_id, "02", "Sai thẩm quyền")  # finished
    await ledger.send(G22, (H41,), 7, due=FUTURE)  # not due yet
    await ledger.send(G22, (H41,), 8, due=TODAY)  # due today in Vietnam: still on time
    taken_back = await ledger.send(G22, (H41,), 9, due=PAST)
    await ledger.status(G22, H41, taken_back.document_id, "13", "Lấy lại")
    await ledger.status(H41, G22, taken_back.document_id, "15")

    announced = Heard()
    watch = OverdueWatch(tracker, announced, interval=60)
    flagged_before = _flagged("department-district") + _flagged("commune")

    first = await watch.check()

    assert {(j.document_id, j.recipient) for j in first} == {
        (late.document_id, H41_COMMUNE),
        (late.document_id, H53_DISTRICT),
    }
    assert [(e.type, e.party, e.document_id) for e in announced] == [
        (EventType.OVERDUE, G22, late.document_id)
    ] * 2
    assert {e.recipients for e in announced} == {(H41_COMMUNE,), (H53_DISTRICT,)}
    assert _flagged("department-district") + _flagged("commune") == flagged_before + 2
    assert _gauge("department-district") == 1
    assert _gauge("commune") == 1
    assert _gauge("central-provincial") == 0
    assert await watch.check() == []  # flagged once
    assert len(announced) == 2

    track = await tracker.document(OPERATOR, late.document_id)
    assert track is not None
    steps = {r.journey.recipient: [s.kind for s in r.steps] for r in track.recipients}
    assert StepKind.OVERDUE in steps[H41_COMMUNE]
    assert StepKind.OVERDUE not in steps[H41]

    overview = await tracker.overview(OPERATOR)
    assert overview.total == 2
    assert overview.by_tier == {
        "central-provincial": 0,
        "department-district": 1,
        "commune": 1,
        "unit": 0,
    }
    assert sorted((a.agency, a.tier, a.overdue) for a in overview.agencies) == [
        (H53_DISTRICT, "department-district", 1),
        (H41_COMMUNE, "commune", 1),
    ]
    assert {j.recipient for j in overview.documents} == {H41_COMMUNE, H53_DISTRICT}

    await ledger.status(H41_COMMUNE, G22, late.document_id, "06")
    assert (await tracker.overview(OPERATOR)).total == 1  # completed late: no longer overdue


async def test_a_document_due_today_in_vietnam_is_on_time_until_midnight_there(
    tracked: tuple[Ledger, Tracker],
) -> None:
    ledger, _ = tracked
    due = date(2026, 11, 21)
    moments = {
        # 20:00 UTC on the 20th is 03:00 on the 21st in Vietnam: due today, on time.
        datetime(2026, 11, 20, 20, 0, tzinfo=UTC): False,
        datetime(2026, 11, 21, 16, 59, 59, tzinfo=UTC): False,  # 23:59:59 in Vietnam
        datetime(2026, 11, 21, 17, 0, 0, tzinfo=UTC): True,  # midnight there: late
    }
    sent = await ledger.send(G22, (H41,), 12, due=due)
    for now, late in moments.items():
        tracking = Tracking.for_store(ledger.store, TIERS, TrackingOptions(clock=lambda t=now: t))
        assert tracking is not None
        tracker = tracking.tracker
        [journey] = (await tracker.journeys(OPERATOR, JourneyFilter())).items
        assert (journey.document_id, journey.overdue) == (sent.document_id, late), now
        flagged = await OverdueWatch(tracker, Heard(), interval=60).check()
        assert [j.document_id for j in flagged] == ([sent.document_id] if late else []), now


async def test_documents_that_arrive_past_their_due_date_never_make_the_recipient_late(
    tracked: tuple[Ledger, Tracker],
) -> None:
    """Issue 14, finding 8: 25 documents due in 2001 once flagged their recipient overdue 25
    times at once. A journey whose due date had passed when it arrived is the sender's
    lateness: not overdue, not flagged, not counted. Arrival is judged by Vietnam's day."""
    ledger, tracker = tracked
    attack = []
    for number in range(25):
        attack.append(await ledger.send(G22, (H41,), 100 + number, due=date(2001, 1, 1)))
    due = date(2026, 11, 19)
    # The ledger routes five minutes after the clock is set. 16:59:55 UTC on the 19th is
    # 23:59:55 in Vietnam: it arrived on its due day, in time.
    ledger.clock.now = datetime(2026, 11, 19, 16, 54, 55, tzinfo=UTC)
    in_time = await ledger.send(G22, (H41,), 200, due=due)
    # 17:00:00 UTC is midnight there: the same due date arrived a day late.
    ledger.clock.now = datetime(2026, 11, 19, 16, 55, 0, tzinfo=UTC)
    arrived_late = await ledger.send(G22, (H53_DISTRICT,), 201, due=due)

    announced = Heard()
    flagged = await OverdueWatch(tracker, announced, interval=60).check()

    assert [(j.document_id, j.recipient) for j in flagged] == [(in_time.document_id, H41)]
    assert [e.document_id for e in announced] == [in_time.document_id]
    overview = await tracker.overview(OPERATOR)
    assert overview.total == 1
    assert [(a.agency, a.overdue) for a in overview.agencies] == [(H41, 1)]
    late = await tracker.journeys(OPERATOR, JourneyFilter(overdue=True))
    assert [j.document_id for j in late.items] == [in_time.document_id]
    on_time = await tracker.journeys(OPERATOR, JourneyFilter(overdue=False))
    assert {j.document_id for j in on_time.items} == {
        arrived_late.document_id,
        *(sent.document_id for sent in attack),
    }
    assert all(not j.overdue and j.due_date is not None for j in on_time.items)


async def test_an_announcement_that_fails_leaves_the_journey_to_be_flagged_again(
    tracked: tuple[Ledger, Tracker],
) -> None:
    ledger, tracker = tracked
    late = await ledger.send(G22, (H41,), 10, due=PAST)

    async def broken(_: Event) -> None:
        raise ConnectionError("the broker is away")

    with pytest.raises(ConnectionError):
        await OverdueWatch(tracker, broken, interval=60).check()

    announced = Heard()
    [again] = await OverdueWatch(tracker, announced, interval=60).check()
    assert (again.document_id, again.recipient) == (late.document_id, H41)
    assert len(announced) == 1


async def test_an_agency_sees_what_it_sent_and_received_and_nothing_else(
    tracked: tuple[Ledger, Tracker],
) -> None:
    ledger, tracker = tracked
    sent = await ledger.send(G22, (H41, H41_COMMUNE), 11)
    await ledger.status(H41, G22, sent.document_id, "01")
    received = await ledger.send(H41, (G22,), 12)

    sender_view = await tracker.document(Principal(agencies=(G22,)), sent.document_id)
    assert sender_view is not None
    assert {r.journey.recipient for r in sender_view.recipients} == {H41, H41_COMMUNE}
    recipient_view = await tracker.document(Principal(agencies=(H41,)), sent.document_id)
    assert recipient_view is not None
    assert [r.journey.recipient for r in recipient_view.recipients] == [H41]  # its own only
    assert await tracker.document(Principal(agencies=(G01,)), sent.document_id) is None
    assert await tracker.document(OPERATOR, "000.00.00.G22,2026/11/02,999/VP") is None

    mine = await tracker.journeys(Principal(agencies=(H41,)), JourneyFilter())
    assert {(j.document_id, j.recipient) for j in mine.items} == {
        (sent.document_id, H41),
        (received.document_id, G22),
    }
    assert (await tracker.journeys(Principal(agencies=(G01,)), JourneyFilter())).total == 0
    assert (await tracker.journeys(OPERATOR, JourneyFilter())).total == 3
    assert (await tracker.overview(Principal(agencies=(G01,)))).total == 0


async def test_a_hubs_staff_see_what_any_of_its_agencies_sent_and_received(
    tracked: tuple[Ledger, Tracker],
) -> None:
    ledger, tracker = tracked
    hub = Principal(agencies=(H41, H53_DISTRICT))
    to_both = await ledger.send(G22, (H41, H53_DISTRICT, G01), 21)
    from_one = await ledger.send(H53_DISTRICT, (G01,), 22)
    elsewhere = await ledger.send(G22, (G01,), 23)

    view = await tracker.document(hub, to_both.document_id)
    assert view is not None
    assert [r.journey.recipient for r in view.recipients] == [H41, H53_DISTRICT]
    sent_by_one = await tracker.document(hub, from_one.document_id)
    assert sent_by_one is not None
    assert [r.journey.recipient for r in sent_by_one.recipients] == [G01]
    assert await tracker.document(hub, elsewhere.document_id) is None

    listed = await tracker.journeys(hub, JourneyFilter())
    assert {(j.document_id, j.recipient) for j in listed.items} == {
        (to_both.document_id, H41),
        (to_both.document_id, H53_DISTRICT),
        (from_one.document_id, G01),
    }


async def test_journeys_filter_by_sender_recipient_status_tier_and_time_and_page(
    tracked: tuple[Ledger, Tracker],
) -> None:
    ledger, tracker = tracked
    for number in range(1, 8):
        await ledger.send(G22, (H41, H53_DISTRICT), 100 + number)
    middle = ledger.clock()
    await ledger.send(H41, (G22,), 200)
    accepted = ledger.document_id(G22, 101)
    await ledger.status(H41, G22, accepted, "03")

    everything = await tracker.journeys(OPERATOR, JourneyFilter(), page_size=5)
    assert (everything.total, len(everything.items)) == (15, 5)
    pages = [
        (await tracker.journeys(OPERATOR, JourneyFilter(), page=page, page_size=5)).items
        for page in (1, 2, 3, 4)
    ]
    assert [len(items) for items in pages] == [5, 5, 5, 0]
    seen = [(j.document_id, j.recipient) for items in pages for j in items]
    assert len(set(seen)) == 15
    assert pages[0][0].document_id == ledger.document_id(H41, 200)  # newest first

    async def total(**where: object) -> int:
        return (await tracker.journeys(OPERATOR, JourneyFilter(**where))).total  # type: ignore[arg-type]

    assert await total(sender=H41) == 1
    assert await total(recipient=H53_DISTRICT) == 7
    assert await total(sender=G22, recipient=H41) == 7
    assert await total(state=State.ACCEPTED) == 1
    assert await total(state=State.ROUTED) == 14
    assert await total(tier="department-district") == 7
    assert await total(tier="central-provincial") == 8
    assert await total(tier="unit") == 0
    assert await total(until=middle) == 12  # before the last two
    assert await total(until=middle + timedelta(seconds=1)) == 14
    assert await total(since=middle + timedelta(seconds=1)) == 1
    with pytest.raises(ValueError, match="unknown tier"):
        await total(tier="galaxy")
    with pytest.raises(ValueError, match="page"):
        await tracker.journeys(OPERATOR, JourneyFilter(), page=0)


async def test_the_tier_filter_places_decision_20_codes_by_their_groups(
    tracked: tuple[Ledger, Tracker],
) -> None:
    ledger, tracker = tracked
    # One recipient per level in Decision 20/2020 form, a fifth group included, and one
    # QCVN 102 code for contrast: the filter counts groups, not the QCVN 102 zeros.
    recipients = ("H01", "H01.151", "H01.151.01", "H01.151.01.02", "H01.151.01.02.7")
    await ledger.send(G22, recipients, 1)
    await ledger.send(G22, (H53_DISTRICT,), 2)

    async def recipients_in(tier: str) -> list[str]:
        listed = await tracker.journeys(OPERATOR, JourneyFilter(tier=tier))
        return sorted(journey.recipient for journey in listed.items)

    assert await recipients_in("central-provincial") == ["H01"]
    assert await recipients_in("department-district") == sorted(["H01.151", H53_DISTRICT])
    assert await recipients_in("commune") == ["H01.151.01"]
    assert await recipients_in("unit") == ["H01.151.01.02", "H01.151.01.02.7"]


@pytest.mark.parametrize("name", BACKENDS)
async def test_a_store_made_before_tracking_gains_its_columns(name: str, tmp_path: Path) -> None:
    (tmp_path / "store").mkdir()  # where the SQLite back-end keeps its file
    async with backend(name, tmp_path) as where:
        old = create_async_engine(where.url)
        target = f'"{where.schema}".deliveries' if where.schema else "deliveries"
        async with old.begin() as conn:
            if where.schema:
                await conn.execute(text(f'CREATE SCHEMA "{where.schema}"'))
            await conn.execute(
                text(
                    f"CREATE TABLE {target} (envelope_id VARCHAR, recipient VARCHAR, "
                    "document_id VARCHAR NOT NULL, sender VARCHAR NOT NULL, kind VARCHAR NOT NULL,"
                    " business_type INTEGER, status_code VARCHAR, at TIMESTAMP NOT NULL, "
                    "PRIMARY KEY (envelope_id, recipient))"
                )
            )
        await old.dispose()
        clock = ManualClock(TRACKING_NOW - timedelta(days=1))
        store = await SqlStore.open(where.url, schema=where.schema, clock=clock)
        try:
            ledger = Ledger(store, clock)
            routing = Routing("v9", forwarded=((H41, G01),))
            sent = await ledger.send(G22, (H41,), 1, due=FUTURE, routing=routing)
            [delivery] = await store.history(sent.document_id, sender=G22, recipient=H41)
            assert (delivery.due_date, delivery.forwarded_to, delivery.directory_version) == (
                FUTURE,
                G01,
                "v9",
            )

            tracker = Tracker(store.engine, TIERS, clock=fixed_clock)
            [journey] = (
                await tracker.journeys(OPERATOR, JourneyFilter(document_id=sent.document_id))
            ).items
            assert journey.due_date == FUTURE
        finally:
            await store.close()


def _flagged(tier: str) -> float:
    return REGISTRY.get_sample_value("vdx_overdue_flagged_total", {"tier": tier}) or 0.0


def _gauge(tier: str) -> float | None:
    return REGISTRY.get_sample_value("vdx_documents_overdue", {"tier": tier})
