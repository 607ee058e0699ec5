"""Operators' view of a router: /metrics, /healthz and /readyz over real HTTP."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import create_async_engine

from backbone.clock import utc_now
from backbone.errors import StoreUnavailableError
from backbone.pki.validation import CertificateValidator, load_crl_file
from backbone.router.service import Router, RouterOptions
from backbone.router.settings import RouterSettings
from backbone.store import SqlStore, open_store
from testkit import POSTGRES_URL, backend
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
    # Only an adapter's own certificate expiry and an inbox's oldest wait carry a code, one
    # series per connected system (backbone/observability/metrics.py); this process's
    # registry may hold some from other tests.
    allowed = ("vdx_certificate_not_after_timestamp_seconds", "vdx_inbox_oldest_waiting_seconds")
    labelled = [line for line in text.splitlines() if "000.00.00" in line]
    assert all(line.startswith(allowed) for line in labelled), (
        "no organ codes or document ids in the router's metric labels"
    )
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
    # Which part is not ready and the kind of error, never the error's text (issue 14).
    assert checks["store"] == "not ready: the check failed (StoreUnavailableError)"


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


async def test_readiness_of_an_unreachable_postgresql_store_shows_no_connection_details(
    amqp_url: str, tmp_path: Path
) -> None:
    """Issue 14, finding 9: /readyz showed the store's user, host and database name. Here
    the router's real PostgreSQL store loses its server (the engine now points at a closed
    port): the answer names the store check only."""
    exchange = await Exchange.create(amqp_url, tmp_path / "pki")
    async with backend("postgresql", tmp_path) as where:
        store = await SqlStore.open(where.url, schema=where.schema)
        url = make_url(where.url)
        gone = url.set(port=free_port())
        port = free_port()
        router = make_router(exchange, store, http_port=port)
        await router.start()
        try:
            store._engine = create_async_engine(gone)  # the server went away
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
                ready = await http.get("/readyz")
        finally:
            await router.stop()
            await store.close()
            await exchange.close()
    assert ready.status_code == 503
    assert ready.json() == {
        "ready": False,
        "checks": {
            "broker": "ok",
            "store": "not ready: the check failed (StoreUnavailableError)",
            "revocation": "ok",
        },
    }
    with pytest.raises(StoreUnavailableError) as real:  # what the log gets instead
        await _ping(gone)
    for detail in (url.username, url.host, url.database, str(gone.port), "asyncpg"):
        assert detail
        assert detail in str(real.value)  # the details exist…
        assert detail not in ready.text  # …and are not shown


async def _ping(url: URL) -> None:
    store = await SqlStore.open(POSTGRES_URL)
    try:
        store._engine = create_async_engine(url)
        await store.ping()
    finally:
        await store.close()


async def test_the_http_server_listens_on_loopback_unless_configured(
    running: tuple[Exchange, Router, str],
) -> None:
    _, router, base = running
    port = int(base.rsplit(":", 1)[1])
    assert router.http_addresses == [("127.0.0.1", port)]
    assert RouterSettings().http_host == "127.0.0.1"
    assert RouterOptions(amqp_url="amqp://unused").http_host == "127.0.0.1"
    outside = _non_loopback_address()
    if outside is not None:  # reaching it from another interface of this machine fails
        async with httpx.AsyncClient(base_url=f"http://{outside}:{port}") as http:
            with pytest.raises(httpx.ConnectError):
                await http.get("/metrics")


async def test_a_configured_address_is_the_one_listened_on(amqp_url: str, tmp_path: Path) -> None:
    exchange = await Exchange.create(amqp_url, tmp_path / "pki")
    store = await open_store(f"sqlite+aiosqlite:///{tmp_path / 'router.db'}")
    port = free_port()
    router = make_router(exchange, store, http_port=port, http_host="0.0.0.0")
    await router.start()
    try:
        assert router.http_addresses == [("0.0.0.0", port)]
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
            assert (await http.get("/healthz")).status_code == 200
    finally:
        await router.stop()
        await exchange.close()


def _non_loopback_address() -> str | None:
    """An IPv4 address of this machine that is not loopback, if it has one (no packet is
    sent: connecting a UDP socket only picks the outgoing interface)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))  # TEST-NET-1: never routed anywhere
        except OSError:
            return None
        address = str(probe.getsockname()[0])
    return None if address.startswith("127.") or address == "0.0.0.0" else address
