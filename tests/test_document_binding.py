"""A DocumentId is bound to its sender (issue 14, finding 2), and a header says what its
signed edXML says (finding 3), on the real broker and router.

A, B and C are three agencies: A (000.00.05.G01) is the malicious one, B (000.00.00.G22) an
honest sender, C (000.00.00.H41) B's recipient. Each test performs an attack of the
review and shows it refused with its reason, the sender told, and the honest flow intact.
Single-step attacks on the router and the recipient are in the hostile corpus
(``tests/hostile/cases.py``); these are the multi-step ones.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import timedelta
from pathlib import Path
from urllib.parse import quote

import aio_pika
import httpx
import pytest
from structlog.testing import capture_logs

from adapters import AdapterClient, Refused
from adapters.dropfolder import DropFolder, DropFolderOptions
from adapters.dropfolder.layout import AgencyFolder
from backbone.clock import edxml_now
from backbone.edxml import EdxmlDocument, EdxmlStatus, Organization, ResponseFor, StatusCode, build
from backbone.envelope import Kind, SealParties, read_frame, seal
from backbone.errors import HeaderMismatchError, Reason
from backbone.store.abc import SubmissionKey
from backbone.tracking.model import Principal
from backbone.wire.events import Event, EventType
from backbone.xmldsig import sign_edxml
from testkit import Exchange, header
from tests.support import Deployment, adapter_deployment_fixture, document_edxml, document_id  # noqa: F401
from tests.support.forging import resigned
from tests.support.tracking_fixtures import TRACKING_NOW, tracked_exchange, tracked_store

pytestmark = pytest.mark.broker

A, B, C = "000.00.05.G01", "000.00.00.G22", "000.00.00.H41"
FAST = DropFolderOptions(poll_interval=0.05, retry_initial=0.05, retry_max=0.2)


def envelope_id(body: bytes) -> str:
    return read_frame(body).header.envelope_id


async def told(exchange: Exchange, party: str, envelope: str, *, timeout: float = 15.0) -> Event:
    """The ``rejected`` event about ``envelope`` on ``party``'s events queue."""
    seen: list[Event] = []
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        seen += await exchange.events(party, expect=1, timeout=1.0)
        for event in seen:
            if event.type == EventType.REJECTED and event.envelope_id == envelope:
                return event
    raise AssertionError(f"no rejected event about {envelope} for {party}; saw {seen}")


def under(body: bytes, exchange: Exchange, signer: str, document: str) -> bytes:
    """``body`` (sealed by ``signer``) with its header's DocumentId set to ``document`` and
    signed again with the signer's own key: what a malicious adapter can publish."""
    return resigned(body, exchange.pki.agency(signer).key, document_id=document)


# -- (b) the status dedup key: a pre-claimed rejection ------------------------------------


async def test_a_decoy_under_another_senders_document_id_is_refused_so_its_real_rejection_routes(
    adapter_deployment: Deployment,
) -> None:
    deployment, exchange = adapter_deployment, adapter_deployment.exchange
    a = await deployment.adapter(A, auto_arrival=False)
    b = await deployment.adapter(B, auto_arrival=False)
    c = await deployment.adapter(C, auto_arrival=False)
    b_inbox, c_inbox = deployment.inbox(b), deployment.inbox(c)
    bs_next = document_id(B, 7)  # B's next document, guessed by A

    # A sends C a decoy under B's next DocumentId, to have C's 02 claimed in advance.
    decoy = under(a.seal(document_edxml(A, [C], 7)).body, exchange, A, bs_next)
    await exchange.submit(decoy, as_account=exchange.account_of(A))
    event = await told(exchange, A, envelope_id(decoy))
    assert event.reason == Reason.DOCUMENT_ID_NOT_SENDER
    assert f"{B}'s" in (event.message or "")
    # Nor may A answer for B's document itself: it is no party to it.
    status = await a.send_status(bs_next, StatusCode.REJECTED, "giả mạo")
    event = await told(exchange, A, status.envelope_id)
    assert event.reason == Reason.STATUS_UNKNOWN_DOCUMENT

    # B's real document, and C's real rejection of it, go through.
    await b.send(document_edxml(B, [C], 7))
    [delivered] = await c_inbox.wait_for(1)
    assert (delivered.header.sender, delivered.header.document_id) == (B, bs_next)
    await c.send_status(bs_next, StatusCode.REJECTED, "Gửi nhầm đơn vị")
    [answer] = await b_inbox.wait_for(1)
    assert isinstance(answer.message, EdxmlStatus)
    assert answer.message.status_code is StatusCode.REJECTED
    assert answer.message.description == "Gửi nhầm đơn vị"
    assert await c_inbox.quiet() == [delivered]  # the decoy never arrived


# -- (c) tracking by the original sender --------------------------------------------------


async def test_tracking_shows_a_document_to_its_sender_only_and_a_decoy_is_refused(
    amqp_url: str, tmp_path: Path
) -> None:
    async with tracked_exchange(amqp_url, tmp_path, "sqlite") as tracked:
        deployment, exchange = tracked.deployment, tracked.deployment.exchange
        a = await deployment.adapter(A, auto_arrival=False)
        b = await deployment.adapter(B)
        c = await deployment.adapter(C)
        c_inbox = deployment.inbox(c)
        bs_id = document_id(B, 8)
        # A's decoy to C under B's DocumentId first, so that it would be "the first journey".
        decoy = under(a.seal(document_edxml(A, [C], 8)).body, exchange, A, bs_id)
        await exchange.submit(decoy, as_account=exchange.account_of(A))
        assert (await told(exchange, A, envelope_id(decoy))).reason == (
            Reason.DOCUMENT_ID_NOT_SENDER
        )
        await b.send(document_edxml(B, [C], 8))
        await c_inbox.wait_for(1)
        await tracked.reached(bs_id, C, "delivered")

        async with httpx.AsyncClient(base_url=tracked.base_url) as http:
            path = f"/api/documents/{quote(bs_id, safe='')}"
            own = (await http.get(path, headers=tracked.tokens.auth(B))).json()
            assert own["sender"] == B
            assert [r["journey"]["recipient"] for r in own["recipients"]] == [C]
            # A sees its own refused decoy (the router keeps refusals for their senders)
            # and nothing of B's document: no journey, not even when B submitted it.
            seen_by_a = (await http.get(path, headers=tracked.tokens.auth(A))).json()
            assert seen_by_a["recipients"] == []
            assert seen_by_a["submitted_at"] is None
            assert [(r["envelope_id"], r["by"], r["reason"]) for r in seen_by_a["refused"]] == [
                (envelope_id(decoy), A, "document_id_not_sender")
            ]
            assert own["refused"] == []  # and B does not see A's decoy


async def test_a_journey_under_a_document_id_from_another_sender_is_not_that_documents(
    tmp_path: Path,
) -> None:
    """Rows a router wrote before the binding (a decoy under B's DocumentId, overdue and
    flagged) neither show in B's document nor give A a view of it."""
    async with tracked_store("sqlite", tmp_path) as (ledger, tracker):
        due = (TRACKING_NOW - timedelta(days=3)).date()
        genuine = await ledger.send(B, (C,), 9, due=due)
        decoy = header(sender=A, recipients=(C,), document_id=genuine.document_id, payload="d")
        decoy = decoy.model_copy(update={"due_date": due})
        await ledger.store.claim(SubmissionKey.of(decoy), decoy.envelope_id)
        # Routed before it was due (a journey late on arrival is never flagged overdue).
        await ledger.store.record_routed(decoy, TRACKING_NOW - timedelta(days=5))
        [late_decoy] = [
            journey for journey in await tracker.unflagged_overdue() if journey.sender == A
        ]
        assert await tracker.flag(late_decoy, TRACKING_NOW)

        track = await tracker.document(Principal(agencies=(B,)), genuine.document_id)
        assert track is not None
        assert track.sender == B
        [recipient] = track.recipients
        assert recipient.journey.sender == B
        assert [step.by for step in recipient.steps if step.by is not None] == [B, B]
        assert "overdue" not in [step.kind for step in recipient.steps]  # A's flag is A's
        assert await tracker.document(Principal(agencies=(A,)), genuine.document_id) is None
        assert await tracker.document(Principal(operator=True), "not\na,document id") is None


# -- (d) a DocumentId naming the recipient itself ----------------------------------------


async def test_a_document_under_the_recipients_own_document_id_is_refused_and_intake_goes_on(
    adapter_deployment: Deployment,
) -> None:
    deployment, exchange = adapter_deployment, adapter_deployment.exchange
    kept: list[Refused] = []

    async def keeper(refusal: Refused) -> None:
        kept.append(refusal)

    b = await deployment.adapter(B, auto_arrival=False)
    c = AdapterClient(deployment.config(C), keep_refused=keeper)  # sends 01 on its own
    await c.start()
    b_inbox, c_inbox = deployment.inbox(b), deployment.inbox(c)
    try:
        # Through the router: refused there, B told.
        naming_c = under(b.seal(document_edxml(B, [C], 10)).body, exchange, B, document_id(C, 10))
        await exchange.submit(naming_c, as_account=exchange.account_of(B))
        assert (await told(exchange, B, envelope_id(naming_c))).reason == (
            Reason.DOCUMENT_ID_NOT_SENDER
        )
        # Straight into C's inbox (a path around the router): C refuses it with its reason.
        sneaked = under(b.seal(document_edxml(B, [C], 11)).body, exchange, B, document_id(C, 11))
        channel = await exchange.channel(exchange.account_of(B))
        await channel.default_exchange.publish(
            aio_pika.Message(sneaked, delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
            routing_key=exchange.inbox_of(C),
        )
        # The next genuine document is delivered, and its 01 sent.
        receipt = await b.send(document_edxml(B, [C], 12))
        [item] = await c_inbox.wait_for(1)
        assert item.envelope_id == receipt.envelope_id
        [arrived] = await b_inbox.wait_for(1)
        assert isinstance(arrived.message, EdxmlStatus)
        assert arrived.message.status_code is StatusCode.ARRIVED
        assert [(r.reason, r.header.envelope_id) for r in kept] == [
            (Reason.DOCUMENT_ID_NOT_SENDER, envelope_id(sneaked))
        ]
    finally:
        await c_inbox.stop()
        await c.close()


async def test_received_goes_on_when_an_automatic_01_can_never_be_sent(
    adapter_deployment: Deployment,
) -> None:
    """A document C sends itself is routed; its 01 would be a status to its own sender,
    which is never sent: logged, and the next document is handed out."""
    deployment = adapter_deployment
    b = await deployment.adapter(B, auto_arrival=False)
    c = await deployment.adapter(C)  # sends 01 on its own
    c_inbox = deployment.inbox(c)
    with capture_logs() as logs:
        await c.send(document_edxml(C, [C], 13))
        [own] = await c_inbox.wait_for(1)
        assert own.header.sender == C
        await b.send(document_edxml(B, [C], 14))
        [_, following] = await c_inbox.wait_for(2)
        assert following.header.sender == B
    [unanswerable] = [e for e in logs if e["event"] == "adapter.arrival_unanswerable"]
    assert unanswerable["reason"] == Reason.STATUS_MISADDRESSED
    assert isinstance(own.message, EdxmlDocument)


async def test_a_drop_folder_gives_up_an_owed_01_it_can_never_send_and_not_again_on_restart(
    adapter_deployment: Deployment, tmp_path: Path
) -> None:
    """A 01 owed (a previous run stored the document and stopped) about a DocumentId that
    names the recipient itself: refused once, recorded, never retried."""
    deployment = adapter_deployment
    root = tmp_path / "folder"
    marker_name = str(uuid.uuid4())
    owed = {"document_id": document_id(C, 15), "kind": "document", "arrival_acknowledged": False}

    async def run_once() -> list[dict[str, object]]:
        client = await deployment.adapter(C, auto_arrival=False)
        service = DropFolder(client, {C: root}, FAST)
        with capture_logs() as logs:
            task = asyncio.create_task(service.run())
            await asyncio.sleep(1.5)
            service.stop()
            await asyncio.wait_for(task, 30)
        await client.close()
        return logs

    folder = AgencyFolder(C, root)
    folder.prepare()
    journal = folder.journal
    (journal / marker_name).write_text(json.dumps(owed))

    first = await run_once()
    refused = [e for e in first if e["event"] == "adapter.arrival_refused"]
    assert [e["outcome"] for e in refused] == [Reason.STATUS_MISADDRESSED]
    record = json.loads((journal / marker_name).read_text())
    assert record["arrival_acknowledged"] is True
    assert record["arrival_refused"] == Reason.STATUS_MISADDRESSED
    second = await run_once()
    assert not [e for e in second if e["event"].startswith("adapter.arrival")]


# -- finding 3: a header that says what its signed edXML does not -------------------------


def dishonest_status(
    exchange: Exchange, about: str, signed_code: StatusCode, claimed_code: str
) -> tuple[EdxmlStatus, bytes]:
    """C signs a status ``signed_code`` about B's document and seals it under a header
    claiming ``claimed_code``: authentic, bound, but saying something else."""
    issued = exchange.pki.agency(C)
    status = EdxmlStatus(
        sender=Organization(organ_id=C),
        response_for=ResponseFor(organ_id=B, document_id=about),
        status_code=signed_code,
        timestamp=edxml_now(),
    )
    signed = sign_edxml(build(status), issued.key, issued.certificate)
    body = seal(
        signed,
        SealParties(
            kind=Kind.STATUS,
            sender=C,
            sender_key=issued.key,
            sender_cert=issued.certificate,
            recipients={B: exchange.pki.agency(B).certificate},
            document_id=about,
            status_code=claimed_code,
        ),
    )
    return status, body


async def test_a_status_whose_header_code_differs_from_its_signed_code_is_refused_by_its_recipient(
    adapter_deployment: Deployment,
) -> None:
    """15 under a header saying 03 (the router would refuse a 15 answering no request) and
    06 over a signed 02 (tracking would say completed): the original sender refuses both."""
    deployment, exchange = adapter_deployment, adapter_deployment.exchange
    kept: list[Refused] = []

    async def keeper(refusal: Refused) -> None:
        kept.append(refusal)

    b = AdapterClient(deployment.config(B), keep_refused=keeper)
    await b.start()
    b_inbox = deployment.inbox(b)
    c = await deployment.adapter(C, auto_arrival=False)
    c_inbox = deployment.inbox(c)
    try:
        receipt = await b.send(document_edxml(B, [C], 20))
        await c_inbox.wait_for(1)
        bodies = []
        for signed_code, claimed in (
            (StatusCode.REQUEST_AGREED, "03"),
            (StatusCode.REJECTED, "06"),
        ):
            status, body = dishonest_status(exchange, receipt.document_id, signed_code, claimed)
            with pytest.raises(HeaderMismatchError, match="StatusCode"):  # never by an adapter
                seal_like(body, exchange, status)
            await exchange.submit(body, as_account=exchange.account_of(C))
            bodies.append(body)
        deadline = asyncio.get_running_loop().time() + 15
        while len(kept) < 2 and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.05)
        # Each refused once, in either order: the router handles envelopes side by side.
        refused = sorted((r.reason, r.body) for r in kept)
        assert refused == sorted((Reason.HEADER_MISMATCH, x) for x in bodies)
        assert all("StatusCode" in refusal.message for refusal in kept)
        assert await b_inbox.quiet() == []
    finally:
        await b_inbox.stop()
        await b.close()


def seal_like(body: bytes, exchange: Exchange, message: EdxmlStatus) -> bytes:
    """Seal again what ``body``'s header claims, given the edXML's model as adapters do."""
    claimed = read_frame(body).header
    issued = exchange.pki.agency(claimed.sender)
    return seal(
        build(message),
        SealParties(
            kind=claimed.kind,
            sender=claimed.sender,
            sender_key=issued.key,
            sender_cert=issued.certificate,
            recipients={code: exchange.pki.agency(code).certificate for code in claimed.recipients},
            document_id=claimed.document_id,
            status_code=claimed.status_code,
            message=message,
        ),
    )
