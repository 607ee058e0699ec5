"""The sending agency's adapter in its own process, so its memory is its own.

    python -m bench.sender_proc SPEC.json

SPEC.json is an ``AdapterConfig`` (the broker URL in clear) plus ``file``: the edXML to send.
It starts an ``AdapterClient``, prints ``{"event": "sending", "t": wall clock}`` just before
``send_file``, ``{"event": "sent", "t": …, "e": envelope id}`` once every message is
confirmed (or ``{"event": "refused", "reason": …, "message": …}``), and
``{"event": "stopped", "VmHWM": …, "VmRSS": …}`` (KiB) before it exits.
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
from bench.router_proc import memory_kib


def _say(event: str, **fields: object) -> None:
    sys.stdout.write(json.dumps({"event": event, "t": time.time(), **fields}) + "\n")
    sys.stdout.flush()


async def main(spec: dict[str, object]) -> None:
    file = Path(str(spec.pop("file")))
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
    _say("stopped", **memory_kib())


if __name__ == "__main__":
    configure_logging(json=True, level="WARNING")
    asyncio.run(main(json.loads(Path(sys.argv[1]).read_text())))
