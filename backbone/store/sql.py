"""The SQL store: SQLAlchemy Core over asyncio, one implementation for SQLite and PostgreSQL.

Every call is one round trip on PostgreSQL where it can be (only a claim that meets an
existing row reads it back). What differs between the two databases is in ``_DIALECTS``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from itertools import groupby
from pathlib import Path
from typing import Any, cast

from sqlalchemy import (
    URL,
    Executable,
    String,
    Table,
    and_,
    bindparam,
    event,
    func,
    inspect,
    literal,
    make_url,
    or_,
    select,
    tuple_,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError, InterfaceError, OperationalError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.schema import CreateSchema

from backbone.clock import Clock, utc_now
from backbone.envelope import EnvelopeHeader
from backbone.errors import Reason, StoreUnavailableError
from backbone.store.abc import Claim, ClaimState, Delivery, Outcome, SubmissionKey
from backbone.store.journeys import (
    JourneyFacts,
    fact_of,
    facts_of,
    merge,
    upsert_statement,
)
from backbone.store.rules import judge, utc
from backbone.store.schema import (
    UtcDateTime,
    add_missing_columns,
    claims,
    deliveries,
    journeys,
    metadata,
)

__all__ = ["Call", "ClaimCall", "ClaimRouteCall", "FinishCall", "RoutedCall", "SqlStore"]

# Seconds to wait for a PostgreSQL connection, and for SQLite's write lock held by another
# process, before calling the store unavailable.
_CONNECT_TIMEOUT = 5.0
_BUSY_TIMEOUT_MS = 5000
# A fixed pool: callers beyond it wait for a connection. Overflow connections would be
# opened and closed per call under load, which costs more than the wait.
_POOL = {"pool_size": 10, "max_overflow": 0}

_IDENTITY = and_(
    claims.c.sender == bindparam("k_sender"),
    claims.c.document_id == bindparam("k_document"),
    claims.c.variant == bindparam("k_variant"),
)
_READ_CLAIM = select(claims.c.payload_digest, claims.c.envelope_id, claims.c.outcome).where(
    _IDENTITY
)
# Compare-and-set: hand an unfinished claim to a new envelope only if nobody finished or
# took it over since it was read.
_TAKE_OVER = (
    update(claims)
    .where(_IDENTITY, claims.c.envelope_id == bindparam("k_holder"), claims.c.outcome.is_(None))
    .values(
        envelope_id=bindparam("new_envelope"),
        claimed_at=bindparam("new_claimed_at", type_=UtcDateTime),
    )
)
_FINISH = (
    update(claims)
    .where(claims.c.envelope_id == bindparam("k_envelope"))
    .values(outcome=bindparam("new_outcome"), reason=bindparam("new_reason"))
)
_OUTCOME_OF = select(claims.c.outcome).where(claims.c.envelope_id == bindparam("k_envelope"))
_HISTORY = (
    select(deliveries)
    .where(
        deliveries.c.document_id == bindparam("k_document"),
        or_(
            and_(
                deliveries.c.sender == bindparam("k_a"), deliveries.c.recipient == bindparam("k_b")
            ),
            and_(
                deliveries.c.sender == bindparam("k_b"), deliveries.c.recipient == bindparam("k_a")
            ),
        ),
    )
    .order_by(deliveries.c.at, deliveries.c.envelope_id, deliveries.c.recipient)
)
_PING = select(literal(1))
# What a journey is worked out from, per delivery row (``journeys.fact_of``).
_BACKFILLED = [
    deliveries.c[name]
    for name in (
        "envelope_id",
        "document_id",
        "sender",
        "recipient",
        "kind",
        "business_type",
        "status_code",
        "due_date",
        "at",
    )
]
_BACKFILL_BATCH = 5000
_DELIVERY_FIELDS = [(column.name, column.type) for column in deliveries.columns]


@dataclass(frozen=True, slots=True)
class ClaimCall:
    """:meth:`SqlStore.claim`, for :meth:`SqlStore.apply`."""

    identity: SubmissionKey
    envelope_id: str


@dataclass(frozen=True, slots=True)
class RoutedCall:
    """:meth:`SqlStore.record_routed`, for :meth:`SqlStore.apply`."""

    header: EnvelopeHeader
    at: datetime


@dataclass(frozen=True, slots=True)
class ClaimRouteCall:
    """:meth:`SqlStore.claim_route`, for :meth:`SqlStore.apply`."""

    header: EnvelopeHeader

    @property
    def claim(self) -> ClaimCall:
        return ClaimCall(SubmissionKey.of(self.header), self.header.envelope_id)


@dataclass(frozen=True, slots=True)
class FinishCall:
    """:meth:`SqlStore.finish`, for :meth:`SqlStore.apply`."""

    envelope_id: str
    outcome: Outcome
    reason: Reason | None = None


Call = ClaimCall | ClaimRouteCall | RoutedCall | FinishCall


def _insert_if_absent(
    insert: Callable[[Table], postgresql.Insert | sqlite.Insert], table: Table
) -> postgresql.Insert | sqlite.Insert:
    return insert(table).on_conflict_do_nothing(index_elements=list(table.primary_key))


def _routed_in_one_statement() -> Executable:
    """PostgreSQL's ``record_routed``: the claim's update rides in the WITH clause of the
    deliveries insert, which makes one row per element of the recipients array."""
    routed = (
        update(claims)
        .where(claims.c.envelope_id == bindparam("k_envelope"))
        .values(outcome=Outcome.ROUTED.value, reason=None)
        .cte("routed")
    )
    per_recipient = select(
        bindparam("k_envelope", type_=String),
        func.unnest(bindparam("d_recipients", type_=postgresql.ARRAY(String))),
        *(
            bindparam(f"d_{name}", type_=kind)
            for name, kind in _DELIVERY_FIELDS
            if name not in ("envelope_id", "recipient")
        ),
    )
    return (
        _insert_if_absent(postgresql.insert, deliveries)
        .from_select([name for name, _ in _DELIVERY_FIELDS], per_recipient)
        .add_cte(routed)
    )


@dataclass(frozen=True, slots=True)
class _Dialect:
    insert: Callable[[Table], postgresql.Insert | sqlite.Insert]  # has ON CONFLICT DO NOTHING
    # Serialises table creation between replicas opening a fresh database at once.
    ddl_lock: str
    # Calls run on AUTOCOMMIT connections where an error would abort the transaction
    # (PostgreSQL) and a BEGIN/COMMIT costs round trips; SQLite's driver already begins
    # only before a write, and switching its isolation costs two thread hops per call.
    autocommit: bool
    routed: Executable | None  # record_routed as one statement, where the dialect allows


_DIALECTS = {
    "postgresql": _Dialect(
        postgresql.insert,
        "SELECT pg_advisory_xact_lock(4242010201)",
        autocommit=True,
        routed=_routed_in_one_statement(),
    ),
    "sqlite": _Dialect(sqlite.insert, "BEGIN IMMEDIATE", autocommit=False, routed=None),
}
_DRIVERS = {"postgresql+asyncpg", "sqlite+aiosqlite"}


class SqlStore:
    """A :class:`~backbone.store.abc.Store` in SQLite (one host, several processes share
    the file) or PostgreSQL (several router replicas). Open it with :meth:`open`."""

    def __init__(
        self, engine: AsyncEngine, *, schema: str | None = None, clock: Clock = utc_now
    ) -> None:
        """Use ``engine`` (whose tables exist) and its pool; :meth:`close` disposes it.
        ``clock`` says when a claim is made."""
        dialect = _DIALECTS[engine.dialect.name]
        self._clock = clock
        self._base = engine
        self._engine = engine.execution_options(schema_translate_map={None: schema})
        if dialect.autocommit:
            self._engine = self._engine.execution_options(isolation_level="AUTOCOMMIT")
        self._where = engine.url.render_as_string(hide_password=True)
        # A real transaction for :meth:`apply`, whatever the per-call isolation.
        self._transactional = engine.execution_options(schema_translate_map={None: schema})
        self._savepoints = engine.dialect.name == "postgresql"
        self._claim_insert = (
            dialect.insert(claims).on_conflict_do_nothing().returning(claims.c.envelope_id)
        )
        # Many rows in one statement (SQLAlchemy's "insertmanyvalues"); what it returns
        # names each inserted claim whole, as a run may hold one envelope id twice.
        self._claim_insert_many = (
            dialect.insert(claims)
            .on_conflict_do_nothing()
            .returning(
                claims.c.sender, claims.c.document_id, claims.c.variant, claims.c.envelope_id
            )
        )
        self._delivery_insert = _insert_if_absent(dialect.insert, deliveries)
        self._journey_upsert = upsert_statement(engine.dialect.name)
        self._routed = dialect.routed

    @property
    def engine(self) -> AsyncEngine:
        """The engine (its schema applied) for readers of the store's tables, such as
        ``backbone.tracking``; it is closed with the store."""
        return self._transactional

    @classmethod
    async def open(
        cls, url: str | URL, *, schema: str | None = None, clock: Clock = utc_now
    ) -> SqlStore:
        """Connect, create the tables (and PostgreSQL ``schema``) if absent, and return the
        store. Raise :class:`StoreUnavailableError` when the database cannot be used."""
        engine = _create_engine(make_url(url), schema)
        store = cls(engine, schema=schema, clock=clock)
        try:
            ddl = engine.execution_options(schema_translate_map={None: schema})
            async with ddl.begin() as conn:
                await conn.exec_driver_sql(_DIALECTS[engine.dialect.name].ddl_lock)
                if schema is not None:
                    await conn.execute(CreateSchema(schema, if_not_exists=True))
                new_journeys = not await conn.run_sync(
                    lambda sync: inspect(sync).has_table(journeys.name, schema=schema)
                )
                await conn.run_sync(metadata.create_all)
                await conn.run_sync(add_missing_columns)
                if new_journeys:  # a store from before journeys were kept
                    await store._backfill_journeys(conn)
        except (SQLAlchemyError, OSError, TimeoutError) as error:
            await engine.dispose()
            raise StoreUnavailableError(
                f"cannot open the store at {store._where}: {error}"
            ) from error
        return store

    async def claim(self, identity: SubmissionKey, envelope_id: str) -> Claim:
        now = self._clock()
        # On SQLite the insert takes the write lock first, so what follows cannot race.
        async with self._reachable(), self._engine.begin() as conn:
            return await self._claim_on(conn, identity, envelope_id, now, in_transaction=False)

    async def claim_route(self, header: EnvelopeHeader) -> Claim:
        (claim,) = await self.apply([ClaimRouteCall(header)])
        assert claim is not None
        return claim

    async def finish(
        self, envelope_id: str, outcome: Outcome, *, reason: Reason | None = None
    ) -> None:
        async with self._reachable(), self._engine.begin() as conn:
            await conn.execute(_FINISH, _finished(envelope_id, outcome, reason))

    async def record_routed(self, header: EnvelopeHeader, at: datetime) -> None:
        at = utc(at)
        # A real transaction even on PostgreSQL: the deliveries and their journeys together.
        async with self._reachable(), self._transactional.begin() as conn:
            await self._routed_on(conn, header, at)

    async def apply(self, calls: Sequence[Call]) -> list[Claim | None]:
        """Run ``calls`` in order in ONE transaction (a group commit): each behaves exactly
        as the method of the same name called alone, one after the other. Return one result
        per call (its :class:`Claim`, ``None`` for the others). When the transaction fails
        nothing is committed and the error is raised (:class:`StoreUnavailableError` for the
        database failing), for every call alike."""
        now = self._clock()
        results: list[Claim | None] = []
        async with self._reachable(), self._transactional.begin() as conn:
            # Consecutive calls of one kind run together: a run of claims is one multi-row
            # insert, a run of record_routed two statements (SQLite: one hop each).
            for _, grouped in groupby(calls, key=type):
                run = list(grouped)
                if isinstance(run[0], ClaimCall):
                    results.extend(await self._claim_many(conn, cast(list[ClaimCall], run), now))
                elif isinstance(run[0], ClaimRouteCall):
                    results.extend(
                        await self._claim_routes(conn, cast(list[ClaimRouteCall], run), now)
                    )
                elif isinstance(run[0], RoutedCall):
                    await self._record_routes(conn, cast(list[RoutedCall], run))
                    results.extend([None] * len(run))
                else:
                    for finish in cast(list[FinishCall], run):
                        await conn.execute(
                            _FINISH, _finished(finish.envelope_id, finish.outcome, finish.reason)
                        )
                    results.extend([None] * len(run))
        return results

    async def _record_routes(self, conn: AsyncConnection, run: Sequence[RoutedCall]) -> None:
        if self._routed is None:
            # A run of record_routed calls touches nothing any other call of the run reads.
            await self._routed_many(conn, run)
            return
        for call in run:
            await self._delivered_on(conn, call.header, utc(call.at))
        await self._track(conn, run)

    async def _claim_routes(
        self, conn: AsyncConnection, run: Sequence[ClaimRouteCall], now: datetime
    ) -> list[Claim]:
        # Routed at the moment of the claim. A claim that commutes with the rest of the run
        # (_claim_many) is recorded with the others at the end; one that does not is
        # recorded right after its claim, as the two calls one after the other would be.
        deferred: list[RoutedCall] = []

        async def record(call: ClaimRouteCall, claim: Claim, commutes: bool) -> None:
            if not claim.state.routes:
                return
            if commutes:
                deferred.append(RoutedCall(call.header, now))
            else:
                await self._routed_on(conn, call.header, now)

        claims = await self._claim_many(
            conn,
            [call.claim for call in run],
            now,
            then=lambda i, c, alone: record(run[i], c, alone),
        )
        if deferred:
            await self._record_routes(conn, deferred)
        return claims

    async def _claim_on(
        self,
        conn: AsyncConnection,
        identity: SubmissionKey,
        envelope_id: str,
        now: datetime,
        *,
        in_transaction: bool,
    ) -> Claim:
        # The insert skips any conflict (the identity held, or the envelope id holding
        # another identity), so it never raises: an error would abort a PostgreSQL
        # transaction that other calls share. The two cases are told apart below.
        inserted = await conn.execute(self._claim_insert, _claim_row(identity, envelope_id, now))
        if inserted.first() is not None:
            return Claim(ClaimState.NEW, envelope_id, None)
        return await self._claim_held(
            conn, identity, envelope_id, now, in_transaction=in_transaction
        )

    async def _claim_many(
        self,
        conn: AsyncConnection,
        run: Sequence[ClaimCall],
        now: datetime,
        *,
        then: Callable[[int, Claim, bool], Awaitable[None]] | None = None,
    ) -> list[Claim]:
        """The claims of ``run``, each as if made alone in order; ``then(index, claim,
        commutes)`` runs after each, before the next (``commutes``: it shares neither its
        identity nor its envelope id with another claim of the run).

        Such a claim commutes with all the others: those go in one multi-row insert. The
        others run one by one, in order, so the run resolves exactly as claims one by one
        would."""

        def keys(call: ClaimCall) -> tuple[tuple[str, str, str], str]:
            identity = call.identity
            return (identity.sender, identity.document_id, identity.variant), call.envelope_id

        shared = Counter(key for call in run for key in keys(call))

        def commutes(call: ClaimCall) -> bool:
            return all(shared[key] == 1 for key in keys(call))

        independent = [call for call in run if commutes(call)]
        inserted: set[tuple[str, ...]] = set()
        if independent:
            found = await conn.execute(
                self._claim_insert_many,
                [_claim_row(call.identity, call.envelope_id, now) for call in independent],
            )
            inserted = {tuple(row) for row in found}
        results = []
        for index, call in enumerate(run):
            alone = commutes(call)
            if _claim_key(call.identity, call.envelope_id) in inserted:
                claim = Claim(ClaimState.NEW, call.envelope_id, None)
            elif alone:  # its insert found the identity or the envelope id held already
                claim = await self._claim_held(
                    conn, call.identity, call.envelope_id, now, in_transaction=True
                )
            else:
                claim = await self._claim_on(
                    conn, call.identity, call.envelope_id, now, in_transaction=True
                )
            results.append(claim)
            if then is not None:
                await then(index, claim, alone)
        return results

    async def _claim_held(
        self,
        conn: AsyncConnection,
        identity: SubmissionKey,
        envelope_id: str,
        now: datetime,
        *,
        in_transaction: bool,
    ) -> Claim:
        """Resolve a claim whose insert found the identity, or the envelope id, taken."""
        key = {
            "k_sender": identity.sender,
            "k_document": identity.document_id,
            "k_variant": identity.variant,
        }
        while True:  # loops only when another replica changed the row in between
            held = (await conn.execute(_READ_CLAIM, key)).first()
            if held is None:
                return await _envelope_taken(conn, envelope_id)
            outcome = None if held.outcome is None else Outcome(held.outcome)
            state = judge(identity, held.payload_digest, outcome)
            claim = Claim(state, held.envelope_id, outcome)
            if state is not ClaimState.RESUMED or held.envelope_id == envelope_id:
                return claim
            params = {
                **key,
                "k_holder": held.envelope_id,
                "new_envelope": envelope_id,
                "new_claimed_at": now,
            }
            try:
                if in_transaction and self._savepoints:
                    # A failed statement aborts a PostgreSQL transaction: contain it.
                    async with conn.begin_nested():
                        taken = await conn.execute(_TAKE_OVER, params)
                else:  # SQLite fails the statement only, and keeps the transaction
                    taken = await conn.execute(_TAKE_OVER, params)
            except IntegrityError:
                return await _envelope_taken(conn, envelope_id)
            if taken.rowcount == 1:
                return claim

    async def _routed_many(self, conn: AsyncConnection, run: Sequence[RoutedCall]) -> None:
        # Three statements for the whole run; the update takes SQLite's write lock.
        await conn.execute(
            _FINISH, [_finished(call.header.envelope_id, Outcome.ROUTED, None) for call in run]
        )
        rows = [
            {**_delivery_fields(call.header, utc(call.at)), "recipient": recipient}
            for call in run
            for recipient in call.header.recipients
        ]
        if rows:
            await conn.execute(self._delivery_insert, rows)
        await self._track(conn, run)

    async def _routed_on(self, conn: AsyncConnection, header: EnvelopeHeader, at: datetime) -> None:
        if self._routed is None:
            await self._routed_many(conn, [RoutedCall(header, at)])
            return
        await self._delivered_on(conn, header, at)
        await self._track(conn, [RoutedCall(header, at)])

    async def _delivered_on(
        self, conn: AsyncConnection, header: EnvelopeHeader, at: datetime
    ) -> None:
        """PostgreSQL: the claim's outcome and the delivery rows in one statement."""
        assert self._routed is not None
        await conn.execute(
            self._routed,
            {
                "k_envelope": header.envelope_id,
                "d_recipients": header.recipients,
                **{f"d_{name}": value for name, value in _delivery_fields(header, at).items()},
            },
        )

    async def _track(self, conn: AsyncConnection, run: Sequence[RoutedCall]) -> None:
        """Bring the journeys the run's envelopes touch up to date (``journeys.py``)."""
        facts = merge(fact for call in run for fact in facts_of(call.header, utc(call.at)))
        await self._upsert_journeys(conn, facts)

    async def _upsert_journeys(self, conn: AsyncConnection, facts: Sequence[JourneyFacts]) -> None:
        if facts:
            await conn.execute(self._journey_upsert, [fact.row() for fact in facts])

    async def _backfill_journeys(self, conn: AsyncConnection) -> None:
        """Work the journeys out from every delivery recorded so far, a batch at a time (in
        key order: the order does not matter to the result, see ``journeys.py``)."""
        after = ("", "")
        while True:
            batch = (
                await conn.execute(
                    select(*_BACKFILLED)
                    .where(tuple_(deliveries.c.envelope_id, deliveries.c.recipient) > after)
                    .order_by(deliveries.c.envelope_id, deliveries.c.recipient)
                    .limit(_BACKFILL_BATCH)
                )
            ).all()
            if not batch:
                return
            facts = [
                fact_of(**{k: v for k, v in row._mapping.items() if k != "envelope_id"})
                for row in batch
            ]
            await self._upsert_journeys(conn, merge(facts))
            after = (batch[-1].envelope_id, batch[-1].recipient)

    async def history(self, document_id: str, *, sender: str, recipient: str) -> Sequence[Delivery]:
        async with self._reachable(), self._engine.connect() as conn:
            found = await conn.execute(
                _HISTORY, {"k_document": document_id, "k_a": sender, "k_b": recipient}
            )
            return [Delivery(**row._mapping) for row in found]

    async def ping(self) -> None:
        try:
            async with self._engine.connect() as conn:
                await conn.execute(_PING)
        except (SQLAlchemyError, OSError, TimeoutError) as error:
            raise StoreUnavailableError(
                f"the store at {self._where} does not answer: {error}"
            ) from error

    async def close(self) -> None:
        await self._base.dispose()

    @asynccontextmanager
    async def _reachable(self) -> AsyncIterator[None]:
        # Lost connections and locks held too long are the store being unavailable (the
        # router retries later); anything else is a bug and propagates as it is.
        try:
            yield
        except (OperationalError, InterfaceError, OSError, TimeoutError) as error:
            raise StoreUnavailableError(f"the store at {self._where} failed: {error}") from error


def _delivery_fields(header: EnvelopeHeader, at: datetime) -> dict[str, Any]:
    """A delivery row of ``header`` routed ``at``, but for its recipient."""
    return {
        "envelope_id": header.envelope_id,
        "document_id": header.document_id,
        "sender": header.sender,
        "kind": str(header.kind),
        "business_type": header.business_type,
        "status_code": header.status_code,
        "at": at,
        "due_date": header.due_date,
        "status_note": header.status_note,
    }


def _claim_row(identity: SubmissionKey, envelope_id: str, now: datetime) -> dict[str, Any]:
    return {
        "sender": identity.sender,
        "document_id": identity.document_id,
        "variant": identity.variant,
        "payload_digest": identity.payload_digest,
        "envelope_id": envelope_id,
        "claimed_at": now,
    }


def _claim_key(identity: SubmissionKey, envelope_id: str) -> tuple[str, str, str, str]:
    return (identity.sender, identity.document_id, identity.variant, envelope_id)


def _finished(envelope_id: str, outcome: Outcome, reason: Reason | None) -> dict[str, Any]:
    return {
        "k_envelope": envelope_id,
        "new_outcome": outcome.value,
        "new_reason": None if reason is None else reason.value,
    }


async def _envelope_taken(conn: AsyncConnection, envelope_id: str) -> Claim:
    # The envelope id already holds another identity: a reused id is never routed.
    outcome = (await conn.execute(_OUTCOME_OF, {"k_envelope": envelope_id})).scalar_one()
    return Claim(ClaimState.CONFLICT, envelope_id, None if outcome is None else Outcome(outcome))


def _create_engine(url: URL, schema: str | None) -> AsyncEngine:
    if url.drivername not in _DRIVERS:
        raise ValueError(
            f"unsupported store URL scheme {url.drivername!r}: use sqlite+aiosqlite:///file.db, "
            "postgresql+asyncpg://… or memory://"
        )
    if url.drivername == "postgresql+asyncpg":
        return create_async_engine(url, connect_args={"timeout": _CONNECT_TIMEOUT}, **_POOL)
    if schema is not None:
        raise ValueError("a schema applies to PostgreSQL only")
    if not url.database or url.database == ":memory:":
        raise ValueError("a SQLite store needs a file (use memory:// for an in-memory store)")
    Path(url.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_async_engine(url, **_POOL)
    event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
    return engine


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets readers run beside the one writer, across processes; synchronous=NORMAL is
    # safe in WAL (a power cut may lose the last commits, never corrupt the file). The busy
    # timeout comes first: switching to WAL takes a lock that another process opening the
    # same file at that moment may hold ("database is locked" otherwise).
    cursor = dbapi_connection.cursor()
    for pragma in (
        f"PRAGMA busy_timeout={_BUSY_TIMEOUT_MS}",
        "PRAGMA journal_mode=WAL",
        "PRAGMA synchronous=NORMAL",
    ):
        cursor.execute(pragma)
    cursor.close()
