"""A merged agency's documents, forwarded by the router to its successor, opened by the
successor's adapter with the closed agency's key (``inherited_keys``), on the real broker
with a real router: handed over marked forwarded, and status 01 reaches the sender. Without
that key the sender is told (status 02, ``inherited_key_missing``) and the envelope is kept.

The directory is the test exchange's after the reform of :mod:`tests.support.reform`
(000.07.12.H41 merged into 000.00.00.H41); the router reads it the day after."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from adapters import Refused
from adapters.config import InheritedKey
from backbone.edxml import EdxmlDocument, EdxmlStatus, StatusCode
from backbone.envelope.chunked import ChunkedHeader
from backbone.errors import Reason
from tests.support import (
    Deployment,
    Inbox,
    document_edxml,
    document_id,
    document_with_attachment,
    open_deployment,
)
from tests.support.reform import G22, H41, H41_COMMUNE, Clock, reformed

pytestmark = pytest.mark.broker


@pytest.fixture
async def deployment(amqp_url: str, tmp_path: Path) -> AsyncIterator[Deployment]:
    async with open_deployment(
        amqp_url, tmp_path, changed=reformed, router_clock=Clock()
    ) as deployment:
        yield deployment


MiB = 1024 * 1024
CHUNKS = {"chunk_bytes": MiB}  # a document larger than this travels in chunks


@dataclass
class Sent:
    """A document from G22 to the closed commune, its envelope as sealed (None when it
    travelled in chunks), and the two inboxes."""

    document_id: str
    body: bytes | None
    statuses: Inbox  # G22's: what the successor answers
    heir: Inbox  # the successor's


async def _send_to_the_closed_code(
    deployment: Deployment,
    number: int,
    *,
    with_key: bool,
    keeper: list[Refused] | None = None,
    edxml: bytes | None = None,
    settings: Mapping[str, object] | None = None,
    also: Sequence[str] = (),
) -> Sent:
    """G22 sends document ``number`` (a small one, or ``edxml`` in chunks) to the closed
    commune; the successor's adapter holds the commune's key or not, and keeps refusals in
    ``keeper`` when given; ``also``: more recipients."""
    sender = await deployment.adapter(G22, settings=settings)
    statuses = deployment.inbox(sender)
    key = deployment.exchange.pki.agency(H41_COMMUNE).key_path
    inherited = (InheritedKey(organ_code=H41_COMMUNE, key=key),) if with_key else ()
    heir = await deployment.adapter(H41, settings={**(settings or {}), "inherited_keys": inherited})
    if keeper is not None:

        async def keep(refusal: Refused) -> None:
            keeper.append(refusal)

        heir.set_refusal_keeper(keep)
    inbox = deployment.inbox(heir)
    if edxml is not None:  # in chunks
        receipt = await sender.send(edxml)
        return Sent(receipt.document_id, None, statuses, inbox)
    sealed = sender.seal(document_edxml(G22, [H41_COMMUNE, *also], number))
    await sender.publish(sealed)
    return Sent(sealed.header.document_id, sealed.body, statuses, inbox)


async def _status_back(sent: Sent, code: StatusCode) -> EdxmlStatus:
    """The one status the successor sent back about it, of ``code``."""
    [answer] = await sent.statuses.wait_for(1)
    assert isinstance(answer.message, EdxmlStatus)
    assert (answer.header.sender, answer.message.status_code) == (H41, code)
    assert answer.message.response_for.document_id == sent.document_id
    return answer.message


async def test_a_forwarded_document_is_opened_with_the_inherited_key_and_01_reaches_the_sender(
    deployment: Deployment,
) -> None:
    sent = await _send_to_the_closed_code(deployment, 1, with_key=True)

    [item] = await sent.heir.wait_for(1)
    assert (item.recipient, item.forwarded_from) == (H41, H41_COMMUNE)
    assert item.header.recipients == [H41_COMMUNE]  # the envelope as the sender sealed it
    assert isinstance(item.message, EdxmlDocument)
    assert item.message.document_id == document_id(G22, 1)
    assert [organ.organ_id for organ in item.message.recipients] == [H41_COMMUNE]
    await _status_back(sent, StatusCode.ARRIVED)
    assert await sent.heir.quiet() == [item]


async def test_a_forwarded_chunked_document_is_opened_with_the_inherited_key(
    deployment: Deployment,
) -> None:
    annex = os.urandom(2 * MiB + 123)
    edxml = document_with_attachment(G22, [H41_COMMUNE], 2, annex)
    sent = await _send_to_the_closed_code(
        deployment, 2, with_key=True, edxml=edxml, settings=CHUNKS
    )

    [item] = await sent.heir.wait_for(1, timeout=60)
    assert (item.recipient, item.forwarded_from) == (H41, H41_COMMUNE)
    assert isinstance(item.header, ChunkedHeader)
    assert isinstance(item.message, EdxmlDocument)
    assert item.message.document_id == document_id(G22, 2)
    await _status_back(sent, StatusCode.ARRIVED)


async def test_a_document_to_both_the_closed_code_and_its_successor_is_handed_over_once(
    deployment: Deployment,
) -> None:
    sent = await _send_to_the_closed_code(deployment, 5, with_key=True, also=[H41])

    [item] = await sent.heir.wait_for(1)
    assert (item.recipient, item.forwarded_from) == (H41, None)  # its own copy
    await _status_back(sent, StatusCode.ARRIVED)
    assert await sent.heir.quiet() == [item]


async def test_without_the_inherited_key_the_sender_is_told_and_the_envelope_kept(
    deployment: Deployment,
) -> None:
    kept: list[Refused] = []
    sent = await _send_to_the_closed_code(deployment, 3, with_key=False, keeper=kept)

    refused = await _status_back(sent, StatusCode.REJECTED)
    assert refused.description is not None
    assert refused.description.startswith(f"[{Reason.INHERITED_KEY_MISSING.value}] ")
    assert f"send it again addressed to {H41}" in refused.description
    assert [(r.recipient, r.reason, r.body) for r in kept] == [
        (H41, Reason.INHERITED_KEY_MISSING, sent.body)
    ]
    assert await sent.heir.quiet() == []


async def test_without_the_inherited_key_or_a_keeper_the_envelope_is_dead_lettered_not_dropped(
    deployment: Deployment,
) -> None:
    sent = await _send_to_the_closed_code(deployment, 4, with_key=False)

    await _status_back(sent, StatusCode.REJECTED)
    exchange = deployment.exchange
    parked = await exchange.drain(exchange.names.dead_letter_parked, expect=1)
    assert [message.body for message in parked] == [sent.body]
    assert await sent.heir.quiet() == []
