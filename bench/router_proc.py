"""One router replica in its own process, so its memory is its own.

    python -m bench.router_proc SPEC.json

It builds the Router the way ``backbone router run`` does (directory file, CA and CRL,
store URL, JSON logs at INFO on stderr), prints JSON lines on stdout — ``starting`` (wall
clock just before ``Router.start``), ``ready`` — and on SIGTERM stops gracefully and prints
``stopped`` with its peak resident set (VmHWM) and current RSS in KiB.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
import time
from pathlib import Path

from cryptography import x509

from backbone.directory import load_directory
from backbone.heap import freeze_start_up
from backbone.logs import configure_logging
from backbone.pki.validation import CertificateValidator, load_crl_file
from backbone.router.pipeline import Pipeline
from backbone.router.policy import RoutingPolicy
from backbone.router.service import Router, RouterOptions
from backbone.store import open_store
from backbone.tracking import Tracking, TrackingOptions
from backbone.wire.names import Names


def _say(event: str, **fields: object) -> None:
    # cpu: this process's CPU seconds so far (user + system, all threads)
    line = {"event": event, "t": time.time(), "cpu": time.process_time(), **fields}
    sys.stdout.write(json.dumps(line) + "\n")
    sys.stdout.flush()


def memory_kib() -> dict[str, int]:
    """VmHWM (peak resident set) and VmRSS of this process, in KiB."""
    found: dict[str, int] = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmHWM", "VmRSS"):
            found[key] = int(value.split()[0])
    return found


async def main(spec: dict[str, object]) -> None:
    directory = load_directory(str(spec["directory"]))
    ca = x509.load_pem_x509_certificate(Path(str(spec["ca_cert"])).read_bytes())
    validator = CertificateValidator([ca], crls=[load_crl_file(Path(str(spec["crl"])))])
    schema = spec.get("store_schema")  # PostgreSQL: the schema replicas share
    store = await open_store(str(spec["store_url"]), schema=None if schema is None else str(schema))
    names = Names(prefix=str(spec["prefix"]))
    max_bytes = 16 * 1024 * 1024
    pipeline = Pipeline(
        directory=directory,
        validator=validator,
        store=store,
        names=names,
        policy=RoutingPolicy(),
        max_envelope_bytes=max_bytes,
    )
    tracking = Tracking.for_store(store, directory.tiers, TrackingOptions())
    router = Router(
        RouterOptions(
            amqp_url=str(spec["amqp_url"]),
            names=names,
            delivery_limit=int(str(spec["delivery_limit"])),
            max_envelope_bytes=max_bytes,
        ),
        directory=directory,
        pipeline=pipeline,
        store=store,
        # As `backbone router run` does: tracking beside the router on a SQL store.
        extensions=[tracking] if tracking is not None else [],
    )
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    freeze_start_up()  # as `backbone router run` does
    _say("starting")
    await router.start()
    _say("ready")
    await stop.wait()
    await router.stop()
    _say("stopped", **memory_kib())


if __name__ == "__main__":
    configure_logging(json=True, level="INFO")
    asyncio.run(main(json.loads(Path(sys.argv[1]).read_text())))
