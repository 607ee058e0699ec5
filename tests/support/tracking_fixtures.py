"""Fixtures for the tracking tests: a store driven the way the router drives it, and a real
router (HTTP server, tracking API and page, overdue watch) with real adapters around it."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from urllib.parse import quote
from zoneinfo import ZoneInfo

import httpx

from adapters import AdapterClient
from backbone.clock import Clock, today_in, utc_now
from backbone.edxml import StatusCode
from backbone.envelope import EnvelopeHeader
from backbone.store import open_store
from backbone.store.abc import NOT_RECORDED, Routing, Store, SubmissionKey
from backbone.tiers import DEFAULT_PROFILE, TierModel
from backbone.tracking import OPERATOR, Tracker, Tracking, TrackingOptions, mint_token
from backbone.tracking.wiring import DEFAULT_ZONE
from testkit import (
    POSTGRES_URL,
    Deployment,
    Exchange,
    backend,
    document_edxml,
    header,
    make_router,
)
from tests.support.ports import free_port

G22, G01, H41 = "000.00.00.G22", "000.00.05.G01", "000.00.00.H41"
H41_COMMUNE, H53_DISTRICT = "000.07.12.H41", "000.00.32.H53"
TIERS = TierModel.named(DEFAULT_PROFILE)
BACKENDS = ["sqlite", "postgresql"]

# "Now" for the store-level tracking tests: 20:00 UTC, when it is already the next day in
# Vietnam. The tracker takes this clock; the machine's date and zone are never read.
TRACKING_NOW = datetime(2026, 11, 20, 20, 0, tzinfo=UTC)
TODAY = today_in(ZoneInfo(DEFAULT_ZONE), lambda: TRACKING_NOW)  # 2026-11-21 in Vietnam


# When the ledger starts routing: a month before "now", so that documents due in the last
# few weeks arrived before their due date (one that arrives late is never overdue).
LEDGER_START = TRACKING_NOW - timedelta(days=30)


def fixed_clock() -> datetime:
    return TRACKING_NOW


def agencies_today() -> date:
    """Today where the agencies are, as a router with default tracking options reads it:
    for tests of a running router, whose clock is the real one."""
    return today_in(ZoneInfo(DEFAULT_ZONE))


def dated_edxml(
    sender: str,
    recipients: Iterable[str],
    number: int,
    due: date | None,
    *,
    business: int = 0,
    promulgated: date | None = None,
) -> bytes:
    """The harness's document, with a DueDate (promulgated today unless ``promulgated``)."""
    return document_edxml(
        sender, list(recipients), number, business=business, due=due, promulgated=promulgated
    )


@dataclass
class ManualClock:
    """A clock that moves only when told to."""

    now: datetime

    def __call__(self) -> datetime:
        return self.now


@dataclass
class Ledger:
    """Writes to a store exactly as the router does (claim, then record_routed), on the
    store's own clock, so timelines have a known order: it starts :data:`LEDGER_START` and
    moves five minutes per envelope."""

    store: Store
    clock: ManualClock

    def document_id(self, sender: str, number: int) -> str:
        return f"{sender},2026/11/02,{number}/VP"

    async def send(
        self,
        sender: str,
        recipients: tuple[str, ...],
        number: int,
        *,
        business: int = 0,
        due: date | None = None,
        routing: Routing = NOT_RECORDED,
    ) -> EnvelopeHeader:
        return await self._route(
            header(
                sender=sender,
                recipients=recipients,
                document_id=self.document_id(sender, number),
                business_type=business,
                payload=uuid.uuid4().hex,
            ),
            routing,
            due_date=due,
        )

    async def status(
        self,
        sender: str,
        to: str,
        document_id: str,
        code: str,
        note: str | None = None,
        *,
        routing: Routing = NOT_RECORDED,
    ) -> EnvelopeHeader:
        return await self._route(
            header(
                sender=sender,
                recipients=(to,),
                document_id=document_id,
                status_code=code,
                payload=uuid.uuid4().hex,
            ),
            routing,
            status_note=note,
        )

    async def _route(
        self, base: EnvelopeHeader, routing: Routing, **extra: object
    ) -> EnvelopeHeader:
        routed = EnvelopeHeader.model_validate({**dict(base), **extra})
        self.clock.now += timedelta(minutes=5)
        await self.store.claim(SubmissionKey.of(routed), routed.envelope_id)
        await self.store.record_routed(routed, self.clock(), routing)
        return routed


@asynccontextmanager
async def tracked_store(name: str, directory: Path) -> AsyncIterator[tuple[Ledger, Tracker]]:
    """A fresh store of back-end ``name``, a ledger writing to it and a tracker reading it."""
    clock = ManualClock(LEDGER_START)
    async with backend(name, directory) as where:
        store = await where.open(clock=clock)
        try:
            tracking = Tracking.for_store(store, TIERS, TrackingOptions(clock=fixed_clock))
            assert tracking is not None
            yield Ledger(store, clock), tracking.tracker
        finally:
            await store.close()


@dataclass
class Tokens:
    """One token per holder, and the settings mapping of their hashes."""

    secrets: dict[str, str] = field(default_factory=dict)  # holder → token
    hashes: dict[str, str] = field(default_factory=dict)  # hash → holder

    @classmethod
    def for_holders(cls, holders: Iterable[str]) -> Tokens:
        tokens = cls()
        for holder in holders:
            secret, digest = mint_token()
            tokens.secrets[holder] = secret
            tokens.hashes[digest] = holder
        return tokens

    def auth(self, holder: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.secrets[holder]}"}


# The steps of a journey answered 03 → 06, and of one rejected, as the API names them.
COMPLETED_STEPS = [
    "submitted",
    "routed",
    "delivered",
    "accepted",
    "assigned",
    "processing",
    "completed",
]
REJECTED_STEPS = ["submitted", "routed", "delivered", "rejected"]

# The state a journey reaches with each status from its recipient.
STATE_AFTER = {
    StatusCode.ARRIVED: "delivered",
    StatusCode.REJECTED: "rejected",
    StatusCode.ACCEPTED: "accepted",
    StatusCode.ASSIGNED: "assigned",
    StatusCode.PROCESSING: "processing",
    StatusCode.COMPLETED: "completed",
    StatusCode.REQUEST_AGREED: "taken_back",  # after a take-back request
}


@dataclass
class TrackedExchange:
    deployment: Deployment
    base_url: str
    tokens: Tokens
    store_url: str
    schema: str | None

    async def state(self, document_id: str, recipient: str) -> str | None:
        """The journey's state, as the API tells an operator."""
        async with httpx.AsyncClient(base_url=self.base_url) as http:
            answer = await http.get(
                f"/api/documents/{quote(document_id, safe='')}",
                headers=self.tokens.auth(OPERATOR),
            )
        if answer.status_code != 200:
            return None
        journeys = [r["journey"] for r in answer.json()["recipients"]]
        return next((j["state"] for j in journeys if j["recipient"] == recipient), None)

    async def reached(
        self, document_id: str, recipient: str, state: str, *, timeout: float = 15.0
    ) -> None:
        """Wait until the journey is in ``state`` (the router routes asynchronously)."""
        deadline = asyncio.get_running_loop().time() + timeout
        while (now := await self.state(document_id, recipient)) != state:
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"{document_id} to {recipient} is {now}, never {state}")
            await asyncio.sleep(0.1)

    async def answer(
        self,
        recipient: AdapterClient,
        document_id: str,
        codes: Iterable[StatusCode],
        description: str | None = None,
    ) -> None:
        """The recipient sends each status in turn, each once the previous one is tracked,
        as people do (the router would route statuses sent together in any order)."""
        [agency] = [a.organ_code for a in recipient.config.agencies]
        for code in codes:
            await recipient.send_status(document_id, code, description)
            await self.reached(document_id, agency, STATE_AFTER[code])


@asynccontextmanager
async def tracked_exchange(
    amqp_url: str,
    root: Path,
    store: str,
    *,
    overdue_interval: float = 0.5,
    store_clock: Clock = utc_now,
) -> AsyncIterator[TrackedExchange]:
    """A fresh exchange, a router with its HTTP server on a free port and tracking on
    (tokens for G22, H41, G01 and an operator), on store back-end ``store``, whose
    ``store_clock`` says when envelopes were routed."""
    exchange = await Exchange.create(amqp_url, root / "pki", certificates=True)
    directory_file = exchange.directory_file(root)
    tokens = Tokens.for_holders([G22, H41, G01, OPERATOR])
    async with backend(store, root) as where:
        router_store = await open_store(where.url, schema=where.schema, clock=store_clock)
        port = free_port()
        tracking = Tracking.for_store(
            router_store,
            exchange.directory.tiers,
            TrackingOptions(tokens=tokens.hashes, overdue_interval=overdue_interval),
        )
        assert tracking is not None
        router = make_router(
            exchange,
            router_store,
            http_port=port,
            extensions=[tracking],
        )
        await router.start()
        deployment = Deployment(exchange, router, root, directory_file)
        try:
            yield TrackedExchange(
                deployment, f"http://127.0.0.1:{port}", tokens, where.url, where.schema
            )
        finally:
            await deployment.close()
            await router.stop()
            await exchange.close()


__all__ = [
    "BACKENDS",
    "COMPLETED_STEPS",
    "G01",
    "G22",
    "H41",
    "H41_COMMUNE",
    "H53_DISTRICT",
    "LEDGER_START",
    "POSTGRES_URL",
    "REJECTED_STEPS",
    "STATE_AFTER",
    "TIERS",
    "TODAY",
    "TRACKING_NOW",
    "Ledger",
    "ManualClock",
    "Tokens",
    "TrackedExchange",
    "agencies_today",
    "dated_edxml",
    "fixed_clock",
    "free_port",
    "tracked_exchange",
    "tracked_store",
]
