"""Routing through a change on the real broker: a merged code's documents go on to its heir
within the window and the sender is told the new address; a split, or a merged code past the
window, is refused naming the candidates; a closed sender is warned within the window and
refused after. The router's clock is injected; the directory's reform is on 2025-07-01."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest

from backbone.edxml import StatusCode
from backbone.envelope import read_frame
from backbone.errors import Reason
from backbone.router.pipeline import Pipeline
from backbone.router.service import Router, RouterOptions
from backbone.store import open_store
from backbone.tracking import OPERATOR, Tracking, TrackingOptions
from backbone.wire.events import EventType
from backbone.wire.names import H_REASON
from tests.support import Exchange
from tests.support.reform import (
    G01,
    G22,
    H41,
    H41_COMMUNE,
    PAST,
    REFORM,
    Clock,
    reformed,
)
from tests.support.tracking_fixtures import Tokens, free_port

pytestmark = pytest.mark.broker


@asynccontextmanager
async def _running(
    amqp_url: str, tmp_path: Path, tokens: Tokens | None = None
) -> AsyncIterator[tuple[Exchange, Clock, str]]:
    """The reformed exchange, its router (with tracking and its HTTP API when ``tokens``
    are given), the router's clock and the API's base URL."""
    exchange = await Exchange.create(amqp_url, tmp_path / "pki")
    exchange.directory = reformed(exchange.directory)
    store = await open_store(f"sqlite+aiosqlite:///{tmp_path / 'router.db'}")
    clock = Clock()
    pipeline = Pipeline(
        directory=exchange.directory,
        validator=exchange.pki.validator(),
        store=store,
        names=exchange.names,
        transition_window=timedelta(days=180),
        clock=clock,
    )
    tracking = None
    port = None
    if tokens is not None:
        tracking = Tracking.for_store(
            store, exchange.directory.tiers, TrackingOptions(tokens=tokens.hashes)
        )
        port = free_port()
    router = Router(
        RouterOptions(amqp_url=amqp_url, names=exchange.names, delivery_limit=3, http_port=port),
        directory=exchange.directory,
        pipeline=pipeline,
        store=store,
        extensions=[] if tracking is None else [tracking],
    )
    await router.start()
    try:
        yield exchange, clock, f"http://127.0.0.1:{port}"
    finally:
        await router.stop()
        await exchange.close()


@pytest.fixture
async def deployment(amqp_url: str, tmp_path: Path) -> AsyncIterator[tuple[Exchange, Clock]]:
    async with _running(amqp_url, tmp_path) as (exchange, clock, _):
        yield exchange, clock


async def _refused(exchange: Exchange, body: bytes, sender: str, reason: Reason) -> str:
    """Submit, see it quarantined with ``reason``; the sender's rejected event's message."""
    await exchange.submit(body, as_account=exchange.account_of(sender))
    quarantined = await exchange.drain(exchange.names.quarantine_queue, expect=1)
    assert [m.headers[H_REASON] for m in quarantined] == [reason.value]
    events = await exchange.events(sender, expect=1)
    assert [(e.type, e.reason) for e in events] == [(EventType.REJECTED, reason)]
    assert events[0].message is not None
    return events[0].message


async def test_a_document_to_a_merged_code_is_forwarded_unchanged_and_the_sender_told(
    deployment: tuple[Exchange, Clock],
) -> None:
    exchange, _ = deployment
    body = exchange.seal_document(G22, [H41_COMMUNE], 1)
    await exchange.submit(body, as_account=exchange.account_of(G22))

    assert [m.body for m in await exchange.drain(exchange.inbox_of(H41), expect=1)] == [body]
    assert await exchange.drain(exchange.inbox_of(H41_COMMUNE), expect=0, timeout=0.5) == []
    events = await exchange.events(G22, expect=2)
    assert [(e.type, e.envelope_id) for e in events] == [
        (EventType.ROUTED, read_frame(body).header.envelope_id),
        (EventType.FORWARDED, read_frame(body).header.envelope_id),
    ]
    assert events[1].recipients == (H41,)
    assert events[1].message == (
        f"{H41_COMMUNE} is now {H41} ({H41_COMMUNE} → {H41}): forwarded to {H41}; "
        f"address {H41} from now on"
    )


async def test_a_document_to_a_split_code_is_refused_naming_the_candidates(
    deployment: tuple[Exchange, Clock],
) -> None:
    exchange, _ = deployment
    message = await _refused(
        exchange, exchange.seal_document(H41, [G01], 2), H41, Reason.RECIPIENT_CLOSED
    )
    assert message == (
        f"recipients {G01} closed on {REFORM} and was split: choose among its successors "
        f"{G22}, {H41} and send to the one concerned"
    )


async def test_a_document_to_a_merged_code_past_the_window_is_refused_naming_the_heir(
    deployment: tuple[Exchange, Clock],
) -> None:
    exchange, clock = deployment
    clock.now = PAST
    message = await _refused(
        exchange, exchange.seal_document(G22, [H41_COMMUNE], 3), G22, Reason.RECIPIENT_CLOSED
    )
    assert message == (
        f"recipients {H41_COMMUNE} closed on {REFORM}; its transition window of 180 days has "
        f"ended; send to its successor instead: {H41}"
    )
    assert await exchange.drain(exchange.inbox_of(H41), expect=0, timeout=0.5) == []


async def test_a_closed_sender_is_warned_within_the_window_and_refused_after(
    deployment: tuple[Exchange, Clock],
) -> None:
    exchange, clock = deployment
    body = exchange.seal_document(H41_COMMUNE, [G22], 4)
    await exchange.submit(body, as_account=exchange.account_of(H41_COMMUNE))
    assert [m.body for m in await exchange.drain(exchange.inbox_of(G22), expect=1)] == [body]
    events = await exchange.events(H41_COMMUNE, expect=2)
    assert [(e.type, e.reason) for e in events] == [
        (EventType.ROUTED, None),
        (EventType.WARNED, Reason.SENDER_CLOSED),
    ]
    assert events[1].message is not None
    assert "accepted until its transition window ends on 2025-12-28" in events[1].message

    clock.now = PAST
    message = await _refused(
        exchange, exchange.seal_document(H41_COMMUNE, [G22], 5), H41_COMMUNE, Reason.SENDER_CLOSED
    )
    assert message == (
        f"sender {H41_COMMUNE} closed on {REFORM}; its transition window of 180 days has "
        f"ended: it may no longer send; its successors: {H41}"
    )


async def test_a_document_to_a_paired_code_reaches_its_agency(
    deployment: tuple[Exchange, Clock],
) -> None:
    exchange, _ = deployment
    body = exchange.seal_document(G22, ["H41"], 6)
    await exchange.submit(body, as_account=exchange.account_of(G22))

    assert [m.body for m in await exchange.drain(exchange.inbox_of(H41), expect=1)] == [body]
    events = await exchange.events(G22, expect=1)
    assert [(e.type, e.recipients) for e in events] == [(EventType.ROUTED, ("H41",))]


async def test_the_tracking_api_shows_a_forwarded_document_and_the_directory_version(
    amqp_url: str, tmp_path: Path
) -> None:
    tokens = Tokens.for_holders([G22, H41, OPERATOR])
    async with _running(amqp_url, tmp_path, tokens) as (exchange, _, base_url):
        body = exchange.seal_document(G22, [H41_COMMUNE], 7)
        await exchange.submit(body, as_account=exchange.account_of(G22))
        await exchange.drain(exchange.inbox_of(H41), expect=1)
        document = quote(read_frame(body).header.document_id, safe="")

        async with httpx.AsyncClient(base_url=base_url) as http:
            answer = await http.get(f"/api/documents/{document}", headers=tokens.auth(G22))
            heirs = await http.get(f"/api/documents/{document}", headers=tokens.auth(H41))

    assert answer.status_code == 200
    [track] = answer.json()["recipients"]
    assert (track["journey"]["recipient"], track["journey"]["forwarded_to"]) == (H41_COMMUNE, H41)
    [routed] = [step for step in track["steps"] if step["kind"] == "routed"]
    assert routed["forwarded_to"] == H41
    assert routed["directory_version"] == exchange.directory.version.id
    # The successor the document went to sees the journey too.
    assert heirs.status_code == 200
    assert [t["journey"]["forwarded_to"] for t in heirs.json()["recipients"]] == [H41]


async def test_statuses_and_a_take_back_about_a_forwarded_document_reach_the_right_party(
    amqp_url: str, tmp_path: Path
) -> None:
    tokens = Tokens.for_holders([OPERATOR])
    async with _running(amqp_url, tmp_path, tokens) as (exchange, _, base_url):
        body = exchange.seal_document(G22, [H41_COMMUNE], 8)
        await exchange.submit(body, as_account=exchange.account_of(G22))
        await exchange.drain(exchange.inbox_of(H41), expect=1)
        await exchange.events(G22, expect=2)  # routed, forwarded

        # The successor answers for the closed code: its status reaches the sender.
        arrived = exchange.seal_status(H41, G22, 8, StatusCode.ARRIVED)
        await exchange.submit(arrived, as_account=exchange.account_of(H41))
        assert [m.body for m in await exchange.drain(exchange.inbox_of(G22), expect=1)] == [arrived]
        # The sender asks the successor to take it back; the successor agrees.
        take_back = exchange.seal_status(G22, G22, 8, StatusCode.TAKE_BACK_REQUESTED, to=[H41])
        await exchange.submit(take_back, as_account=exchange.account_of(G22))
        assert [m.body for m in await exchange.drain(exchange.inbox_of(H41), expect=1)] == [
            take_back
        ]
        agreed = exchange.seal_status(H41, G22, 8, StatusCode.REQUEST_AGREED)
        await exchange.submit(agreed, as_account=exchange.account_of(H41))
        assert [m.body for m in await exchange.drain(exchange.inbox_of(G22), expect=1)] == [agreed]
        assert await exchange.drain(exchange.names.quarantine_queue, expect=0, timeout=0.5) == []
        document = quote(read_frame(body).header.document_id, safe="")
        async with httpx.AsyncClient(base_url=base_url) as http:
            answer = await http.get(f"/api/documents/{document}", headers=tokens.auth(OPERATOR))

    # One journey, the closed code's as addressed, moved by its successor's answers.
    [track] = answer.json()["recipients"]
    assert (track["journey"]["recipient"], track["journey"]["state"]) == (H41_COMMUNE, "taken_back")
    assert [(step["kind"], step["by"]) for step in track["steps"]] == [
        ("submitted", G22),
        ("routed", G22),
        ("delivered", H41),
        ("take_back_requested", G22),
        ("agreed", H41),
    ]
