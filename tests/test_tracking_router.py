"""Tracking in a real router on the real broker, on both store back-ends: adapters seal
due dates and status descriptions into the headers, the router records them, its HTTP
server answers the API and serves the page, and the overdue watch tells the sender."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import date, timedelta
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
from typer.testing import CliRunner

from backbone.cli import app as cli
from backbone.clock import utc_now
from backbone.edxml import StatusCode
from backbone.envelope import read_frame
from backbone.errors import EdxmlError, Reason
from backbone.tracking import OPERATOR
from backbone.tracking.openapi import OPENAPI_PATH
from backbone.wire.events import Event, EventType
from tests.support.tracking_fixtures import (
    BACKENDS,
    COMPLETED_STEPS,
    G01,
    G22,
    H41,
    H41_COMMUNE,
    REJECTED_STEPS,
    TrackedExchange,
    agencies_today,
    dated_edxml,
    tracked_exchange,
)

pytestmark = [pytest.mark.broker, pytest.mark.clock]

ACCEPTED, ASSIGNED, PROCESSING, COMPLETED = (
    StatusCode.ACCEPTED,
    StatusCode.ASSIGNED,
    StatusCode.PROCESSING,
    StatusCode.COMPLETED,
)
REJECTED, REQUEST_AGREED = StatusCode.REJECTED, StatusCode.REQUEST_AGREED

# The running router reads due dates against the real clock in its zone, and so do these.
DUE = agencies_today() + timedelta(days=20)
PAST = agencies_today() - timedelta(days=2)
PROMULGATED = agencies_today() - timedelta(days=7)


@pytest.fixture(params=BACKENDS)
async def tracked(
    request: pytest.FixtureRequest, amqp_url: str, tmp_path: Path
) -> AsyncIterator[TrackedExchange]:
    async with tracked_exchange(amqp_url, tmp_path, request.param) as running:
        yield running


async def test_a_document_through_statuses_a_rejection_and_a_take_back_over_the_router(
    tracked: TrackedExchange,
) -> None:
    deployment = tracked.deployment
    a = await deployment.adapter(G22)
    b = await deployment.adapter(H41)
    c = await deployment.adapter(H41_COMMUNE)
    b_inbox, c_inbox = deployment.inbox(b), deployment.inbox(c)
    receipt = await a.send(dated_edxml(G22, [H41, H41_COMMUNE], 1, DUE))
    document_id = receipt.document_id
    await b_inbox.wait_for(1)
    await c_inbox.wait_for(1)  # both answer 01 (arrived) on their own
    await tracked.reached(document_id, H41, "delivered")
    await tracked.reached(document_id, H41_COMMUNE, "delivered")
    await tracked.answer(b, document_id, [ACCEPTED, ASSIGNED, PROCESSING, COMPLETED])
    await tracked.answer(c, document_id, [REJECTED], "  Văn bản gửi nhầm đơn vị  ")

    async with httpx.AsyncClient(base_url=tracked.base_url) as http:
        path = f"/api/documents/{quote(document_id, safe='')}"
        body = (await http.get(path, headers=tracked.tokens.auth(G22))).json()
        steps = {
            r["journey"]["recipient"]: [s["kind"] for s in r["steps"]] for r in body["recipients"]
        }
        assert steps[H41] == COMPLETED_STEPS
        assert steps[H41_COMMUNE] == REJECTED_STEPS
        commune = body["recipients"][1]
        assert commune["journey"]["due_date"] == DUE.isoformat()  # from the edXML's DueDate
        assert commune["steps"][-1]["note"] == "Văn bản gửi nhầm đơn vị"  # its Description

        # A take-back: 13 from the sender, 15 from the recipient.
        taken = await a.send(dated_edxml(G22, [H41], 2, DUE))
        await b_inbox.wait_for(2)
        await a.request_take_back(taken.document_id, [H41], "Xin lấy lại để sửa")
        await b_inbox.wait_for(3)
        await tracked.answer(b, taken.document_id, [REQUEST_AGREED], "Đồng ý")
        journeys = await http.get(
            "/api/documents",
            params={"status": "taken_back"},
            headers=tracked.tokens.auth(OPERATOR),
        )
        assert [j["document_id"] for j in journeys.json()["items"]] == [taken.document_id]

        # Another agency learns nothing; the recipient sees its own journey only.
        other = await http.get(path, headers=tracked.tokens.auth(G01))
        assert other.status_code == 404
        own = (await http.get(path, headers=tracked.tokens.auth(H41))).json()
        assert [r["journey"]["recipient"] for r in own["recipients"]] == [H41]


@pytest.fixture(params=BACKENDS)
async def tracked_a_week_ago(
    request: pytest.FixtureRequest, amqp_url: str, tmp_path: Path
) -> AsyncIterator[TrackedExchange]:
    """A router whose store dates every routing a week back: its documents due in the last
    few days arrived before their due date (one that arrives past it is never overdue)."""
    async with tracked_exchange(
        amqp_url, tmp_path, request.param, store_clock=lambda: utc_now() - timedelta(days=7)
    ) as running:
        yield running


async def test_an_overdue_document_is_flagged_once_counted_and_its_sender_told(
    tracked_a_week_ago: TrackedExchange,
) -> None:
    tracked = tracked_a_week_ago
    deployment = tracked.deployment
    exchange = deployment.exchange
    a = await deployment.adapter(G22)
    b = await deployment.adapter(H41)
    b_inbox = deployment.inbox(b)
    late = await a.send(dated_edxml(G22, [H41], 3, PAST, promulgated=PROMULGATED))
    # Due tomorrow and completed today. (A document due in the past is overdue from the
    # moment it is routed until its 06 is: the watch, every 0.5 s, may well flag it first.)
    on_time = await a.send(dated_edxml(G22, [H41], 4, agencies_today() + timedelta(days=1)))
    await b_inbox.wait_for(2)
    await b.send_status(on_time.document_id, StatusCode.COMPLETED)

    overdue: list[Event] = []
    deadline = asyncio.get_running_loop().time() + 15
    while not overdue and asyncio.get_running_loop().time() < deadline:
        events = await exchange.events(G22, expect=100, timeout=0.5)
        overdue += [e for e in events if e.type is EventType.OVERDUE]
    assert [(e.party, e.document_id, e.recipients) for e in overdue] == [
        (G22, late.document_id, (H41,))
    ]
    await asyncio.sleep(1.5)  # three more checks (every 0.5 s): no second announcement
    again = await exchange.events(G22, expect=100, timeout=0.5)
    assert [e for e in again if e.type is EventType.OVERDUE] == []

    async with httpx.AsyncClient(base_url=tracked.base_url) as http:
        overview = (await http.get("/api/overdue", headers=tracked.tokens.auth(G22))).json()
        metrics = (await http.get("/metrics")).text
    assert overview["total"] == 1
    assert overview["agencies"] == [{"agency": H41, "tier": "central-provincial", "overdue": 1}]
    assert [d["document_id"] for d in overview["documents"]] == [late.document_id]
    assert 'vdx_documents_overdue{tier="central-provincial"} 1.0' in metrics
    assert 'vdx_overdue_flagged_total{tier="central-provincial"}' in metrics
    assert "/VP" not in metrics  # no document ids in labels


async def test_documents_due_in_2001_do_not_make_their_recipient_look_late(
    tracked: TrackedExchange,
) -> None:
    """Issue 14, finding 8, on the real broker and router. A document due before its own
    date is refused by the sending adapter with its reason; 25 valid documents of 2001
    (promulgated and due then) are routed today and never flag their recipient."""
    deployment = tracked.deployment
    exchange = deployment.exchange
    a = await deployment.adapter(G22)
    b = await deployment.adapter(H41)
    with pytest.raises(EdxmlError) as refused:
        await a.send(dated_edxml(G22, [H41], 99, date(2001, 1, 1)))
    assert refused.value.reason is Reason.DUE_DATE_BEFORE_DOCUMENT

    old = [
        await a.send(
            dated_edxml(G22, [H41], 100 + n, date(2001, 1, 2), promulgated=date(2001, 1, 1))
        )
        for n in range(25)
    ]
    await deployment.inbox(b).wait_for(25)
    for sent in old:
        await tracked.reached(sent.document_id, H41, "delivered")
    await asyncio.sleep(1.5)  # three overdue checks (every 0.5 s)

    events = await exchange.events(G22, expect=200, timeout=0.5)
    assert [e for e in events if e.type is EventType.OVERDUE] == []
    async with httpx.AsyncClient(base_url=tracked.base_url) as http:
        overview = (await http.get("/api/overdue", headers=tracked.tokens.auth(G22))).json()
        listed = (await http.get("/api/documents", headers=tracked.tokens.auth(G22))).json()
    assert (overview["total"], overview["agencies"]) == (0, [])
    assert listed["total"] == 25
    assert all(not journey["overdue"] for journey in listed["items"])


async def test_the_router_serves_the_page_and_its_openapi_description(
    tracked: TrackedExchange,
) -> None:
    async with httpx.AsyncClient(base_url=tracked.base_url) as http:
        home = await http.get("/")
        page = await http.get("/track")
        script = await http.get("/track/app.js")
        served = (await http.get("/openapi.json")).json()
    assert home.status_code == 307
    assert home.headers["location"] == "/track"
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert 'id="document-id"' in page.text
    assert script.headers["content-type"].startswith("text/javascript")
    assert served == json.loads(OPENAPI_PATH.read_text(encoding="utf-8"))


async def test_the_adapter_seals_the_due_date_and_the_status_note_into_the_signed_header(
    tracked: TrackedExchange,
) -> None:
    deployment = tracked.deployment
    a = await deployment.adapter(G22)
    b = await deployment.adapter(H41)
    sealed = a.seal(dated_edxml(G22, [H41], 5, DUE))
    assert sealed.header.due_date == DUE
    undated = a.seal(dated_edxml(G22, [H41], 6, None))
    assert undated.header.due_date is None
    assert b'"due_date"' not in undated.body[: len(undated.body) - undated.header.payload_size]
    note = b.seal_status(sealed.header.document_id, StatusCode.REJECTED, "x" * 700)
    assert note.header.status_note == "x" * 500
    assert read_frame(note.body).header.status_note == "x" * 500
    silent = b.seal_status(sealed.header.document_id, StatusCode.ACCEPTED)
    assert silent.header.status_note is None


async def test_a_refused_envelope_is_kept_for_its_sender_to_see_in_tracking(
    tracked: TrackedExchange,
) -> None:
    """Issue 15: a router refusal is a fact the store keeps, so the sender can look it up in
    tracking (API and `backbone track show`) whatever became of the event that told it."""
    deployment = tracked.deployment
    a = await deployment.adapter(G22)
    b = await deployment.adapter(H41)
    b_inbox = deployment.inbox(b)
    receipt = await a.send(dated_edxml(G22, [H41], 30, DUE))
    await b_inbox.wait_for(1)
    # The same DocumentId again with other content: duplicate_conflict.
    conflicting = await a.send(dated_edxml(G22, [H41], 30, DUE + timedelta(days=1)))
    # H41 answers about a document G22 never sent it: status_unknown_document.
    never_sent = f"{G22},2026/01/02,31/VP"
    unknown = await b.send_status(never_sent, ACCEPTED)

    async with httpx.AsyncClient(base_url=tracked.base_url) as http:
        path = f"/api/documents/{quote(receipt.document_id, safe='')}"
        deadline = asyncio.get_running_loop().time() + 15
        while not (body := (await http.get(path, headers=tracked.tokens.auth(G22))).json())[
            "refused"
        ]:
            assert asyncio.get_running_loop().time() < deadline, body
            await asyncio.sleep(0.1)
        [refused] = body["refused"]
        assert refused["envelope_id"] == conflicting.envelope_id
        assert refused["reason"] == "duplicate_conflict"
        assert refused["by"] == G22
        assert [r["journey"]["recipient"] for r in body["recipients"]] == [H41]
        # The recipient sees its journey, not the sender's refused envelope.
        own = (await http.get(path, headers=tracked.tokens.auth(H41))).json()
        assert own["refused"] == []

        # A refused status is its own sender's to see, even with no journey at all.
        about = f"/api/documents/{quote(never_sent, safe='')}"
        deadline = asyncio.get_running_loop().time() + 15
        while (
            answer := await http.get(about, headers=tracked.tokens.auth(H41))
        ).status_code != 200:
            assert asyncio.get_running_loop().time() < deadline, answer.text
            await asyncio.sleep(0.1)
        [status] = answer.json()["refused"]
        assert (status["envelope_id"], status["reason"], status["status_code"]) == (
            unknown.envelope_id,
            "status_unknown_document",
            "03",
        )
        assert answer.json()["recipients"] == []
        assert (await http.get(about, headers=tracked.tokens.auth(G22))).status_code == 404

    if tracked.schema is None:  # the command reads a store's default schema
        url = f"--store-url={tracked.store_url}"
        shown = await asyncio.to_thread(
            CliRunner().invoke, cli, ["track", "show", receipt.document_id, url]
        )
        assert shown.exit_code == 0, shown.output
        assert "refused by the router (never routed):" in shown.output
        assert f"document by {G22}  [duplicate_conflict]" in shown.output
