"""Tracking's reads (and its one write, the overdue flag) over the router store's tables.

Everything is derived from what routing already records: ``deliveries`` (one row per routed
envelope and recipient: documents one way, statuses back) and ``claims`` (when the router
took an envelope). A journey's state is one SQL expression, so filters, counts and pages
agree with each other on both SQLite and PostgreSQL.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import (
    ColumnElement,
    Select,
    String,
    and_,
    case,
    delete,
    exists,
    func,
    literal,
    not_,
    or_,
    select,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncEngine

from backbone.organ import OrganCode
from backbone.router.store.schema import claims, deliveries, overdue
from backbone.tiers import Tier, TierModel
from backbone.tracking.model import (
    DocumentTrack,
    Journey,
    JourneyPage,
    OverdueAgency,
    OverdueOverview,
    Principal,
    RecipientTrack,
    State,
    Step,
    StepKind,
)

__all__ = ["MAX_PAGE_SIZE", "JourneyFilter", "Tracker"]

MAX_PAGE_SIZE = 200
_OVERVIEW_DOCUMENTS = 100
_FLAG_BATCH = 1000

# The state column's values in SQL: status codes for statuses, names otherwise.
_STATE_OF_CODE = {
    "01": State.DELIVERED,
    "02": State.REJECTED,
    "03": State.ACCEPTED,
    "04": State.ASSIGNED,
    "05": State.PROCESSING,
    "06": State.COMPLETED,
}
_CODE_OF_STATE = {state: code for code, state in _STATE_OF_CODE.items()}
_PROGRESS = ("01", "03", "04", "05", "06")  # in order, so the furthest is the largest
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
# Organ code ``V1V2V3.Z1Z2.Y1Y2.MX1X2``: its level is the deepest part that is not zeros.
_LEVEL_PREFIX = {1: "000.00.00.", 2: "000.00.", 3: "000."}


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


def _sql_state(state: State) -> str:
    return _CODE_OF_STATE.get(state, state.value)


def _state_of(value: str) -> State:
    return _STATE_OF_CODE.get(value) or State(value)


@dataclass(frozen=True, slots=True)
class _Derived:
    """What is derived per journey, as correlated subqueries on the ``deliveries_by_document``
    index: its state (see the module), due date, latest step, whether it was flagged."""

    state: ColumnElement[str]
    due: ColumnElement[date]
    last: ColumnElement[datetime]
    flagged: ColumnElement[bool]

    @classmethod
    def of(cls, journey: Any) -> _Derived:
        """Over ``journey``, anything with columns document_id, sender and recipient."""

        def rows(name: str, *, back: bool = False) -> tuple[Any, list[ColumnElement[bool]]]:
            """Rows of the journey's pair: sender to recipient, or ``back`` (statuses only)."""
            row = deliveries.alias(name)
            ends = (
                (journey.c.recipient, journey.c.sender)
                if back
                else (journey.c.sender, journey.c.recipient)
            )
            on = [
                row.c.document_id == journey.c.document_id,
                row.c.sender == ends[0],
                row.c.recipient == ends[1],
            ]
            return row, [*on, row.c.kind == "status"] if back else on

        revocation, on = rows("revocation")
        revoked = exists().where(
            *on, revocation.c.kind == "document", revocation.c.business_type == 1
        )
        request, on = rows("take_back")
        asked = exists().where(*on, request.c.kind == "status", request.c.status_code == "13")
        agreement, on = rows("agreed", back=True)
        agreed = exists().where(*on, agreement.c.status_code == "15")
        refusal, on = rows("refusal", back=True)
        rejected = exists().where(*on, refusal.c.status_code == "02")
        status, on = rows("progress", back=True)
        progress = (
            select(func.max(status.c.status_code))
            .where(*on, status.c.status_code.in_(_PROGRESS))
            .scalar_subquery()
        )
        state = case(
            (revoked, literal(State.REVOKED.value, String)),
            (and_(asked, agreed), literal(State.TAKEN_BACK.value, String)),
            (rejected, literal("02", String)),
            else_=func.coalesce(progress, literal(State.ROUTED.value, String)),
        )
        dated, on = rows("dated")
        due = (
            select(dated.c.due_date)
            .where(*on, dated.c.kind == "document", dated.c.due_date.is_not(None))
            .order_by(dated.c.at.desc())
            .limit(1)
            .scalar_subquery()
        )
        step = deliveries.alias("step")
        last = (
            select(func.max(step.c.at))
            .where(
                step.c.document_id == journey.c.document_id,
                or_(
                    and_(
                        step.c.sender == journey.c.sender,
                        step.c.recipient == journey.c.recipient,
                    ),
                    and_(
                        step.c.sender == journey.c.recipient,
                        step.c.recipient == journey.c.sender,
                    ),
                ),
            )
            .scalar_subquery()
        )
        flag = overdue.alias("flag")
        flagged = exists().where(
            flag.c.document_id == journey.c.document_id, flag.c.recipient == journey.c.recipient
        )
        return cls(state, due, last, flagged)


class _Journeys:
    """The journey queries: one row per new document (BussinessDocType 0) and recipient.

    Rows are chosen on the document rows first (who may see them, sender, recipient, tier,
    time, and for overdue ones a past due date); what is derived per journey is computed
    only for the rows a page shows, unless a filter needs it (state, overdue)."""

    def __init__(self) -> None:
        self.doc = deliveries.alias("doc")
        self.on_doc = _Derived.of(self.doc)

    def candidates(
        self, principal: Principal, where: JourneyFilter, tiers: TierModel, today: date
    ) -> Select[Any]:
        """The document rows of the journeys, with columns document_id, sender, recipient
        and routed_at."""
        doc = self.doc
        conditions: list[ColumnElement[bool]] = [doc.c.kind == "document", doc.c.business_type == 0]
        if not principal.operator:
            conditions.append(
                or_(doc.c.sender == principal.agency, doc.c.recipient == principal.agency)
            )
        if where.document_id is not None:
            conditions.append(doc.c.document_id == where.document_id)
        if where.sender is not None:
            conditions.append(doc.c.sender == where.sender)
        if where.recipient is not None:
            conditions.append(doc.c.recipient == where.recipient)
        if where.since is not None:
            conditions.append(doc.c.at >= where.since)
        if where.until is not None:
            conditions.append(doc.c.at < where.until)
        if where.tier is not None:
            conditions.append(_in_tier(doc.c.recipient, _tier_named(tiers, where.tier)))
        if where.flagged is not None:
            flagged = self.on_doc.flagged
            conditions.append(flagged if where.flagged else not_(flagged))
        chosen = select(
            doc.c.document_id, doc.c.sender, doc.c.recipient, doc.c.at.label("routed_at")
        ).where(*conditions)
        if not where.overdue:
            return chosen
        # Only journeys given a due date that has passed (``deliveries_by_due_date``), before
        # any state is worked out; whether the latest due date passed is decided after.
        dated = deliveries.alias("dated")
        past_due = (
            select(dated.c.document_id, dated.c.sender, dated.c.recipient)
            .where(dated.c.kind == "document", dated.c.due_date < today)
            .distinct()
            .subquery("past_due")
        )
        return chosen.join_from(
            doc,
            past_due,
            and_(
                past_due.c.document_id == doc.c.document_id,
                past_due.c.sender == doc.c.sender,
                past_due.c.recipient == doc.c.recipient,
            ),
        )

    @staticmethod
    def derive(candidates: Any, where: JourneyFilter, today: date) -> Select[Any]:
        """The journeys of the ``candidates`` subquery with what is derived, filtered on
        state and overdue: columns document_id, sender, recipient, routed_at, state,
        due_date, last_at, overdue."""
        derived = _Derived.of(candidates)
        inner = select(
            *candidates.c,
            derived.state.label("state"),
            derived.due.label("due_date"),
            func.coalesce(derived.last, candidates.c.routed_at).label("last_at"),
        ).subquery("journey")
        late = and_(
            inner.c.due_date.is_not(None),
            inner.c.due_date < today,
            inner.c.state.not_in([_sql_state(state) for state in State if state.finished]),
        )
        outer = select(*inner.c, late.label("overdue"))
        if where.state is not None:
            outer = outer.where(inner.c.state == _sql_state(where.state))
        if where.overdue is not None:
            outer = outer.where(late if where.overdue else not_(late))
        return outer

    def select(
        self, principal: Principal, where: JourneyFilter, tiers: TierModel, today: date
    ) -> Select[Any]:
        """Every matching journey, derived columns included."""
        candidates = self.candidates(principal, where, tiers, today).subquery("candidate")
        return self.derive(candidates, where, today)


def _tier_named(tiers: TierModel, name: str) -> Tier:
    for tier in tiers.tiers:
        if tier.name == name:
            return tier
    known = ", ".join(tier.name for tier in tiers.tiers)
    raise ValueError(f"unknown tier {name!r}; the tiers are {known}")


def _in_tier(code: ColumnElement[str], tier: Tier) -> ColumnElement[bool]:
    """``code`` (organ code text) is at one of the tier's levels, in SQL."""
    by_level: dict[int, ColumnElement[bool]] = {
        1: code.like(_LEVEL_PREFIX[1] + "%"),
        2: and_(code.like(_LEVEL_PREFIX[2] + "%"), not_(code.like(_LEVEL_PREFIX[1] + "%"))),
        3: and_(code.like(_LEVEL_PREFIX[3] + "%"), not_(code.like(_LEVEL_PREFIX[2] + "%"))),
        4: not_(code.like(_LEVEL_PREFIX[3] + "%")),
    }
    return or_(*(by_level[level] for level in tier.levels))


class Tracker:
    """Answers tracking questions from the store's tables on ``engine`` (the router's own:
    :attr:`backbone.router.store.SqlStore.engine`)."""

    def __init__(
        self, engine: AsyncEngine, tiers: TierModel, *, zone: str = "Asia/Ho_Chi_Minh"
    ) -> None:
        self._engine = engine
        self._tiers = tiers
        self._zone = ZoneInfo(zone)
        self._journeys = _Journeys()
        dialect = postgresql if engine.dialect.name == "postgresql" else sqlite
        self._flag = (
            dialect.insert(overdue).on_conflict_do_nothing().returning(overdue.c.document_id)
        )

    @property
    def tiers(self) -> TierModel:
        return self._tiers

    def today(self) -> date:
        """The day it is where the agencies are: a due date is missed once it has passed."""
        return datetime.now(self._zone).date()

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
        if page < 1 or not 1 <= page_size <= MAX_PAGE_SIZE:
            raise ValueError(f"page starts at 1 and page_size is 1..{MAX_PAGE_SIZE}")
        today = self.today()
        journeys = self._journeys
        candidates = journeys.candidates(principal, where, self._tiers, today)
        if where.state is None and where.overdue is None:
            # Page the document rows, then derive the state of that page only.
            counted = candidates.subquery("candidate")
            shown = (
                candidates.order_by(*_newest_first(candidates.selected_columns))
                .limit(page_size)
                .offset((page - 1) * page_size)
                .subquery("shown")
            )
            paged = journeys.derive(shown, where, today).subquery("page")
            listing = select(paged).order_by(*_newest_first(paged.c))
            async with self._engine.connect() as conn:
                total = (await conn.execute(select(func.count()).select_from(counted))).scalar_one()
                items = [self._journey(row._mapping) for row in await conn.execute(listing)]
            return JourneyPage(items=items, page=page, page_size=page_size, total=total)
        # The state decides which rows match: derive it once, counting in the same query.
        found = journeys.derive(candidates.subquery("candidate"), where, today).subquery()
        matching = (
            select(found, func.count().over().label("matching"))
            .order_by(*_newest_first(found.c))
            .limit(page_size)
            .offset((page - 1) * page_size)
        )
        async with self._engine.connect() as conn:
            rows = (await conn.execute(matching)).all()
            if rows:
                total = rows[0].matching
            else:  # past the last page (or nothing matches)
                counting = select(func.count()).select_from(found)
                total = (await conn.execute(counting)).scalar_one() if page > 1 else 0
        items = [self._journey(row._mapping) for row in rows]
        return JourneyPage(items=items, page=page, page_size=page_size, total=total)

    async def document(self, principal: Principal, document_id: str) -> DocumentTrack | None:
        """The document's timeline per recipient, or ``None`` when it does not exist *or*
        ``principal`` may not see it (the two are indistinguishable on purpose). A sender
        sees every recipient; a recipient only its own journey."""
        where = JourneyFilter(document_id=document_id)
        journeys = self._journeys.select(
            Principal(operator=True), where, self._tiers, self.today()
        ).subquery()
        async with self._engine.connect() as conn:
            found = [
                self._journey(row._mapping)
                for row in await conn.execute(select(journeys).order_by(journeys.c.recipient))
            ]
            if not found:
                return None
            sender = found[0].sender
            if not principal.operator and principal.agency != sender:
                found = [journey for journey in found if journey.recipient == principal.agency]
                if not found:
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
            flags = {
                row.recipient: row.flagged_at
                for row in await conn.execute(
                    select(overdue.c.recipient, overdue.c.flagged_at).where(
                        overdue.c.document_id == document_id
                    )
                )
            }
        tracks = []
        for journey in found:
            steps = [Step(at=submitted, kind=StepKind.SUBMITTED, by=sender)] if submitted else []
            steps += [_step(row) for row in rows if _between(row, sender, journey.recipient)]
            if journey.recipient in flags:
                steps.append(Step(at=flags[journey.recipient], kind=StepKind.OVERDUE))
            steps.sort(key=lambda step: step.at)
            tracks.append(RecipientTrack(journey=journey, steps=steps))
        return DocumentTrack(
            document_id=document_id, sender=sender, submitted_at=submitted, recipients=tracks
        )

    async def overview(self, principal: Principal) -> OverdueOverview:
        """Overdue journeys ``principal`` may see, counted per tier and late agency."""
        today = self.today()
        late = self._journeys.select(
            principal, JourneyFilter(overdue=True), self._tiers, today
        ).subquery()
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
        found = self._journeys.select(
            Principal(operator=True),
            JourneyFilter(overdue=True, flagged=False),
            self._tiers,
            self.today(),
        ).subquery()
        async with self._engine.connect() as conn:
            rows = await conn.execute(
                select(found)
                .order_by(found.c.due_date, found.c.document_id, found.c.recipient)
                .limit(_FLAG_BATCH)
            )
            return [self._journey(row._mapping) for row in rows]

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
                    overdue.c.recipient == journey.recipient,
                )
            )

    def _journey(self, row: Any) -> Journey:
        return Journey(
            document_id=row["document_id"],
            sender=row["sender"],
            recipient=row["recipient"],
            tier=self.tier_of(row["recipient"]),
            state=_state_of(row["state"]),
            routed_at=row["routed_at"],
            last_at=row["last_at"],
            due_date=row["due_date"],
            overdue=bool(row["overdue"]),
        )


def _newest_first(columns: Any) -> list[ColumnElement[Any]]:
    return [columns.routed_at.desc(), columns.document_id, columns.recipient]


def _between(row: Any, sender: str, recipient: str) -> bool:
    return (row.sender, row.recipient) in ((sender, recipient), (recipient, sender))


def _step(row: Any) -> Step:
    if row.kind == "document":
        kind = _STEP_OF_BUSINESS.get(row.business_type, StepKind.ROUTED)
    else:
        kind = _STEP_OF_CODE.get(row.status_code, StepKind.STATUS)
    return Step(
        at=row.at, kind=kind, by=row.sender, status_code=row.status_code, note=row.status_note
    )
