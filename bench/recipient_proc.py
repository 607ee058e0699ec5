"""The recipient agency's adapter in its own process, as it runs at a real agency.

    python -m bench.recipient_proc SPEC.json

SPEC.json is an ``AdapterConfig`` (the broker URL in clear), with ``"phases": true`` to time
the receipt's phases (the large document's run). It starts an ``AdapterClient`` (status 01
off), prints ``{"event": "ready"}``, then one JSON line per item ``received()`` yields —
``{"e": envelope id, "t": wall clock}`` — until SIGTERM, and then
``{"event": "stopped", "cpu": CPU seconds since ready, "VmHWM": …, "VmRSS": …, "phases": …}``
(KiB; the seconds of each phase of the receipt, :mod:`bench.phases`).

The arrival lines are the benchmark's, not the adapter's: they are written in batches,
:data:`REPORT_SECONDS` after the first of each, so that neither this process nor the bench
process reading them pays a write and a wake-up per document on the path whose CPU is
measured (at 200 documents/s, a line each cost the reader about 90 µs a document). Each
line's time is the moment ``received()`` yielded the item, whenever the line is written."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
import time
from pathlib import Path

from adapters import AdapterClient
from adapters.config import AdapterConfig
from backbone.heap import freeze_start_up
from backbone.logs import configure_logging
from bench.phases import Phases
from bench.router_proc import memory_kib


def recipient_phases() -> Phases:
    """The recipient adapter's phases: stage (each chunk checked and kept: its ``last`` is
    when the last chunk was staged), deliver (the staged chunks decrypted into the document's
    file), judge (read, parse, verify, validate), and within it parse, verify (XML-DSig) and
    validate (schema and model)."""
    import adapters.opening as opening
    from backbone.envelope.staging import Staging

    phases = Phases()
    phases.wrap(Staging, "accept", "stage")
    phases.wrap(Staging, "deliver", "deliver")
    phases.wrap(opening._Content, "_judged_file", "judge")
    phases.wrap(opening, "parse_xml", "parse")
    phases.wrap(opening, "verify_edxml", "verify")
    phases.wrap(opening, "examine_parsed", "validate")
    return phases


REPORT_SECONDS = 0.02


def _say(*lines: dict[str, object]) -> None:
    sys.stdout.write("".join(json.dumps(line) + "\n" for line in lines))
    sys.stdout.flush()


async def main(spec: dict[str, object]) -> None:
    phases = recipient_phases() if spec.pop("phases", False) else Phases()
    client = AdapterClient(AdapterConfig.model_validate(spec), auto_arrival=False)
    freeze_start_up()  # as `adapters run` does
    await client.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)

    arrivals: list[dict[str, object]] = []

    def report() -> None:
        if arrivals:
            _say(*arrivals)
            arrivals.clear()

    async def consume() -> None:
        async for item in client.received():
            if not arrivals:  # the first of a batch: written with those after it
                loop.call_later(REPORT_SECONDS, report)
            arrivals.append({"e": item.envelope_id, "t": time.time()})

    consumer = asyncio.create_task(consume())
    cpu = time.process_time()
    _say({"event": "ready"})
    await stop.wait()
    consumer.cancel()
    await asyncio.gather(consumer, return_exceptions=True)
    report()
    _say(
        {
            "event": "stopped",
            "cpu": time.process_time() - cpu,
            **memory_kib(),
            "phases": phases.report(),
        }
    )
    await client.close()


if __name__ == "__main__":
    configure_logging(json=True, level="WARNING")
    asyncio.run(main(json.loads(Path(sys.argv[1]).read_text())))
