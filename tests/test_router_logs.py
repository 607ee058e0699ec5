"""The router's log lines: every step of the message path names the envelope, the document,
the sender and the outcome; nothing secret is ever in them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import structlog

from backbone.router.pipeline import Pipeline
from backbone.router.service import Router, RouterOptions
from backbone.store import open_store
from tests.support import Exchange

pytestmark = pytest.mark.broker

G22, H41 = "000.00.00.G22", "000.00.00.H41"


@pytest.fixture
async def exchange(amqp_url: str, tmp_path: Path) -> AsyncIterator[Exchange]:
    exchange = await Exchange.create(amqp_url, tmp_path / "pki")
    yield exchange
    await exchange.close()


async def test_message_path_lines_carry_ids_and_outcome_and_no_secrets(
    exchange: Exchange, amqp_url: str
) -> None:
    store = await open_store("memory://")
    router = Router(
        RouterOptions(amqp_url=amqp_url, names=exchange.names),
        directory=exchange.directory,
        pipeline=Pipeline(exchange.directory, exchange.pki.validator(), store, exchange.names),
        store=store,
    )
    body = exchange.seal_document(G22, [H41], 1)
    account = exchange.account_of(G22)
    with structlog.testing.capture_logs() as lines:
        await router.start()
        try:
            await exchange.submit(body, as_account=account)
            await exchange.submit(b"garbage", as_account=account)
            await exchange.events(G22, expect=2)
        finally:
            await router.stop()

    path = [line for line in lines if line["event"] in {"router.routed", "router.rejected"}]
    assert {line["event"] for line in path} == {"router.routed", "router.rejected"}
    for line in path:
        assert {"envelope_id", "document_id", "sender", "outcome"} <= line.keys(), line
    routed = next(line for line in path if line["event"] == "router.routed")
    assert routed["sender"] == G22
    assert routed["outcome"] == "routed"
    text = repr(lines)
    assert exchange.passwords[account] not in text
    assert "guest:guest" not in text
    assert "BEGIN" not in text  # no PEM keys or certificates
