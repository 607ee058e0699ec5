"""One large document end to end in chunks (issue 18): a sending adapter, the real router
and a recipient adapter, each in its own process, against the bare broker forwarding the
same number of chunk-sized messages in the same run.

    python -m bench.large [--mib N] [--chunk-mib N]    # this measure alone, as JSON
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import math
import os
import re
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from backbone.broker.management import ManagementClient
from backbone.edxml import Attachment, Reference
from backbone.edxml.hardening import LIBXML2_MAX_TEXT_CHARS
from backbone.envelope.chunk_wire import encode_chunk
from backbone.envelope.chunked import DEFAULT_CHUNK_BYTES, ChunkLimits
from backbone.envelope.stream_aead import TAG_BYTES
from backbone.logs import configure_logging
from bench.ceiling import measure_ceiling
from bench.edge_floor import best_ratio, measure_edge_floor, within_phases
from bench.router import RouterProcess
from bench.world import ONE_RECIPIENT, SENDER, World, next_number
from testkit import Deployment
from testkit.documents import document_edxml
from testkit.store import backend

MiB = 1 << 20
ROUTER_RSS_LIMIT_MB = 200  # whatever the document size
ADAPTER_RSS_FACTOR = 3  # the document, its one parsed copy, and what is read from it
ADAPTER_RSS_ALLOWANCE_MB = 200
THROUGHPUT_FRACTION = 0.5  # of the bare broker's bytes per second for the same chunk size
SIGNATURE_ROOM = 64 << 10  # the XML-DSig signature the sender adds, kept within the size
_PLACEHOLDER = b"vdx-bench-large-annex-placeholder"  # 33 bytes: base64 without padding
_BLOCK = 3 * MiB  # annex bytes encoded at a time (a multiple of 3: no padding in between)
HERE = Path(__file__).resolve().parent.parent


def large_document_verdicts(
    *,
    document_bytes: int,
    seconds: float | None,
    ceiling_bytes_per_s: float,
    router_peak_rss_mb: float,
    sender_peak_rss_mb: float,
    recipient_peak_rss_mb: float,
) -> dict[str, Any]:
    """Issue 18's targets for one document: the router's peak RSS ≤ 200 MB, each adapter's
    ≤ 3 × the document + 200 MB, and the path's bytes per second ≥ half the bare broker's.
    ``seconds`` None: the document did not get through, so the throughput is not met and
    no party's memory was measured carrying it (None)."""
    bytes_per_s = None if seconds is None else document_bytes / seconds
    ratio = None if bytes_per_s is None else bytes_per_s / ceiling_bytes_per_s
    adapter_limit = ADAPTER_RSS_FACTOR * document_bytes / MiB + ADAPTER_RSS_ALLOWANCE_MB
    carried = None if seconds is None else True  # `None and …` is None: not measured
    return {
        "mb_per_s": None if bytes_per_s is None else round(bytes_per_s / MiB, 2),
        "ceiling_mb_per_s": round(ceiling_bytes_per_s / MiB, 2),
        "throughput_ratio": None if ratio is None else round(ratio, 3),
        "throughput_met": ratio is not None and ratio >= THROUGHPUT_FRACTION,
        "router_rss_limit_mb": ROUTER_RSS_LIMIT_MB,
        "router_rss_met": carried and router_peak_rss_mb <= ROUTER_RSS_LIMIT_MB,
        "adapter_rss_limit_mb": round(adapter_limit, 1),
        "sender_rss_met": carried and sender_peak_rss_mb <= adapter_limit,
        "recipient_rss_met": carried and recipient_peak_rss_mb <= adapter_limit,
    }


def large_document_targets(large: dict[str, Any] | None) -> list[dict[str, Any]]:
    """Issue 18's rows of the report's targets, with the verdicts of
    :func:`large_document_verdicts`; a document the path refused meets no throughput."""
    if not large:
        return []
    adapter = f"≤ {large['adapter_rss_limit_mb']:,} MB (3 × document + 200)"
    refused = f"; refused: {large['refused']}" if large.get("refused") else ""
    return [
        {
            "key": "large_document.router_peak_rss_mb",
            "target": f"≤ {large['router_rss_limit_mb']} MB",
            "measured": large["router_peak_rss_mb"],
            "met": large["router_rss_met"],
        },
        {
            "key": "large_document.sender_peak_rss_mb",
            "target": adapter,
            "measured": large["sender_peak_rss_mb"],
            "met": large["sender_rss_met"],
        },
        {
            "key": "large_document.recipient_peak_rss_mb",
            "target": adapter,
            "measured": large["recipient_peak_rss_mb"],
            "met": large["recipient_rss_met"],
        },
        {
            "key": "large_document.throughput_ratio",
            "target": f"≥ {THROUGHPUT_FRACTION} (of the bare broker's "
            f"{large['ceiling_mb_per_s']} MB/s; at most {large.get('best_ratio')} here, "
            f"the edges' floor){refused}",
            "measured": large["throughput_ratio"],
            "met": large["throughput_met"],
        },
    ]


def write_large_edxml(path: Path, number: int, size: int) -> int:
    """An edXML document from the sender to the recipient of at most ``size`` bytes once
    XML-signed, carrying random annexes (base64, written a block at a time so the bench
    process never holds them): one, or as many as keep each base64 text within libxml2's
    cap on one text node (``LIBXML2_MAX_TEXT_CHARS``, a 1 GiB document needs two); its
    length."""
    room = size - SIGNATURE_ROOM
    annexes = max(1, math.ceil(room / LIBXML2_MAX_TEXT_CHARS))
    placeholders = [_PLACEHOLDER[:-2] + b"%02d" % i for i in range(annexes)]
    template = document_edxml(
        SENDER,
        ONE_RECIPIENT,
        number,
        subject=f"Văn bản số {number} kèm tệp",
        references=tuple(
            Reference(content_id=f"cid:{i + 1}", content_type="application/pdf")
            for i in range(annexes)
        ),
        attachments=tuple(
            Attachment(
                content_id=f"cid:{i + 1}",
                content=placeholder,
                attachment_name=f"vb{i + 1}.pdf",
                content_type="application/pdf",
            )
            for i, placeholder in enumerate(placeholders)
        ),
    )
    pieces = re.split(b"|".join(re.escape(base64.b64encode(p)) for p in placeholders), template)
    room -= sum(len(piece) for piece in pieces)
    if room < 4 * annexes:
        raise ValueError(f"a document of {size} bytes leaves no room for its annex")
    with path.open("wb") as out:
        out.write(pieces[0])
        for index, piece in enumerate(pieces[1:]):
            share = room // annexes + (room % annexes if index == 0 else 0)
            remaining = share // 4 * 3  # annex bytes whose base64 fits its share
            while remaining:
                block = min(_BLOCK, remaining)
                out.write(base64.b64encode(os.urandom(block)))
                remaining -= block
            out.write(piece)
    return path.stat().st_size


def chunk_message_bytes(chunk_bytes: int) -> int:
    """The size of one full chunk's broker message (prefix and GCM tag included)."""
    return len(encode_chunk(str(uuid.uuid4()), 0, bytes(chunk_bytes + TAG_BYTES)))


async def measure_large_document(
    world: World,
    *,
    size: int,
    chunk_bytes: int = DEFAULT_CHUNK_BYTES,
    note: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Send one document of about ``size`` bytes through the path and the same number of
    chunk-sized messages through the bare forwarder; the figures and their verdicts."""
    ChunkLimits(chunk_bytes=chunk_bytes)  # the router's limits: a clear error if outside
    if size > ChunkLimits().max_document_bytes:
        raise ValueError(f"{size} bytes is above the router's max_document_bytes (1 GiB)")
    root = world.root / "large"
    root.mkdir()
    try:
        return await _measure(world, root, size, chunk_bytes, note)
    finally:
        shutil.rmtree(root, ignore_errors=True)  # the document and every staging area


async def _measure(
    world: World, root: Path, size: int, chunk_bytes: int, note: Callable[[str], None]
) -> dict[str, Any]:
    document = root / "document.xml"
    note(f"large document: writing {size / MiB:,.0f} MiB of edXML")
    document_bytes = write_large_edxml(document, next_number(), size)
    chunks = math.ceil(document_bytes / chunk_bytes)
    message_bytes = chunk_message_bytes(chunk_bytes)
    note(f"large document: the bare broker forwarding {chunks} messages of {message_bytes:,} B")
    ceiling = await measure_ceiling(
        world.exchange.amqp_url, world.names.prefix, count=chunks, size=message_bytes
    )
    await world.purge(f"{world.names.prefix}.bench.ceiling.target")
    ceiling_bytes_per_s = chunks * message_bytes / float(str(ceiling["seconds"]))
    note("large document: the edges' floor (parse, XML-DSig digests, encryption)")
    floor = await asyncio.to_thread(measure_edge_floor, document, chunk_bytes)

    deployment = Deployment.without_router(world.exchange, root)
    settings = {"chunk_bytes": chunk_bytes}
    note(f"large document: {document_bytes:,} B through sender, router and recipient")
    async with backend("sqlite", root / "router") as where:
        router = RouterProcess(world, where.url, "large")
        await router.start()
        recipient = await _start(
            root, "recipient", deployment.config(ONE_RECIPIENT[0]), settings, phases=True
        )
        sender = None
        try:
            sender = await _start(
                root, "sender", deployment.config(SENDER), settings, file=str(document)
            )
            sending = await _line(sender, root, "sender", "sending")
            sent = await _line(sender, root, "sender", "sent", "refused", timeout=_patience(size))
            if sent["event"] == "sent":
                received = await _line(recipient, root, "recipient", None, timeout=_patience(size))
                assert received["e"] == sent["e"], (received, sent)
            sender_stopped = await _line(sender, root, "sender", "stopped")
            await sender.wait()
        finally:
            if sender is not None and sender.returncode is None:
                sender.kill()  # it failed: its log says why
                await sender.wait()
            recipient.terminate()
            recipient_stopped = await _line(recipient, root, "recipient", "stopped")
            await recipient.wait()
            await router.stop()
    delivered = sent["event"] == "sent"
    seconds = float(received["t"]) - float(sending["t"]) if delivered else None
    sender_phases = dict(sender_stopped.get("phases") or {})
    recipient_phases = dict(recipient_stopped.get("phases") or {})
    peaks = {
        "router_peak_rss_mb": round((router.peak_rss_kib or 0) / 1024, 1),
        "sender_peak_rss_mb": round(int(sender_stopped["VmHWM"]) / 1024, 1),
        "recipient_peak_rss_mb": round(int(recipient_stopped["VmHWM"]) / 1024, 1),
    }
    return {
        "document_bytes": document_bytes,
        "chunk_bytes": chunk_bytes,
        "chunks": chunks,
        "seconds": None if seconds is None else round(seconds, 2),
        "send_seconds": round(float(sent["t"]) - float(sending["t"]), 2),
        "refused": None if delivered else f"[{sent['reason']}] {sent['message']}",
        **peaks,
        "rss_source": "VmHWM of each party's process (bench.sender_proc, router_proc, "
        "recipient_proc)",
        "ceiling": ceiling,
        **large_document_verdicts(
            document_bytes=document_bytes,
            seconds=seconds,
            ceiling_bytes_per_s=ceiling_bytes_per_s,
            **peaks,
        ),
        "edge_floor": (floor := within_phases(floor, sender_phases, recipient_phases)),
        "best_ratio": best_ratio(
            document_bytes=document_bytes,
            message_bytes=chunk_message_total(document_bytes, chunk_bytes),
            ceiling_bytes_per_s=ceiling_bytes_per_s,
            floor_seconds=floor["edge_floor_seconds"],
        ),
        **transport_figures(
            first_chunk_published=_at(sender_phases, "chunk_publish", "first"),
            last_chunk_staged=_at(recipient_phases, "stage", "last") if delivered else None,
            message_bytes=chunk_message_total(document_bytes, chunk_bytes),
            ceiling_bytes_per_s=ceiling_bytes_per_s,
        ),
        "sender_phases": _seconds_only(sender_phases, since=float(sending["t"])),
        "recipient_phases": _seconds_only(recipient_phases, since=float(sending["t"])),
    }


def transport_figures(
    *,
    first_chunk_published: float | None,
    last_chunk_staged: float | None,
    message_bytes: int,
    ceiling_bytes_per_s: float,
) -> dict[str, Any]:
    """The chunk transport alone, beside the end-to-end figures: the chunk messages' bytes
    from the sender's first chunk published to the recipient's last chunk staged (the
    sender's publishing, the router's forwarding and the recipient's staging), against the
    bare broker. Not a target: it shows what the transport costs and what the edges'
    whole-document work (validation, XML-DSig, encryption, decryption) costs beside it.
    None when either moment was not seen (the document did not get through)."""
    if first_chunk_published is None or last_chunk_staged is None:
        seconds = None
    else:
        seconds = last_chunk_staged - first_chunk_published
    if seconds is None or seconds <= 0:
        return {"transport_seconds": None, "transport_mb_per_s": None, "transport_ratio": None}
    bytes_per_s = message_bytes / seconds
    return {
        "transport_seconds": round(seconds, 2),
        "transport_mb_per_s": round(bytes_per_s / MiB, 2),
        "transport_ratio": round(bytes_per_s / ceiling_bytes_per_s, 3),
    }


def chunk_message_total(document_bytes: int, chunk_bytes: int) -> int:
    """The bytes of every chunk message of a document (the last chunk is shorter)."""
    full, rest = divmod(document_bytes, chunk_bytes)
    overhead = chunk_message_bytes(chunk_bytes) - chunk_bytes  # prefix and tag
    return full * (chunk_bytes + overhead) + (rest + overhead if rest else 0)


def _at(phases: dict[str, Any], label: str, key: str) -> float | None:
    value = phases.get(label, {}).get(key)
    return None if value is None else float(value)


def _seconds_only(phases: dict[str, Any], *, since: float) -> dict[str, Any]:
    """Each phase's summed seconds, and when it began and ended, in seconds since the
    sender said ``sending`` (the same wall clock: every process is on this machine)."""
    return {
        label: {
            "seconds": phase["seconds"],
            "from": None if phase["first"] is None else round(phase["first"] - since, 2),
            "to": None if phase["last"] is None else round(phase["last"] - since, 2),
        }
        for label, phase in phases.items()
    }


def _patience(size: int) -> float:
    """Seconds to wait for a send or a delivery: 2 s per MiB, two minutes at least (the
    XML-DSig of a large document is the slow part, on shared cores)."""
    return max(120.0, 2 * size / MiB)


async def _start(
    root: Path, role: str, config: Any, settings: dict[str, int], **extra: object
) -> asyncio.subprocess.Process:
    """bench.sender_proc or bench.recipient_proc for ``config`` with ``settings``; the
    recipient once it says it is consuming."""
    config = config.model_copy(update={**settings, "staging_dir": root / "staging" / role})
    spec = config.model_dump(mode="json") | {"amqp_url": config.amqp_url.get_secret_value()}
    spec_file = root / f"{role}.json"
    spec_file.write_text(json.dumps(spec | extra))
    with (root / f"{role}.log").open("wb") as log:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            f"bench.{role}_proc",
            str(spec_file),
            stdout=asyncio.subprocess.PIPE,
            stderr=log,
            cwd=str(HERE),
        )
    if role == "recipient":
        await _line(process, root, role, "ready")
    return process


async def _line(
    process: asyncio.subprocess.Process,
    root: Path,
    role: str,
    *events: str | None,
    timeout: float = 60.0,
) -> dict[str, Any]:
    """The next JSON line of ``process`` whose ``event`` is one of ``events`` (None: an
    item)."""
    assert process.stdout is not None
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        raw = await asyncio.wait_for(process.stdout.readline(), timeout=max(left, 0.1))
        if not raw:
            log = (root / f"{role}.log").read_text(errors="replace")[-2000:]
            raise RuntimeError(f"the {role} process ended before {events}:\n{log}")
        line = dict(json.loads(raw))
        if line.get("event") in events:
            return line


async def _alone(size: int, chunk_bytes: int) -> dict[str, Any]:
    url = os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")  # as bench's
    with tempfile.TemporaryDirectory(prefix="vdx-bench-large-") as tmp:
        world = await World.create(url, Path(tmp))
        try:
            return await measure_large_document(
                world,
                size=size,
                chunk_bytes=chunk_bytes,
                note=lambda text: print(text, file=sys.stderr),
            )
        finally:
            await world.close()
            await ManagementClient.from_env().delete_prefixed(world.names.prefix)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.large", description=__doc__)
    parser.add_argument("--mib", type=int, default=64, help="the document's size in MiB")
    parser.add_argument("--chunk-mib", type=int, default=DEFAULT_CHUNK_BYTES // MiB)
    args = parser.parse_args()
    configure_logging(json=True, level="WARNING")
    result = asyncio.run(_alone(args.mib * MiB, args.chunk_mib * MiB))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
