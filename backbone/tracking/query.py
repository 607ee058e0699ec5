"""Tracking's reads (and its one write, the overdue flag) over the router store's tables.

Everything comes from what routing records: ``journeys`` (one row per document and
recipient: where it stands, kept in the transaction that routes each envelope, see
``backbone.store.journeys``) for lists, counts and overdue; ``deliveries`` (one row
per routed envelope and recipient) for a document's timeline; ``claims`` for when the router
took the sender's envelope.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import (
    ColumnElement,
    Date,
    Row,
    Select,
    and_,
    cast,
    delete,
    exists,
    func,
    not_,
    or_,
    select,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncEngine

from backbone.clock import Clock, today_in, utc_now
from backbone.edxml.document_id import DocumentId
from backbone.errors import DocumentIdError
from backbone.organ import OrganCode
from backbone.store.schema import claims, deliveries, journeys, overdue, refusals
from backbone.tiers import Tier, TierModel
from backbone.tracking.model import (
    DocumentTrack,
    Journey,
    JourneyPage,
    OverdueAgency,
    OverdueOverview,
    Principal,
    RecipientTrack,
    RefusedEnvelope,
    State,
    Step,
    StepKind,
)

__all__ = ["MAX_PAGE", "MAX_PAGE_SIZE", "JourneyFilter", "Tracker"]

MAX_PAGE_SIZE = 200
# Past any real list (20 million journeys at the largest page size), and well inside what a
# database OFFSET takes: a huge page number is refused, never sent to SQL.
MAX_PAGE = 100_000
_OVERVIEW_DOCUMENTS = 100
_FLAG_BATCH = 1000

_STEP_OF_CODE = {
    "01": StepKind.DELIVERED,
    "02": StepKind.REJECTED,
    "03": StepKind.ACCEPTED,
    "04": StepKind.ASSIGNED,
    "05": StepKind.PROCESSING,
    "06": StepKind.COMPLETED,
    "13": StepKind.TAKE_BACK_REQUESTED,
    "15": StepKind.AGREED,
    "16": StepKind.REFUSED,
}
_STEP_OF_BUSINESS = {
    0: StepKind.ROUTED,
    1: StepKind.REVOKED,
    2: StepKind.UPDATED,
    3: StepKind.REPLACED,
}
# QCVN 102 code ``V1V2V3.Z1Z2.Y1Y2.MX1X2``: its level is the deepest part that is not zeros.
_LEVEL_PREFIX = {1: "000.00.00.", 2: "000.00.", 3: "000."}
_FINISHED = [state.value for state in State if state.finished]


@dataclass(frozen=True, slots=True)
class JourneyFilter:
    """What ``GET /api/documents`` filters on; ``None`` is "any"."""

    sender: str | None = None
    recipient: str | None = None
    state: State | None = None
    tier: str | None = None
    since: datetime | None = None  # routed at or after
    until: datetime | None = None  # routed before
    document_id: str | None = None
    overdue: bool | None = None
    flagged: bool | None = None  # flagged overdue already


@dataclass(frozen=True, slots=True)
class _Days:
    """What lateness is judged by: today, and the day a journey's due date arrived (both
    where the agencies are)."""

    today: date
    arrival_day: Callable[[ColumnElement[datetime]], ColumnElement[date]]


def _journeys(
    principal: Principal, where: JourneyFilter, tiers: TierModel, days: _Days
) -> Select[Any]:
    """The journeys ``principal`` may see that match ``where``, as rows of the ``journeys``
    table (kept by the router's store as it routes) with whether each is overdue.

    A journey is overdue when its due date has passed, it is not finished, and the due date
    had not passed yet when it reached the recipient: a document that arrives already past
    its due date (sent late, or dated so on purpose) is the sender's lateness, never counted
    against the recipient (issue 14, finding 8)."""
    j = journeys.c
    arrived_in_time = or_(j.due_at.is_(None), j.due_date >= days.arrival_day(j.due_at))
    late = and_(
        j.due_date.is_not(None),
        j.due_date < days.today,
        j.state.not_in(_FINISHED),
        arrived_in_time,
    )
    conditions: list[ColumnElement[bool]] = [j.routed_at.is_not(None)]
    if not principal.operator:
        agencies = list(principal.agencies)
        # A successor sees the journeys of the documents forwarded to it.
        conditions.append(
            or_(j.sender.in_(agencies), j.recipient.in_(agencies), j.forwarded_to.in_(agencies))
        )
    if where.document_id is not None:
        conditions.append(j.document_id == where.document_id)
    if where.sender is not None:
        conditions.append(j.sender == where.sender)
    if where.recipient is not None:
        conditions.append(j.recipient == where.recipient)
    if where.state is not None:
        conditions.append(j.state == where.state.value)
    if where.since is not None:
        conditions.append(j.routed_at >= where.since)
    if where.until is not None:
        conditions.append(j.routed_at < where.until)
    if where.tier is not None:
        conditions.append(_in_tier(j.recipient, _tier_named(tiers, where.tier)))
    if where.overdue is not None:
        conditions.append(late if where.overdue else not_(late))
    if where.flagged is not None:
        flagged = exists().where(
            overdue.c.document_id == j.document_id,
            overdue.c.sender == j.sender,
            overdue.c.recipient == j.recipient,
        )
        conditions.append(flagged if where.flagged else not_(flagged))
    return select(
        j.document_id,
        j.sender,
        j.recipient,
        j.routed_at,
        j.state,
        j.due_date,
        j.last_at,
        j.forwarded_to,
        late.label("overdue"),
    ).where(*conditions)


def _tier_named(tiers: TierModel, name: str) -> Tier:
    for tier in tiers.tiers:
        if tier.name == name:
            return tier
    known = ", ".join(tier.name for tier in tiers.tiers)
    raise ValueError(f"unknown tier {name!r}; the tiers are {known}")


def _in_tier(code: ColumnElement[str], tier: Tier) -> ColumnElement[bool]:
    """``code`` (organ code text, either format) is at one of the tier's levels, in SQL."""
    qcvn102 = func.substr(code, 1, 1).in_(list("0123456789"))  # a QD20 code starts with a letter
    dots = func.length(code) - func.length(func.replace(code, ".", ""))
    by_level: dict[int, ColumnElement[bool]] = {
        1: code.like(_LEVEL_PREFIX[1] + "%"),
        2: and_(code.like(_LEVEL_PREFIX[2] + "%"), not_(code.like(_LEVEL_PREFIX[1] + "%"))),
        3: and_(code.like(_LEVEL_PREFIX[3] + "%"), not_(code.like(_LEVEL_PREFIX[2] + "%"))),
        4: not_(code.like(_LEVEL_PREFIX[3] + "%")),
    }
    # Decision 20 codes have one group per level; groups past the fourth are level 4 too.
    by_qd20_level: dict[int, ColumnElement[bool]] = {
        1: dots == 0,
        2: dots == 1,
        3: dots == 2,
        4: dots >= 3,
    }
    return or_(
        and_(qcvn102, or_(*(by_level[level] for level in tier.levels))),
        and_(not_(qcvn102), or_(*(by_qd20_level[level] for level in tier.levels))),
    )


class Tracker:
    """Answers tracking questions from the store's tables on ``engine`` (the router's own:
    :attr:`backbone.store.SqlStore.engine`)."""

    def __init__(
        self,
        engine: AsyncEngine,
        tiers: TierModel,
        *,
        zone: str = "Asia/Ho_Chi_Minh",
        clock: Clock = utc_now,
    ) -> None:
        self._engine = engine
        self._tiers = tiers
        self._zone = ZoneInfo(zone)
        self._clock = clock
        self._postgresql = engine.dialect.name == "postgresql"
        dialect = postgresql if self._postgresql else sqlite
        self._flag = (
            dialect.insert(overdue).on_conflict_do_nothing().returning(overdue.c.document_id)
        )

    @property
    def tiers(self) -> TierModel:
        return self._tiers

    def now(self) -> datetime:
        return self._clock()

    def today(self) -> date:
        """The day it is where the agencies are (the configured zone, never the machine's):
        a document due today is on time until midnight there."""
        return today_in(self._zone, self._clock)

    def _days(self) -> _Days:
        return _Days(self.today(), self._arrival_day)

    def _arrival_day(self, at: ColumnElement[datetime]) -> ColumnElement[date]:
        """The day ``at`` (a UTC timestamp column) falls on in the agencies' zone, in SQL."""
        if self._postgresql:
            return cast(func.timezone(self._zone.key, at), Date)
        # SQLite keeps naive UTC text and knows no zones: shift by the zone's offset now
        # (exact for Vietnam, which has no daylight saving time).
        offset = self._zone.utcoffset(self._clock()) or timedelta(0)
        return func.date(at, f"{int(offset.total_seconds()):+d} seconds")

    def tier_of(self, code: str) -> str:
        return self._tiers.tier_of(OrganCode.parse(code)).name

    async def journeys(
        self,
        principal: Principal,
        where: JourneyFilter,
        *,
        page: int = 1,
        page_size: int = 50,
    ) -> JourneyPage:
        """One page of the journeys ``principal`` may see, newest first. Raise
        ``ValueError`` for an unknown tier or a page out of range."""
        if not 1 <= page <= MAX_PAGE or not 1 <= page_size <= MAX_PAGE_SIZE:
            raise ValueError(f"page is 1..{MAX_PAGE} and page_size is 1..{MAX_PAGE_SIZE}")
        found = _journeys(principal, where, self._tiers, self._days())
        counted = select(func.count()).select_from(found.subquery("matching"))
        shown = (
            found.order_by(*_newest_first(journeys.c))
            .limit(page_size)
            .offset((page - 1) * page_size)
        )
        async with self._engine.connect() as conn:
            total = (await conn.execute(counted)).scalar_one()
            items = [self._journey(row._mapping) for row in await conn.execute(shown)]
        return JourneyPage(items=items, page=page, page_size=page_size, total=total)

    async def document(self, principal: Principal, document_id: str) -> DocumentTrack | None:
        """The document's timeline per recipient, or ``None`` when it does not exist *or*
        ``principal`` may not see it (the two are indistinguishable on purpose). A sender
        sees every recipient; a recipient only its own journey."""
        # The DocumentId names its sender (the router refuses any other): a journey under
        # the id from anyone else (routed before the binding) is not this document's.
        try:
            sender = DocumentId.parse(document_id).sender
        except DocumentIdError:
            return None
        where = JourneyFilter(document_id=document_id, sender=sender)
        tracked = _journeys(Principal(operator=True), where, self._tiers, self._days())
        async with self._engine.connect() as conn:
            found = [
                self._journey(row._mapping)
                for row in await conn.execute(tracked.order_by(journeys.c.recipient))
            ]
            if not principal.acts_for(sender):
                # A recipient sees its own journey; a successor, the one forwarded to it.
                found = [
                    journey
                    for journey in found
                    if principal.acts_for(journey.recipient)
                    or (
                        journey.forwarded_to is not None
                        and principal.acts_for(journey.forwarded_to)
                    )
                ]
            # Refused envelopes are their senders' to see: the document's sender's, and a
            # recipient's own refused statuses about it.
            refused = [
                _refused(row)
                for row in await conn.execute(
                    select(refusals)
                    .where(refusals.c.document_id == document_id)
                    .order_by(refusals.c.at, refusals.c.envelope_id)
                )
                if principal.acts_for(row.sender)
            ]
            if not found and not refused:
                return None
            rows = (
                await conn.execute(
                    select(deliveries)
                    .where(deliveries.c.document_id == document_id)
                    .order_by(deliveries.c.at, deliveries.c.envelope_id)
                )
            ).all()
            submitted = (
                await conn.execute(
                    select(claims.c.claimed_at).where(
                        claims.c.sender == sender,
                        claims.c.document_id == document_id,
                        claims.c.variant == "document:0",
                    )
                )
            ).scalar_one_or_none()
            if not found and not principal.acts_for(sender):
                # Only the asker's own refused envelopes under another sender's DocumentId:
                # nothing of that sender's document is the asker's to see.
                submitted = None
            flags = {
                row.recipient: row.flagged_at
                for row in await conn.execute(
                    select(overdue.c.recipient, overdue.c.flagged_at).where(
                        overdue.c.document_id == document_id, overdue.c.sender == sender
                    )
                )
            }
        tracks = []
        for journey in found:
            heir = journey.forwarded_to
            steps = [Step(at=submitted, kind=StepKind.SUBMITTED, by=sender)] if submitted else []
            steps += [_step(row) for row in rows if _between(row, sender, journey.recipient, heir)]
            if journey.recipient in flags:
                steps.append(Step(at=flags[journey.recipient], kind=StepKind.OVERDUE))
            steps.sort(key=lambda step: step.at)
            tracks.append(RecipientTrack(journey=journey, steps=steps))
        return DocumentTrack(
            document_id=document_id,
            sender=sender,
            submitted_at=submitted,
            recipients=tracks,
            refused=refused,
        )

    async def overview(self, principal: Principal) -> OverdueOverview:
        """Overdue journeys ``principal`` may see, counted per tier and late agency."""
        days = self._days()
        today = days.today
        late = _journeys(principal, JourneyFilter(overdue=True), self._tiers, days).subquery()
        async with self._engine.connect() as conn:
            per_agency = (
                await conn.execute(
                    select(late.c.recipient, func.count().label("overdue"))
                    .group_by(late.c.recipient)
                    .order_by(func.count().desc(), late.c.recipient)
                )
            ).all()
            oldest = await conn.execute(
                select(late)
                .order_by(late.c.due_date, late.c.document_id, late.c.recipient)
                .limit(_OVERVIEW_DOCUMENTS)
            )
            documents = [self._journey(row._mapping) for row in oldest]
        agencies = [
            OverdueAgency(
                agency=row.recipient, tier=self.tier_of(row.recipient), overdue=row.overdue
            )
            for row in per_agency
        ]
        by_tier = {tier.name: 0 for tier in self._tiers.tiers}
        for agency in agencies:
            by_tier[agency.tier] += agency.overdue
        return OverdueOverview(
            as_of=today,
            total=sum(by_tier.values()),
            by_tier=by_tier,
            agencies=agencies,
            documents=documents,
        )

    async def unflagged_overdue(self) -> list[Journey]:
        """Overdue journeys not flagged yet (at most a batch), the longest overdue first."""
        found = _journeys(
            Principal(operator=True),
            JourneyFilter(overdue=True, flagged=False),
            self._tiers,
            self._days(),
        ).subquery()
        async with self._engine.connect() as conn:
            rows = await conn.execute(
                select(found)
                .order_by(found.c.due_date, found.c.document_id, found.c.recipient)
                .limit(_FLAG_BATCH)
            )
            return [self._journey(row._mapping) for row in rows]

    async def oldest_waiting(self) -> dict[str, datetime]:
        """Per recipient, when the oldest document routed to it that has not arrived (no
        status back at all: state ``routed``) was routed; recipients with none are absent.
        One range of the ``journeys_by_state`` index."""
        oldest = func.min(journeys.c.routed_at)
        async with self._engine.connect() as conn:
            rows = await conn.execute(
                select(journeys.c.recipient, oldest)
                .where(journeys.c.state == "routed", journeys.c.routed_at.is_not(None))
                .group_by(journeys.c.recipient)
            )
            return {str(recipient): at for recipient, at in rows}  # aware UTC (its column type)

    async def flag(self, journey: Journey, at: datetime) -> bool:
        """Flag ``journey`` overdue; ``False`` when it already was (by any replica)."""
        assert journey.due_date is not None
        async with self._engine.begin() as conn:
            inserted = await conn.execute(
                self._flag,
                {
                    "document_id": journey.document_id,
                    "recipient": journey.recipient,
                    "sender": journey.sender,
                    "due_date": journey.due_date,
                    "flagged_at": at.astimezone(UTC),
                },
            )
            return inserted.first() is not None

    async def unflag(self, journey: Journey) -> None:
        """Undo :meth:`flag` (its announcement failed: the next check flags it again)."""
        async with self._engine.begin() as conn:
            await conn.execute(
                delete(overdue).where(
                    overdue.c.document_id == journey.document_id,
                    overdue.c.sender == journey.sender,
                    overdue.c.recipient == journey.recipient,
                )
            )

    def _journey(self, row: Any) -> Journey:
        return Journey(
            document_id=row["document_id"],
            sender=row["sender"],
            recipient=row["recipient"],
            tier=self.tier_of(row["recipient"]),
            state=State(row["state"]),
            routed_at=row["routed_at"],
            last_at=row["last_at"],
            due_date=row["due_date"],
            overdue=bool(row["overdue"]),
            forwarded_to=row["forwarded_to"],
        )


def _newest_first(columns: Any) -> list[ColumnElement[Any]]:
    return [columns.routed_at.desc(), columns.document_id, columns.recipient]


def _between(row: Any, sender: str, recipient: str, heir: str | None) -> bool:
    """The row is part of the journey: between the sender and the recipient as addressed,
    or (forwarded) the successor that took its place."""
    parties = {recipient} if heir is None else {recipient, heir}
    return (row.sender == sender and row.recipient in parties) or (
        row.sender in parties and row.recipient == sender
    )


def _step(row: Any) -> Step:
    if row.kind == "document":
        kind = _STEP_OF_BUSINESS.get(row.business_type, StepKind.ROUTED)
    else:
        kind = _STEP_OF_CODE.get(row.status_code, StepKind.STATUS)
    return Step(
        at=row.at,
        kind=kind,
        by=row.sender,
        status_code=row.status_code,
        note=row.status_note,
        forwarded_to=row.forwarded_to,
        directory_version=row.directory_version,
    )


def _refused(row: Row[Any]) -> RefusedEnvelope:
    return RefusedEnvelope(
        envelope_id=row.envelope_id,
        by=row.sender,
        kind=row.kind,
        status_code=row.status_code,
        reason=row.reason,
        message=row.message,
        at=row.at,
    )
