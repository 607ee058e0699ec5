"""The SQL store: SQLAlchemy Core, one implementation for SQLite and PostgreSQL.

Every call is one round trip on PostgreSQL where it can be (only a claim that meets an
existing row reads it back). What differs between the two databases is in ``engine.DIALECTS``.
The writes are written once, on a synchronous connection: run through the async driver
(``run_sync``), except SQLite's transactions of a few calls, run whole on the store's writing
thread (``sqlite_writer.py``, :data:`ONE_HOP_CALLS`); reads stay async.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import asdict
from datetime import datetime
from itertools import groupby
from typing import TypeVar, cast

from sqlalchemy import URL, inspect, make_url
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError, InterfaceError, OperationalError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.schema import CreateSchema

from backbone.clock import Clock, utc_now
from backbone.envelope import EnvelopeHeader
from backbone.errors import Reason, StoreUnavailableError
from backbone.store.abc import (
    NOT_RECORDED,
    Claim,
    ClaimState,
    Delivery,
    OpenChunked,
    Outcome,
    Refusal,
    Routing,
    SubmissionKey,
)
from backbone.store.backfill import backfill_journeys
from backbone.store.calls import Call, ClaimCall, ClaimRouteCall, FinishCall, RoutedCall
from backbone.store.engine import DIALECTS, create_engine
from backbone.store.journeys import JourneyFacts, facts_of, merge, upsert_statement
from backbone.store.open_chunked import OpenChunkedStatements
from backbone.store.rules import judge, utc
from backbone.store.schema import (
    add_missing_columns,
    claims,
    deliveries,
    journeys,
    metadata,
    refusals,
)
from backbone.store.sqlite_writer import SqliteWriter
from backbone.store.statements import (
    FINISH,
    HISTORY,
    OUTCOME_OF,
    PING,
    READ_CLAIM,
    REFUSALS,
    TAKE_OVER,
    claim_key,
    claim_row,
    delivery_fields,
    delivery_rows,
    finished,
    insert_if_absent,
)

__all__ = ["SqlStore"]

_T = TypeVar("_T")
# A transaction of at most this many calls runs whole on SQLite's writing thread, one thread
# hop; a larger one (a batch of a router at saturation) goes through aiosqlite, whose hops a
# statement it amortises, and whose database work then overlaps the event loop's own
# (bench/OPTIMISATIONS.md: either alone cost more CPU at one of the two ends).
ONE_HOP_CALLS = 16


class SqlStore:
    """A :class:`~backbone.store.abc.Store` in SQLite (one host, several processes share
    the file) or PostgreSQL (several router replicas). Open it with :meth:`open`."""

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        schema: str | None = None,
        clock: Clock = utc_now,
        one_hop_calls: int = ONE_HOP_CALLS,
    ) -> None:
        """Use ``engine`` (whose tables exist) and its pool; :meth:`close` disposes it.
        ``clock`` says when a claim is made. ``one_hop_calls``: on SQLite, the most calls a
        transaction runs on the writing thread (:data:`ONE_HOP_CALLS`; 0: none does)."""
        dialect = DIALECTS[engine.dialect.name]
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
        self._delivery_insert = insert_if_absent(dialect.insert, deliveries)
        self._refusal_insert = insert_if_absent(dialect.insert, refusals)
        self._chunked = OpenChunkedStatements(dialect.insert)
        self._journey_upsert = upsert_statement(engine.dialect.name)
        self._routed = dialect.routed
        self._writer = SqliteWriter(engine.url) if engine.dialect.name == "sqlite" else None
        self._one_hop_calls = one_hop_calls

    @property
    def engine(self) -> AsyncEngine:
        """The engine (its schema applied) for readers of the store's tables, such as
        ``backbone.tracking``; it is closed with the store."""
        return self._transactional

    @classmethod
    async def open(
        cls,
        url: str | URL,
        *,
        schema: str | None = None,
        clock: Clock = utc_now,
        one_hop_calls: int = ONE_HOP_CALLS,
    ) -> SqlStore:
        """Connect, create the tables (and PostgreSQL ``schema``) if absent, and return the
        store. Raise :class:`StoreUnavailableError` when the database cannot be used."""
        engine = create_engine(make_url(url), schema)
        store = cls(engine, schema=schema, clock=clock, one_hop_calls=one_hop_calls)
        try:
            ddl = engine.execution_options(schema_translate_map={None: schema})
            async with ddl.begin() as conn:
                await conn.exec_driver_sql(DIALECTS[engine.dialect.name].ddl_lock)
                if schema is not None:
                    await conn.execute(CreateSchema(schema, if_not_exists=True))
                new_journeys = not await conn.run_sync(
                    lambda sync: inspect(sync).has_table(journeys.name, schema=schema)
                )
                await conn.run_sync(metadata.create_all)
                await conn.run_sync(add_missing_columns)
                if new_journeys:  # a store from before journeys were kept
                    await backfill_journeys(conn, store._upsert_journeys)
        except (SQLAlchemyError, OSError, TimeoutError) as error:
            await engine.dispose()
            raise StoreUnavailableError(
                f"cannot open the store at {store._where}: {error}"
            ) from error
        return store

    async def claim(self, identity: SubmissionKey, envelope_id: str) -> Claim:
        now = self._clock()
        # On SQLite the insert takes the write lock first, so what follows cannot race.
        return await self._write(
            lambda conn: self._claim_on(conn, identity, envelope_id, now, in_transaction=False),
            transactional=False,
        )

    async def claim_route(self, header: EnvelopeHeader, routing: Routing = NOT_RECORDED) -> Claim:
        (claim,) = await self.apply([ClaimRouteCall(header, routing)])
        assert claim is not None
        return claim

    async def finish(
        self, envelope_id: str, outcome: Outcome, *, reason: Reason | None = None
    ) -> None:
        row = finished(envelope_id, outcome, reason)
        await self._write(lambda conn: conn.execute(FINISH, row), transactional=False)

    async def record_routed(
        self, header: EnvelopeHeader, at: datetime, routing: Routing = NOT_RECORDED
    ) -> None:
        # A real transaction even on PostgreSQL: the deliveries and their journeys together.
        call = RoutedCall(header, utc(at), routing)
        await self._write(lambda conn: self._routed_on(conn, call))

    async def apply(self, calls: Sequence[Call]) -> list[Claim | None]:
        """Run ``calls`` in order in ONE transaction (a group commit): each behaves exactly
        as the method of the same name called alone, one after the other. Return one result
        per call (its :class:`Claim`, ``None`` for the others). When the transaction fails
        nothing is committed and the error is raised (:class:`StoreUnavailableError` for the
        database failing), for every call alike."""
        now = self._clock()
        return await self._write(lambda conn: self._apply_on(conn, calls, now), calls=len(calls))

    def _apply_on(
        self, conn: Connection, calls: Sequence[Call], now: datetime
    ) -> list[Claim | None]:
        results: list[Claim | None] = []
        # Consecutive calls of one kind run together: a run of claims is one multi-row
        # insert, a run of record_routed two statements.
        for _, grouped in groupby(calls, key=type):
            run = list(grouped)
            if isinstance(run[0], ClaimCall):
                results.extend(self._claim_many(conn, cast(list[ClaimCall], run), now))
            elif isinstance(run[0], ClaimRouteCall):
                results.extend(self._claim_routes(conn, cast(list[ClaimRouteCall], run), now))
            elif isinstance(run[0], RoutedCall):
                self._record_routes(conn, cast(list[RoutedCall], run))
                results.extend([None] * len(run))
            else:
                for finish in cast(list[FinishCall], run):
                    conn.execute(
                        FINISH, finished(finish.envelope_id, finish.outcome, finish.reason)
                    )
                results.extend([None] * len(run))
        return results

    async def _write(
        self, work: Callable[[Connection], _T], *, transactional: bool = True, calls: int = 1
    ) -> _T:
        """``work`` done in one transaction on a synchronous connection. On SQLite, for a
        transaction of at most ``one_hop_calls`` calls (``calls``), whole on the store's
        writing thread (one thread hop: aiosqlite took several a statement, most of a claim's
        CPU when envelopes come one by one); otherwise through the async driver
        (``run_sync``), on ``_transactional`` or, where a call needs no transaction of its
        own (``transactional=False``), on ``_engine``."""
        async with self._reachable():
            if self._writer is not None and calls <= self._one_hop_calls:
                return await self._writer.run(work)
            engine = self._transactional if transactional else self._engine
            async with engine.begin() as conn:
                return await conn.run_sync(work)

    def _record_routes(
        self, conn: Connection, run: Sequence[RoutedCall], *, done: Sequence[bool] = ()
    ) -> None:
        """Record ``run`` routed; ``done[i]``: the claim of ``run[i]`` was inserted with its
        outcome already set (``_claim_routes``), so only its deliveries and journeys are
        left to write."""
        done = done or [False] * len(run)
        if self._routed is None:
            # A run of record_routed calls touches nothing any other call of the run reads.
            self._routed_many(conn, run, done)
            return
        self._deliveries(conn, [call for call, fresh in zip(run, done, strict=True) if fresh])
        for call, fresh in zip(run, done, strict=True):
            if not fresh:
                self._delivered_on(conn, call)
        self._track(conn, run)

    def _claim_routes(
        self, conn: Connection, run: Sequence[ClaimRouteCall], now: datetime
    ) -> list[Claim]:
        # Routed at the moment of the claim. A claim that commutes with the rest of the run
        # (_claim_many) is recorded with the others at the end; one that does not is
        # recorded right after its claim, as the two calls one after the other would be.
        # A claim the run's multi-row insert makes is inserted routed (one statement for
        # the claim and its outcome); the transaction makes both visible together.
        deferred: list[RoutedCall] = []
        done: list[bool] = []

        def record(call: ClaimRouteCall, claim: Claim, commutes: bool, fresh: bool) -> None:
            if not claim.state.routes:
                return
            routed = RoutedCall(call.header, now, call.routing)
            if commutes:
                deferred.append(routed)
                done.append(fresh)
            else:
                self._routed_on(conn, routed)

        claims = self._claim_many(
            conn,
            [call.claim for call in run],
            now,
            outcome=Outcome.ROUTED,
            then=lambda i, c, alone, fresh: record(run[i], c, alone, fresh),
        )
        if deferred:
            self._record_routes(conn, deferred, done=done)
        return claims

    def _claim_on(
        self,
        conn: Connection,
        identity: SubmissionKey,
        envelope_id: str,
        now: datetime,
        *,
        in_transaction: bool,
    ) -> Claim:
        # The insert skips any conflict (the identity held, or the envelope id holding
        # another identity), so it never raises: an error would abort a PostgreSQL
        # transaction that other calls share. The two cases are told apart below.
        inserted = conn.execute(self._claim_insert, claim_row(identity, envelope_id, now))
        if inserted.first() is not None:
            return Claim(ClaimState.NEW, envelope_id, None)
        return self._claim_held(conn, identity, envelope_id, now, in_transaction=in_transaction)

    def _claim_many(
        self,
        conn: Connection,
        run: Sequence[ClaimCall],
        now: datetime,
        *,
        outcome: Outcome | None = None,
        then: Callable[[int, Claim, bool, bool], None] | None = None,
    ) -> list[Claim]:
        """The claims of ``run``, each as if made alone in order; ``then(index, claim,
        commutes, fresh)`` runs after each, before the next (``commutes``: it shares neither
        its identity nor its envelope id with another claim of the run; ``fresh``: the
        multi-row insert made its row, with ``outcome`` already set).

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
            found = conn.execute(
                self._claim_insert_many,
                [claim_row(call.identity, call.envelope_id, now, outcome) for call in independent],
            )
            inserted = {tuple(row) for row in found}
        results = []
        for index, call in enumerate(run):
            alone = commutes(call)
            fresh = claim_key(call.identity, call.envelope_id) in inserted
            if fresh:
                claim = Claim(ClaimState.NEW, call.envelope_id, None)
            elif alone:  # its insert found the identity or the envelope id held already
                claim = self._claim_held(
                    conn, call.identity, call.envelope_id, now, in_transaction=True
                )
            else:
                claim = self._claim_on(
                    conn, call.identity, call.envelope_id, now, in_transaction=True
                )
            results.append(claim)
            if then is not None:
                then(index, claim, alone, fresh)
        return results

    def _claim_held(
        self,
        conn: Connection,
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
            held = (conn.execute(READ_CLAIM, key)).first()
            if held is None:
                return _envelope_taken(conn, envelope_id)
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
                    with conn.begin_nested():
                        taken = conn.execute(TAKE_OVER, params)
                else:  # SQLite fails the statement only, and keeps the transaction
                    taken = conn.execute(TAKE_OVER, params)
            except IntegrityError:
                return _envelope_taken(conn, envelope_id)
            if taken.rowcount == 1:
                return claim

    def _routed_many(
        self, conn: Connection, run: Sequence[RoutedCall], done: Sequence[bool]
    ) -> None:
        # Three statements for the whole run at most; the update takes SQLite's write lock.
        unfinished = [
            finished(call.header.envelope_id, Outcome.ROUTED, None)
            for call, fresh in zip(run, done, strict=True)
            if not fresh
        ]
        if unfinished:
            conn.execute(FINISH, unfinished)
        self._deliveries(conn, run)
        self._track(conn, run)

    def _deliveries(self, conn: Connection, run: Sequence[RoutedCall]) -> None:
        """The delivery rows of ``run``, one statement (their claims' outcome set apart)."""
        rows = [
            row for call in run for row in delivery_rows(call.header, utc(call.at), call.routing)
        ]
        if rows:
            conn.execute(self._delivery_insert, rows)

    def _routed_on(self, conn: Connection, call: RoutedCall) -> None:
        if self._routed is None:
            self._routed_many(conn, [call], [False])
            return
        self._delivered_on(conn, call)
        self._track(conn, [call])

    def _delivered_on(self, conn: Connection, call: RoutedCall) -> None:
        """PostgreSQL: the claim's outcome and the delivery rows in one statement."""
        assert self._routed is not None
        header, routing = call.header, call.routing
        fields = delivery_fields(header, utc(call.at), routing)
        conn.execute(
            self._routed,
            {
                "k_envelope": header.envelope_id,
                "d_recipients": header.recipients,
                "d_forwarded": [routing.forwarded_to(code) for code in header.recipients],
                **{f"d_{name}": value for name, value in fields.items()},
            },
        )

    def _track(self, conn: Connection, run: Sequence[RoutedCall]) -> None:
        """Bring the journeys the run's envelopes touch up to date (``journeys.py``)."""
        facts = merge(
            fact for call in run for fact in facts_of(call.header, utc(call.at), call.routing)
        )
        self._upsert_journeys(conn, facts)

    def _upsert_journeys(self, conn: Connection, facts: Sequence[JourneyFacts]) -> None:
        if facts:
            conn.execute(self._journey_upsert, [fact.row() for fact in facts])

    async def history(self, document_id: str, *, sender: str, recipient: str) -> Sequence[Delivery]:
        async with self._reachable(), self._engine.connect() as conn:
            found = await conn.execute(
                HISTORY, {"k_document": document_id, "k_a": sender, "k_b": recipient}
            )
            return [Delivery(**row._mapping) for row in found]

    async def record_refusal(self, refusal: Refusal) -> None:
        async with self._reachable(), self._engine.begin() as conn:
            await conn.execute(self._refusal_insert, asdict(refusal))

    async def refusals(self, document_id: str, *, sender: str) -> Sequence[Refusal]:
        async with self._reachable(), self._engine.connect() as conn:
            found = await conn.execute(REFUSALS, {"k_document": document_id, "k_sender": sender})
            return [Refusal(**row._mapping) for row in found]

    async def open_chunked(self, document: OpenChunked) -> OpenChunked:
        async with self._reachable(), self._transactional.begin() as conn:
            return await self._chunked.open(conn, document)

    async def chunked(self, envelope_id: str) -> OpenChunked | None:
        async with self._reachable(), self._transactional.begin() as conn:
            return await self._chunked.read(conn, envelope_id)

    async def chunk_passed(self, envelope_id: str, index: int) -> int:
        async with self._reachable(), self._transactional.begin() as conn:
            return await self._chunked.passed(conn, envelope_id, index)

    async def chunk_has_passed(self, envelope_id: str, index: int) -> bool:
        async with self._reachable(), self._engine.connect() as conn:
            return await self._chunked.has_passed(conn, envelope_id, index)

    async def chunked_under_way(self, sender: str, *, since: datetime) -> tuple[int, int]:
        async with self._reachable(), self._engine.connect() as conn:
            return await self._chunked.under_way(conn, sender, utc(since))

    async def forget_chunked(self, *, before: datetime) -> None:
        async with self._reachable(), self._transactional.begin() as conn:
            await self._chunked.forget(conn, utc(before))

    async def ping(self) -> None:
        try:
            async with self._engine.connect() as conn:
                await conn.execute(PING)
        except (SQLAlchemyError, OSError, TimeoutError) as error:
            raise StoreUnavailableError(
                f"the store at {self._where} does not answer: {error}"
            ) from error

    async def close(self) -> None:
        if self._writer is not None:
            await asyncio.to_thread(self._writer.close)
        await self._base.dispose()

    @asynccontextmanager
    async def _reachable(self) -> AsyncIterator[None]:
        # Lost connections and locks held too long are the store being unavailable (the
        # router retries later); anything else is a bug and propagates as it is.
        try:
            yield
        except (OperationalError, InterfaceError, OSError, TimeoutError) as error:
            raise StoreUnavailableError(f"the store at {self._where} failed: {error}") from error


def _envelope_taken(conn: Connection, envelope_id: str) -> Claim:
    # The envelope id already holds another identity: a reused id is never routed.
    outcome = (conn.execute(OUTCOME_OF, {"k_envelope": envelope_id})).scalar_one()
    return Claim(ClaimState.CONFLICT, envelope_id, None if outcome is None else Outcome(outcome))
