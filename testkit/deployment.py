"""A running test exchange for adapter tests: broker users, a router in this process, and
adapters (``AdapterClient``) for chosen systems, each configured the way production is
(a YAML-shaped ``AdapterConfig`` pointing at a directory file, key and certificate files).

Reuse it from any test module (the pytest fixture lives in :mod:`tests.support`)::

    from tests.support import Deployment, adapter_deployment_fixture  # noqa: F401

    async def test_something(adapter_deployment: Deployment) -> None:
        a = await adapter_deployment.adapter(G22)
        b = await adapter_deployment.adapter(H41)
        inbox = adapter_deployment.inbox(b)         # collects b.received() in the background
        await a.send(document_edxml(G22, [H41], 1))
        [item] = await inbox.wait_for(1)

The systems and organ codes are those of :mod:`testkit.exchange` (``HUB`` serves the
Tây Ninh subtree). Every agency has a certificate in the directory.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, cast

from adapters import AdapterClient, AdapterConfig, Received
from backbone.clock import Clock, utc_now
from backbone.directory import Directory, Hub
from backbone.pki.validation import CertificateValidator
from backbone.router.abc import Extension
from backbone.router.pipeline import Pipeline
from backbone.router.policy import RoutingPolicy
from backbone.router.ratelimit import AccountRateLimits, RateLimit
from backbone.router.service import Router, RouterOptions
from backbone.store import open_store
from backbone.store.abc import Store
from testkit.exchange import Exchange
from testkit.pki import DevPki

__all__ = ["MAX_ENVELOPE_BYTES", "Deployment", "Inbox", "make_router", "open_deployment"]

MAX_ENVELOPE_BYTES = 16 * 1024 * 1024


class Inbox:
    """Consumes ``client.received()`` in a background task and keeps every item. Taking an
    item here counts as handling it: the message is acked (and status 01 sent) as soon as
    the next one is asked for, which this task does at once."""

    def __init__(self, client: AdapterClient) -> None:
        self.client = client
        self.items: list[Received] = []
        self._changed = asyncio.Condition()
        self._task = asyncio.create_task(self._run(), name=f"inbox-{client.system}")

    async def _run(self) -> None:
        async for item in self.client.received():
            if item.file is not None:
                # A chunked document's file goes once the next item is asked for: kept here
                # as bytes, as a consumer stores it before that.
                item = replace(item, edxml=item.read_edxml(), file=None)
            async with self._changed:
                self.items.append(item)
                self._changed.notify_all()

    async def wait_for(self, count: int, *, timeout: float = 20.0) -> list[Received]:
        """The first ``count`` items, waiting up to ``timeout`` seconds for them."""
        async with self._changed:
            await asyncio.wait_for(
                self._changed.wait_for(lambda: len(self.items) >= count), timeout
            )
            return list(self.items[:count])

    async def quiet(self, seconds: float = 0.5) -> list[Received]:
        """Everything received after waiting ``seconds`` more (to prove nothing else came)."""
        await asyncio.sleep(seconds)
        return list(self.items)

    async def stop(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task


@dataclass
class Deployment:
    exchange: Exchange
    router: Router
    root: Path
    directory_file: Path
    _clients: list[AdapterClient] = field(default_factory=list)
    _inboxes: list[Inbox] = field(default_factory=list)

    @classmethod
    def without_router(cls, exchange: Exchange, root: Path) -> Deployment:
        """Only what writes adapter configurations (the exchange's directory file in
        ``root``): for a router that runs as a process of its own, or none."""
        return cls(exchange, cast(Router, None), root, exchange.directory_file(root))

    def system_of(self, code: str) -> str:
        """The connected system (hub id or the code itself) serving ``code``."""
        system = self.exchange.directory.serving_system(code)
        return str(system.id) if isinstance(system, Hub) else str(system.organ_code)

    def config(self, system: str, agencies: Sequence[str] | None = None) -> AdapterConfig:
        """The configuration of ``system``'s adapter, serving ``agencies`` (by default: the
        direct agency itself, or every agency behind the hub)."""
        directory = self.exchange.directory
        if agencies is None:
            agencies = [
                str(a.organ_code)
                for a in directory.agencies
                if self.system_of(str(a.organ_code)) == system
            ]
        pki = self.exchange.pki
        account = (
            directory.hub(system).broker_account
            if any(str(hub.id) == system for hub in directory.hubs)
            else self.exchange.account_of(system)
        )
        return AdapterConfig(
            amqp_url=self.exchange.url_for(account),
            system=system,
            prefix=self.exchange.names.prefix,
            directory=self.directory_file,
            trust_anchors=(pki.ca.cert_path,),
            crls=(pki.ca.crl_path,),
            prefetch=32,
            reconnect_interval=0.5,
            max_envelope_bytes=MAX_ENVELOPE_BYTES,
            staging_dir=self.root / "staging" / system,
            agencies=tuple(
                {
                    "organ_code": code,
                    "key": pki.agency(code).key_path,
                    "certificate": pki.agency(code).cert_path,
                    "folder": self.root / "folders" / code,
                }
                for code in agencies
            ),
        )

    async def adapter(
        self,
        system: str,
        agencies: Sequence[str] | None = None,
        *,
        auto_arrival: bool = True,
        settings: Mapping[str, Any] | None = None,
        clock: Clock = utc_now,
    ) -> AdapterClient:
        """A started adapter for ``system``; closed with the deployment. ``settings``
        replace configuration keys (``chunk_bytes``…); ``clock`` is its staging's."""
        config = self.config(system, agencies).model_copy(update=dict(settings or {}))
        client = AdapterClient(config, auto_arrival=auto_arrival, clock=clock)
        await client.start()
        self._clients.append(client)
        return client

    def inbox(self, client: AdapterClient) -> Inbox:
        inbox = Inbox(client)
        self._inboxes.append(inbox)
        return inbox

    async def close(self) -> None:
        for inbox in self._inboxes:
            await inbox.stop()
        for client in self._clients:
            await client.close()


def make_router(
    exchange: Exchange,
    store: Store,
    *,
    validator: CertificateValidator | None = None,
    extensions: Sequence[Extension] = (),
    policy: RoutingPolicy | None = None,
    rate_limits: AccountRateLimits | RateLimit | None = None,
    clock: Clock = utc_now,
    **options: Any,
) -> Router:
    """A router (not started) for ``exchange`` on ``store``: its names and directory, full
    validation with ``validator`` (by default the exchange PKI's), ``policy`` (by default
    the usual routing policy, which allows everything), ``rate_limits`` per account (none by
    default), ``clock`` when it reads the directory's dates. ``options`` are more
    :class:`RouterOptions`; a ``max_envelope_bytes`` among them is the pipeline's limit too.
    ``extensions`` run beside it (tracking)."""
    limit = {k: v for k, v in options.items() if k == "max_envelope_bytes"}
    pipeline = Pipeline(
        directory=exchange.directory,
        validator=exchange.pki.validator() if validator is None else validator,
        store=store,
        names=exchange.names,
        policy=RoutingPolicy() if policy is None else policy,
        rate_limits=rate_limits,
        clock=clock,
        **limit,
    )
    return Router(
        RouterOptions(amqp_url=exchange.amqp_url, names=exchange.names, **options),
        directory=exchange.directory,
        pipeline=pipeline,
        store=store,
        extensions=extensions,
    )


@contextlib.asynccontextmanager
async def open_deployment(
    amqp_url: str,
    root: Path,
    *,
    router_max_envelope_bytes: int = MAX_ENVELOPE_BYTES,
    router_validator: Callable[[DevPki], CertificateValidator] = DevPki.validator,
    router_rate_limits: AccountRateLimits | RateLimit | None = None,
    policy: RoutingPolicy | None = None,
    inactive: Collection[str] = (),
    router_options: Mapping[str, Any] | None = None,
    changed: Callable[[Directory], Directory] | None = None,
    router_clock: Clock = utc_now,
) -> AsyncIterator[Deployment]:
    """A fresh exchange (own prefix and broker users), a router on SQLite, nothing else.
    ``router_validator`` makes the router's validator from the exchange's PKI (keep it to
    hand it a CRL later); ``router_max_envelope_bytes`` is the router's size limit,
    ``router_rate_limits`` its per-account limits (none by default); ``policy`` the router's
    routing policy; ``inactive`` agencies are listed, with their certificates, but inactive
    (adapters encrypt to them; the router refuses them); ``router_options`` more
    :class:`RouterOptions` (``max_open_chunked_per_sender``…); ``changed`` makes the
    directory from the test one (a reform), read by the router at ``router_clock``."""
    exchange = await Exchange.create(amqp_url, root / "pki", certificates=True)
    if inactive:
        exchange.directory = _deactivated(exchange.directory, inactive)
    if changed is not None:
        exchange.directory = changed(exchange.directory)
    directory_file = exchange.directory_file(root)
    store = await open_store(f"sqlite+aiosqlite:///{root / 'router.db'}")
    router = make_router(
        exchange,
        store,
        validator=router_validator(exchange.pki),
        policy=policy,
        delivery_limit=3,
        max_envelope_bytes=router_max_envelope_bytes,
        rate_limits=router_rate_limits,
        clock=router_clock,
        **dict(router_options or {}),
    )
    await router.start()
    deployment = Deployment(exchange, router, root, directory_file)
    try:
        yield deployment
    finally:
        await deployment.close()
        await router.stop()
        await exchange.close()


def _deactivated(directory: Directory, codes: Collection[str]) -> Directory:
    file = directory.file
    agencies = tuple(
        agency.model_copy(update={"listed_active": False})
        if str(agency.organ_code) in codes
        else agency
        for agency in file.agencies
    )
    return Directory(file.model_copy(update={"agencies": agencies}), tiers=directory.tiers)
