"""The sending agency's adapter in its own process, so its memory is its own.

    python -m bench.sender_proc SPEC.json

SPEC.json is an ``AdapterConfig`` (the broker URL in clear) plus ``file``: the edXML to send.
It starts an ``AdapterClient``, prints ``{"event": "sending", "t": wall clock}`` just before
``send_file``, ``{"event": "sent", "t": …, "e": envelope id}`` once every message is
confirmed (or ``{"event": "refused", "reason": …, "message": …}``), and
``{"event": "stopped", "VmHWM": …, "VmRSS": …, "phases": …}`` (KiB; the seconds of each
phase of the send, :mod:`bench.phases`) before it exits.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path

from adapters import AdapterClient
from adapters.config import AdapterConfig
from backbone.errors import BackboneError
from backbone.logs import configure_logging
from bench.phases import Phases
from bench.router_proc import memory_kib


def sender_phases() -> Phases:
    """The sending adapter's phases: parse (and the pre-scan), validate (the model), sign
    (XML-DSig, the signed file written), keep (the seal — ``seal``: read, encrypt, digests,
    header signed — with each chunk message written and fsynced to disk as it is sealed),
    publish (from the header's publish to the last confirm), chunk_publish (each chunk's
    publish until its confirm, summed over the window's publishes in flight together, so more
    than the wall time: its ``first`` is when the first chunk went)."""
    import adapters.pending_sends as pending_sends
    import adapters.sending as sending
    from backbone.wire import FORM_CHUNK

    phases = Phases()
    phases.wrap(sending, "parse_xml", "parse")
    phases.wrap(sending, "examine_parsed", "validate")
    phases.wrap(sending, "sign_edxml_into", "sign")
    phases.wrap(sending, "seal_file", "seal")
    phases.wrap(pending_sends.PendingSends, "keep", "keep")
    phases.wrap(sending.EnvelopeSender, "_publish_pending", "publish")
    phases.wrap(
        sending.EnvelopeSender,
        "_publish_body",
        "chunk_publish",
        when=lambda *args, **kwargs: kwargs.get("form") == FORM_CHUNK,
    )
    return phases


def _say(event: str, **fields: object) -> None:
    sys.stdout.write(json.dumps({"event": event, "t": time.time(), **fields}) + "\n")
    sys.stdout.flush()


async def main(spec: dict[str, object]) -> None:
    file = Path(str(spec.pop("file")))
    phases = sender_phases()
    client = AdapterClient(AdapterConfig.model_validate(spec), auto_arrival=False)
    await client.start()
    try:
        _say("sending")
        receipt = await client.send_file(file)
    except BackboneError as error:  # the adapter's own refusal: a figure, not a crash
        _say("refused", reason=str(error.reason), message=error.message)
    else:
        _say("sent", e=receipt.envelope_id)
    finally:
        await client.close()
    _say("stopped", **memory_kib(), phases=phases.report())


if __name__ == "__main__":
    configure_logging(json=True, level="WARNING")
    asyncio.run(main(json.loads(Path(sys.argv[1]).read_text())))
