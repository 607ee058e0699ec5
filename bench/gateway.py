"""The gateway's ``sendEdoc`` beside the Python API's ``send``: the same 4 KiB documents,
one after another (as document software sends: it waits for each answer), no router.

- Python API: ``AdapterClient.send`` (validate, sign, encrypt, publish, wait for the
  confirm) in this process; CPU is this process's.
- Gateway: ``backbone adapter run`` with ``gateway_*`` in a process of its own (as at an
  agency, JSON logs at INFO as in production); a client thread here sends each document
  as the vendor SDK does (``testkit.vxp_client``: the same headers, HMAC, hash-file and
  body) and waits for ``OK`` with a DocId (the gateway answers once the broker confirmed,
  and has stored the document first). CPU is the adapter process's (HTTP, authentication,
  the state's fsyncs, sealing, publishing), from ``/proc``; the client's own cost is apart.

The client keeps one HTTP connection (:class:`KeptAliveSdk`): the SDK-faithful client makes
a new ``httpx.Client`` per call, whose TLS context set-up alone costs milliseconds of this
process's CPU on a 2-core machine the gateway shares; the bytes on the wire are the same.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import yaml

from adapters import AdapterClient
from backbone.broker.management import ManagementClient
from backbone.logs import configure_logging
from bench.cpu import CpuMeter
from bench.world import ONE_RECIPIENT, SENDER, World, next_number, payload_edxml
from testkit import Deployment
from testkit.vxp_client import SdkClient

__all__ = ["KeptAliveSdk", "measure_gateway_send"]

PAYLOAD_BYTES = 4096  # as the Python API's measure (bench/latency.py)
WARM_UP = 10  # documents sent first by each, not counted (first seals, connections)
SYSTEM_ID = "bench-software"


class KeptAliveSdk(SdkClient):
    """The SDK's requests over one kept-alive connection."""

    def __init__(self, endpoint: str, system_id: str, secret: str) -> None:
        super().__init__(endpoint, system_id, secret, datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC))
        self.http = httpx.Client(timeout=60)
        for name in ("Accept", "Accept-Encoding"):  # httpx's defaults, not the SDK's
            del self.http.headers[name]

    def _call(
        self,
        operation: str,
        *,
        method: str = "POST",
        body: bytes | None = None,
        headers: Sequence[tuple[str, str]] | None = None,
        url_connection: bool = False,
    ) -> httpx.Response:
        headers = self.framed_headers(body, headers, url_connection)
        return self.http.request(
            method, f"{self.endpoint}/{operation}", headers=headers, content=body
        )


async def measure_gateway_send(
    world: World, count: int, progress: Callable[[str, int, int], None]
) -> dict[str, object]:
    deployment = Deployment.without_router(world.exchange, world.root)
    documents = [
        payload_edxml(SENDER, ONE_RECIPIENT, next_number(), PAYLOAD_BYTES, run=world.run)
        for _ in range(2 * (count + WARM_UP))
    ]
    api_documents, gateway_documents = documents[: count + WARM_UP], documents[count + WARM_UP :]
    purged = [world.names.inbound_queue, *world.all_inboxes_and_events()]

    # 1. The Python API, in this process.
    client = AdapterClient(deployment.config(SENDER), auto_arrival=False)
    await client.start()
    try:
        for data in api_documents[:WARM_UP]:
            await client.send(data)
        cpu, started = time.process_time(), time.perf_counter()
        for done, data in enumerate(api_documents[WARM_UP:], 1):
            await client.send(data)
            progress("python API send", done, count)
        api_seconds = time.perf_counter() - started
        api_cpu = time.process_time() - cpu
    finally:
        await client.close()
    await world.purge(*purged)

    # 2. The gateway, in an adapter process of its own.
    root = world.root / "gateway-bench"
    config_file, endpoint, secret = _gateway_config(deployment, root)
    log = root / "adapter.log"
    process = _start_adapter(config_file, log)
    try:
        await _serving(process, log, int(endpoint.rsplit(":", 1)[1]))
        sdk = KeptAliveSdk(endpoint, SYSTEM_ID, secret)
        await asyncio.to_thread(_send_all, sdk, gateway_documents[:WARM_UP], None)
        meter = CpuMeter(process.pid)
        client_cpu = time.process_time()
        meter.start()
        started = time.perf_counter()
        await asyncio.to_thread(
            _send_all,
            sdk,
            gateway_documents[WARM_UP:],
            lambda done: progress("gateway sendEdoc", done, count),
        )
        gateway_seconds = time.perf_counter() - started
        meter.stop()
        client_seconds = time.process_time() - client_cpu
        sdk.http.close()
    finally:
        process.terminate()
        process.wait(timeout=60)
    await world.purge(*purged)

    api_per_s = count / api_seconds
    gateway_per_s = count / gateway_seconds
    return {
        "payload_bytes": PAYLOAD_BYTES,
        "edxml_bytes": len(gateway_documents[0]),
        "documents": count,
        "in_flight": 1,
        "python_api_per_s": round(api_per_s, 1),
        "python_api_cpu_us_per_document": round(1e6 * api_cpu / count),
        "gateway_per_s": round(gateway_per_s, 1),
        "gateway_cpu_us_per_document": meter.per_message_us(count),
        "gateway_client_cpu_us_per_document": round(1e6 * client_seconds / count),
        "gateway_ratio": round(gateway_per_s / api_per_s, 3),
    }


def _send_all(sdk: SdkClient, documents: list[bytes], done: Callable[[int], None] | None) -> None:
    for number, data in enumerate(documents, 1):
        answer: dict[str, Any] | None = sdk.send_edoc(data, sender=SENDER)
        if answer is None or answer["status"] != "OK":
            raise RuntimeError(f"sendEdoc did not answer OK: {answer}")
        if done is not None:
            done(number)


def _gateway_config(deployment: Deployment, root: Path) -> tuple[Path, str, str]:
    """The sender's adapter configuration with its gateway and no drop folder: the file,
    the gateway's endpoint, the software's secret."""
    root.mkdir(parents=True, exist_ok=True)
    config = deployment.config(SENDER)
    secret = secrets.token_hex(16)
    secret_file = root / "software.secret"
    secret_file.write_text(secret + "\n")
    port = _free_port()
    spec = config.model_dump(mode="json", exclude_none=True)
    spec["amqp_url"] = config.amqp_url.get_secret_value()
    for agency in spec["agencies"]:
        agency.pop("folder", None)
    spec |= {
        "gateway_port": port,
        "gateway_state": str(root / "state"),
        "gateway_systems": [{"systemid": SYSTEM_ID, "secret_file": str(secret_file)}],
    }
    config_file = root / "adapter.yaml"
    config_file.write_text(yaml.safe_dump(spec))
    return config_file, f"http://127.0.0.1:{port}", secret


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _start_adapter(config_file: Path, log: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VDX_") and k != "AMQP_URL"}
    env["VDX_LOG_FORMAT"] = "json"
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "backbone", "adapter", "run", "--config", str(config_file)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


async def _serving(
    process: subprocess.Popen[bytes], log: Path, port: int, timeout: float = 60
) -> None:
    """Until the gateway's port answers (it opens once the adapter is connected)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    f"the gateway did not start:\n{log.read_text()[-2000:]}"
                ) from None
            await asyncio.sleep(0.1)
        else:
            writer.close()
            return


async def _alone(count: int) -> dict[str, object]:
    url = os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")  # as bench's
    with tempfile.TemporaryDirectory(prefix="vdx-bench-gateway-") as tmp:
        world = await World.create(url, Path(tmp))
        try:
            return await measure_gateway_send(world, count, lambda *_: None)
        finally:
            await world.close()
            await ManagementClient.from_env().delete_prefixed(world.names.prefix)


def main() -> None:
    """``python -m bench.gateway [--documents N]``: this measure alone, as JSON."""
    parser = argparse.ArgumentParser(prog="python -m bench.gateway", description=__doc__)
    parser.add_argument("--documents", type=int, default=200)
    args = parser.parse_args()
    configure_logging(json=True, level="WARNING")
    print(json.dumps(asyncio.run(_alone(args.documents)), indent=2))


if __name__ == "__main__":
    main()
