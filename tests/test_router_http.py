"""Operators' view of a router: /metrics, /healthz and /readyz over real HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from backbone.clock import utc_now
from backbone.errors import StoreUnavailableError
from backbone.pki.validation import CertificateValidator, load_crl_file
from backbone.router.service import Router
from backbone.store import open_store
from tests.support import Exchange, free_port, make_router
from tests.support.tracking_fixtures import ManualClock

pytestmark = pytest.mark.broker

G22, H41 = "000.00.00.G22", "000.00.00.H41"


@pytest.fixture
async def running(amqp_url: str, tmp_path: Path) -> AsyncIterator[tuple[Exchange, Router, str]]:
    exchange = await Exchange.create(amqp_url, tmp_path / "pki")
    store = await open_store(f"sqlite+aiosqlite:///{tmp_path / 'router.db'}")
    port = free_port()
    router = make_router(exchange, store, http_port=port)
    await router.start()
    try:
        yield exchange, router, f"http://127.0.0.1:{port}"
    finally:
        await router.stop()
        await exchange.close()


async def test_health_readiness_and_metrics_are_served(
    running: tuple[Exchange, Router, str],
) -> None:
    exchange, _, base = running
    await exchange.submit(
        exchange.seal_document(G22, [H41], 1), as_account=exchange.account_of(G22)
    )
    await exchange.events(G22, expect=1)  # routed: counted before the event is emitted

    async with httpx.AsyncClient(base_url=base) as http:
        assert (await http.get("/healthz")).json() == {"status": "alive"}
        ready = await http.get("/readyz")
        assert ready.status_code == 200
        assert ready.json() == {
            "ready": True,
            "checks": {"broker": "ok", "store": "ok", "revocation": "ok"},
        }
        text = (await http.get("/metrics")).text
    assert 'vdx_envelopes_routed_total{kind="document",tier="central-provincial"}' in text
    assert 'vdx_deliveries_total{tier="central-provincial"}' in text
    assert "vdx_end_to_end_seconds_bucket" in text
    assert "vdx_build_info{" in text
    # Only an adapter's own certificate expiry is labelled by agency (bounded per adapter);
    # this process's registry may hold some from other tests.
    labelled = [line for line in text.splitlines() if "000.00.00" in line]
    assert all(
        line.startswith("vdx_certificate_not_after_timestamp_seconds") for line in labelled
    ), "no organ codes or document ids in the router's metric labels"
    assert "/VP" not in text


async def test_readiness_fails_and_says_why_when_the_store_is_unreachable(
    running: tuple[Exchange, Router, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    _, router, base = running

    async def unreachable() -> None:
        raise StoreUnavailableError("the store at router.db does not answer")

    monkeypatch.setattr(router.store, "ping", unreachable)
    async with httpx.AsyncClient(base_url=base) as http:
        ready = await http.get("/readyz")
    assert ready.status_code == 503
    checks = ready.json()["checks"]
    assert checks["broker"] == "ok"
    assert checks["store"] == (
        "StoreUnavailableError: [store_unavailable] the store at router.db does not answer"
    )


async def test_readiness_fails_once_the_crl_expires_and_names_the_ca(
    amqp_url: str, tmp_path: Path
) -> None:
    exchange = await Exchange.create(amqp_url, tmp_path / "pki")
    clock = ManualClock(utc_now())
    validator = CertificateValidator(
        [exchange.pki.ca.certificate],
        crls=[load_crl_file(exchange.pki.ca.crl_path)],
        clock=clock,
    )
    store = await open_store(f"sqlite+aiosqlite:///{tmp_path / 'router.db'}")
    port = free_port()
    router = make_router(exchange, store, validator=validator, http_port=port)
    await router.start()
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
            assert (await http.get("/readyz")).status_code == 200
            clock.now += timedelta(days=400)
            ready = await http.get("/readyz")
        assert ready.status_code == 503
        assert "expired on" in ready.json()["checks"]["revocation"]
    finally:
        await router.stop()
        await exchange.close()
