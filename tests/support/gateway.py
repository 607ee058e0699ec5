"""Gateways on a test deployment: an adapter client with the gateway in front of it,
serving one software system, reached with the SDK-faithful client (testkit.vxp_client)."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from adapters.client import AdapterClient
from adapters.config import AdapterConfig
from adapters.gateway import Gateway
from backbone.clock import Clock, utc_now
from testkit import Deployment
from testkit.vxp_client import SdkClient
from tests.support.ports import free_port

__all__ = ["RunningGateway", "call", "gateway_config", "running_gateway", "serving", "until"]

# The SDK's timestamp is fixed when its service object is made; any instant will do.
SDK_MADE_AT = datetime(2026, 3, 4, 5, 6, 7, 89000, tzinfo=UTC)
_T = TypeVar("_T")


def gateway_config(
    deployment: Deployment,
    system: str,
    root: Path,
    *,
    agencies: Sequence[str] | None = None,
    acts_for: Sequence[str] = (),
    system_id: str = "qlvb",
    extra: Mapping[str, object] | None = None,
) -> tuple[AdapterConfig, str]:
    """``system``'s adapter configuration with its gateway (state under ``root``) serving
    one software system ``system_id``, and ``extra`` keys; returns it and that system's
    secret."""
    base = deployment.config(system, agencies)
    secret = secrets.token_hex(16)
    root.mkdir(parents=True, exist_ok=True)
    secret_file = root / f"{system_id}.secret"
    secret_file.write_text(secret + "\n")
    config = AdapterConfig.model_validate(
        {
            **base.model_dump(exclude={"agencies", "amqp_url"}),
            "amqp_url": base.amqp_url.get_secret_value(),
            "agencies": [agency.model_dump(exclude={"folder"}) for agency in base.agencies],
            "gateway_port": free_port(),
            "gateway_state": root / "state",
            "gateway_systems": [
                {"systemid": system_id, "secret_file": secret_file, "acts_for": list(acts_for)}
            ],
            **(extra or {}),
        }
    )
    return config, secret


@dataclass
class RunningGateway:
    client: AdapterClient
    gateway: Gateway
    secret: str
    system_id: str

    @property
    def endpoint(self) -> str:
        scheme = "https" if self.client.config.gateway_tls_certificate else "http"
        return f"{scheme}://127.0.0.1:{self.client.config.gateway_port}"

    def sdk(self, *, verify: object = True) -> SdkClient:
        """A new SDK service object for this gateway's software system."""
        return SdkClient(self.endpoint, self.system_id, self.secret, SDK_MADE_AT, verify=verify)


@contextlib.asynccontextmanager
async def serving(config: AdapterConfig, *, clock: Clock = utc_now) -> AsyncIterator[Gateway]:
    """An adapter client for ``config`` with its gateway running, until the block ends;
    ``clock`` the gateway's."""
    client = AdapterClient(config, auto_arrival=False)
    await client.start()
    gateway = Gateway(client, clock=clock)
    task = asyncio.create_task(gateway.run())
    try:
        while not gateway.http.started:
            if task.done():
                task.result()
            await asyncio.sleep(0.02)
        yield gateway
    finally:
        gateway.stop()
        await task
        await client.close()


@contextlib.asynccontextmanager
async def running_gateway(
    deployment: Deployment,
    system: str,
    root: Path,
    **options: object,
) -> AsyncIterator[RunningGateway]:
    config, secret = gateway_config(deployment, system, root, **options)  # type: ignore[arg-type]
    async with serving(config) as gateway:
        yield RunningGateway(gateway.client, gateway, secret, config.gateway_systems[0].systemid)


async def call(function: Callable[..., _T], *args: Any, **kwargs: Any) -> _T:
    """The SDK is blocking: in a thread, off the loop (a gateway may run on it)."""
    return await asyncio.to_thread(function, *args, **kwargs)


async def until(
    function: Callable[[], dict[str, Any] | None],
    ready: Callable[[dict[str, Any]], bool],
    timeout: float = 20.0,
) -> dict[str, Any]:
    """Call ``function`` (an SDK call) until its answer is ``ready``; that answer."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        found = await call(function)
        assert found is not None, "the SDK would hand its caller null"
        if ready(found):
            return found
        assert asyncio.get_running_loop().time() < deadline, found
        await asyncio.sleep(0.2)
