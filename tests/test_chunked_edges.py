"""Large documents through the drop folder and the gateway (issue 18): a ~40 MiB edXML sent
in chunks from disk and handed over as a file at the other end, every party a process of
its own on the real broker, each adapter's peak RSS within 3 × the document + 200 MiB; and
a document over ``max_document_bytes`` refused back to its sender with the reason."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import re
import secrets
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import yaml

from adapters import AdapterClient
from adapters.dropfolder import DropFolder, DropFolderOptions
from backbone.errors import ConfigurationError, Reason
from testkit import Deployment, document_with_attachment
from testkit.vxp_client import SdkClient
from tests.conftest import REPO
from tests.faults.harness import RouterProcess, deployment_for, exchange_on
from tests.support import adapter_deployment_fixture  # noqa: F401
from tests.support.adapter_process import AdapterProcess, drop, logged, wait_for
from tests.support.gateway import SDK_MADE_AT, call, running_gateway, until
from tests.support.ports import free_port

pytestmark = [pytest.mark.broker, pytest.mark.clock]  # document ids carry the Vietnam date

G22, H41 = "000.00.00.G22", "000.00.00.H41"
MiB = 1 << 20
ANNEX = 30 * MiB  # base64 in the edXML: a 40 MiB document
SIGNATURE = re.compile(rb"<ds:Signature\b.*?</ds:Signature>", re.S)


def _large_document(number: int, annex_bytes: int = ANNEX) -> tuple[bytes, bytes]:
    annex = b"%PDF-1.7\n" + os.urandom(annex_bytes)
    return document_with_attachment(G22, [H41], number, annex), annex


def _within_target(process: AdapterProcess, document: int) -> int:
    """The issue's target for an adapter: peak RSS ≤ 3 × the document + 200 MiB."""
    peak = process.peak_rss()
    target = 3 * document + 200 * MiB
    assert peak <= target, f"{process.log.stem}: peak RSS {peak / MiB:.0f} MiB > {target / MiB:.0f}"
    print(f"{process.log.stem}: peak RSS {peak / MiB:.0f} MiB for {document / MiB:.0f} MiB")
    return peak


@asynccontextmanager
async def _router_and_adapters(
    amqp_url: str, root: Path, make: dict[str, tuple[str, dict[str, Any] | None]]
) -> AsyncIterator[dict[str, AdapterProcess]]:
    """A router process, and one adapter process per entry of ``make`` (name → its system
    and its gateway's settings, None for a drop folder), serving until the block ends."""
    async with exchange_on(amqp_url, root) as exchange:
        router = RouterProcess(exchange, root)
        router.start()
        processes: dict[str, AdapterProcess] = {}
        try:
            await router.started()
            deployment = deployment_for(exchange, root)
            for name, (system, gateway) in make.items():
                processes[name] = AdapterProcess(
                    deployment, system, name, settings=gateway, folders=gateway is None
                )
            for process in processes.values():
                process.start()
            for process in processes.values():
                await process.serving()
            yield processes
        finally:
            for process in processes.values():
                process.stop()
            router.stop()


@pytest.mark.large
async def test_a_40_mib_document_dropped_in_an_outbox_arrives_byte_identical_in_the_inbox(
    amqp_url: str, tmp_path: Path
) -> None:
    await _dropped_and_delivered(amqp_url, tmp_path, ANNEX)


@pytest.mark.large
async def test_a_100_mib_document_above_the_single_message_xml_limits_arrives_byte_identical(
    amqp_url: str, tmp_path: Path
) -> None:
    """Over the 64 MiB that the edXML limits allow a single message: parsed within
    ``max_document_bytes`` at both ends, and each adapter within 3 × 100 MiB + 200 MiB."""
    await _dropped_and_delivered(amqp_url, tmp_path, 75 * MiB)


async def _dropped_and_delivered(amqp_url: str, tmp_path: Path, annex_bytes: int) -> None:
    edxml, annex = _large_document(1, annex_bytes)
    make: dict[str, tuple[str, dict[str, Any] | None]] = {
        "sender": (G22, None),
        "recipient": (H41, None),
    }
    async with _router_and_adapters(amqp_url, tmp_path, make) as adapters:
        sender, recipient = adapters["sender"], adapters["recipient"]
        drop(sender.folder, "large.edxml", edxml)
        inbox = recipient.folder / "inbox"

        async def arrived() -> bool:
            return inbox.is_dir() and any(inbox.iterdir())

        await wait_for(arrived, 180, "the large document in H41's inbox")
        [entry] = list(inbox.iterdir())
        received = (entry / "document.edxml").read_bytes()
        # The file G22's software dropped, byte for byte, with G22's signature put in.
        assert SIGNATURE.sub(b"", received) == edxml
        assert (entry / "vb.pdf").read_bytes() == annex
        metadata = json.loads((entry / "metadata.json").read_text())
        # The sender's folder shows its fate: sent, with its receipt, and H41's 01.
        receipt_file = sender.folder / "sent" / "large.edxml.receipt.json"
        await wait_for(lambda: _exists(receipt_file), 30, "the receipt in sent/")
        receipt = json.loads(receipt_file.read_text())
        assert receipt["envelope_id"] == metadata["envelope_id"]
        assert (sender.folder / "sent" / "large.edxml").read_bytes() == edxml
        status = sender.folder / "status"
        await wait_for(lambda: _exists_any(status, "_01_"), 60, "status 01 in G22's status/")
        assert await logged(recipient.log, "adapter.chunked_complete")
        # Staging: nothing left once the document is in the inbox (linked out of it).
        await wait_for(
            lambda: _empty(recipient.folder / ".work" / "staging" / "delivered"),
            30,
            "the recipient's delivered file to go",
        )
        _within_target(sender, len(edxml))
        _within_target(recipient, len(edxml))


@pytest.mark.large
async def test_a_40_mib_document_goes_from_sendedoc_to_getedoc_byte_identical(
    amqp_url: str, tmp_path: Path
) -> None:
    edxml, annex = _large_document(2)
    secret = secrets.token_hex(16)
    make = _gateways(tmp_path, secret)
    async with _router_and_adapters(amqp_url, tmp_path, make) as adapters:
        sender, recipient = adapters["sender"], adapters["recipient"]
        for process in adapters.values():
            await wait_for(partial(logged, process.log, "gateway.serving"), 30, "the gateway")
        a, b = (_sdk(process, secret) for process in (sender, recipient))

        sent = await call(a.send_edoc, edxml, sender=G22)
        assert sent is not None
        assert (sent["status"], sent["ErrorCode"]) == ("OK", "0"), sent
        listing = await until(b.received_list, lambda r: len(r["data"]) == 1, timeout=180)
        [item] = listing["data"]
        fetched = await call(b.get_edoc, item["docId"])
        assert fetched is not None
        assert fetched["status"] == "OK", {k: v for k, v in fetched.items() if k != "data"}
        received = base64.b64decode(fetched["data"])
        assert SIGNATURE.sub(b"", received) == edxml
        assert base64.b64encode(annex) in received
        downloaded = await call(b.download, item["docId"])
        assert downloaded.content == received
        assert await logged(recipient.log, "adapter.chunked_complete")
        done = await call(b.update_status, item["docId"], "done")
        assert done is not None
        assert done["status"] == "OK", done
        await until(lambda: a.received_list("status"), lambda r: len(r["data"]) == 1, timeout=60)
        [row] = (await call(a.sent_list, sent["DocId"]))["data"]  # type: ignore[index]
        assert row["sendStatus"] == "routed", row
        _within_target(sender, len(edxml))
        _within_target(recipient, len(edxml))


@pytest.mark.large
async def test_a_gateway_killed_mid_document_finishes_the_same_envelope_at_its_restart(
    amqp_url: str, tmp_path: Path
) -> None:
    # Sealing it again would be another envelope of the same document (duplicate_conflict
    # at the router): the restarted gateway publishes the messages its client kept, before
    # it takes any request, and the software's repeat is answered with the same DocId.
    edxml, annex = _large_document(4, annex_bytes=24 * MiB)
    secret = secrets.token_hex(16)
    make = _gateways(tmp_path, secret, chunk_bytes=MiB)
    async with _router_and_adapters(amqp_url, tmp_path, make) as adapters:
        sender, recipient = adapters["sender"], adapters["recipient"]
        for process in adapters.values():
            await wait_for(partial(logged, process.log, "gateway.serving"), 30, "the gateway")
        a, b = (_sdk(process, secret) for process in (sender, recipient))
        confirmed = tmp_path / "sender" / "state" / "staging" / "outgoing" / "pending"

        sending = asyncio.create_task(call(a.send_edoc, edxml, sender=G22))
        # Frozen within milliseconds of its first confirmed chunk, so it is caught mid-document
        # however fast it publishes the rest (a 0.1 s poll let it finish first once), then
        # killed.
        progress = await _freeze_mid_send(sender, confirmed)
        assert 2 <= progress.confirmed < progress.messages, progress
        sender.kill()
        with contextlib.suppress(Exception):  # the software sees its connection drop
            await sending
        sender.start()

        async def serving_again() -> bool:
            return sender.log.read_text().count('"gateway.serving"') == 2

        await wait_for(serving_again, 60, "G22's gateway back")
        listing = await until(b.received_list, lambda r: len(r["data"]) == 1, timeout=180)
        [item] = listing["data"]
        fetched = await call(b.get_edoc, item["docId"])
        assert fetched is not None
        assert SIGNATURE.sub(b"", base64.b64decode(fetched["data"])) == edxml
        log = sender.log.read_text()
        assert '"adapter.send_resumed"' in log
        assert log.count('"event": "adapter.sealed"') == 1, sender.tail()
        # The software's repeat: the same DocId, nothing sent again.
        repeat = await call(a.send_edoc, edxml, sender=G22)
        assert repeat is not None
        assert (repeat["status"], repeat["ErrorCode"]) == ("OK", "0"), repeat
        [row] = (await call(a.sent_list, repeat["DocId"]))["data"]  # type: ignore[index]
        assert row["sendStatus"] in ("sent", "routed"), row
        await asyncio.sleep(2)
        assert len((await call(b.received_list))["data"]) == 1  # type: ignore[index]
        assert not list(confirmed.iterdir())  # the kept send reclaimed
        assert base64.b64encode(annex) in base64.b64decode(fetched["data"])


@dataclass(frozen=True)
class _Progress:
    confirmed: int  # messages the broker confirmed, header first
    messages: int  # the header and every chunk


async def _freeze_mid_send(process: AdapterProcess, pending: Path) -> _Progress:
    """SIGSTOP ``process`` as soon as its kept send counts a confirmed chunk (the header is
    the first message), polling every few milliseconds; what it had confirmed by then."""
    assert process.process is not None
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 120
    while loop.time() < deadline:
        for kept in pending.glob("*/ready.json"):
            count = kept.with_name("confirmed")
            if count.exists() and int(count.read_text() or 0) >= 2:
                os.kill(process.process.pid, signal.SIGSTOP)
                messages = int(json.loads(kept.read_text())["messages"])
                return _Progress(int(count.read_text() or 0), messages)
        await asyncio.sleep(0.005)
    raise AssertionError(f"no chunk of the kept send confirmed within 120 s:\n{process.tail()}")


def _gateways(
    root: Path, secret: str, **settings: Any
) -> dict[str, tuple[str, dict[str, Any] | None]]:
    """G22's gateway ("sender") and H41's ("recipient"), one software system each, "qlvb"."""

    def gateway(directory: Path) -> dict[str, Any]:
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "qlvb.secret").write_text(secret + "\n")
        return {
            "gateway_port": free_port(),
            "gateway_state": str(directory / "state"),
            "gateway_systems": [
                {"systemid": "qlvb", "secret_file": str(directory / "qlvb.secret")}
            ],
            **settings,
        }

    parties = (("sender", G22), ("recipient", H41))
    return {name: (system, gateway(root / name)) for name, system in parties}


def _sdk(process: AdapterProcess, secret: str) -> SdkClient:
    port = yaml.safe_load(process.config_file.read_text())["gateway_port"]
    return SdkClient(f"http://127.0.0.1:{port}", "qlvb", secret, SDK_MADE_AT)


async def _exists(path: Path) -> bool:
    return path.exists()


async def _exists_any(directory: Path, part: str) -> bool:
    return directory.is_dir() and any(part in path.name for path in directory.iterdir())


async def _empty(directory: Path) -> bool:
    return not directory.is_dir() or not any(directory.iterdir())


# -- refused for its size, and the sender told --------------------------------------------

LIMITED = {"chunk_bytes": MiB, "max_document_bytes": 8 * MiB}


async def test_a_dropped_document_over_max_document_bytes_is_put_in_failed_with_the_reason(
    adapter_deployment: Deployment,
) -> None:
    client = await adapter_deployment.adapter(G22, settings=LIMITED)
    folder = adapter_deployment.root / "folders" / G22
    service = DropFolder(client, {G22: folder}, DropFolderOptions(settle_seconds=0))
    service.prepare()
    edxml, _ = _large_document(3, 7 * MiB)  # about 9.3 MiB of edXML
    drop(folder, "too-large.edxml", edxml)

    assert await service.send_all() == 1

    record = json.loads((folder / "failed" / "too-large.edxml.error.json").read_text())
    assert record["reason"] == Reason.DOCUMENT_TOO_LARGE.value
    assert "max_document_bytes" in record["message"]
    assert str(len(edxml)) in record["message"]
    assert (folder / "failed" / "too-large.edxml").read_bytes() == edxml
    assert not any((folder / "sent").iterdir())


async def test_a_sendedoc_body_over_max_document_bytes_is_refused_with_the_reason(
    adapter_deployment: Deployment, tmp_path: Path
) -> None:
    edxml, _ = _large_document(4, 7 * MiB)
    async with running_gateway(adapter_deployment, G22, tmp_path / "g", extra=LIMITED) as gateway:
        answer = await call(gateway.sdk().send_edoc, edxml, sender=G22)
        assert answer is not None
        assert (answer["status"], answer["ErrorCode"]) == (
            "FAIL",
            Reason.GATEWAY_BODY_TOO_LARGE.value,
        )
        assert "max_document_bytes" in answer["ErrorDesc"]
        spool = tmp_path / "g" / "state" / "spool"
        assert not any(spool.iterdir())  # nothing of it kept


async def test_a_sendedoc_body_between_one_chunk_and_the_limit_is_sent_in_chunks(
    adapter_deployment: Deployment, tmp_path: Path
) -> None:
    edxml, annex = _large_document(5, 3 * MiB)  # about 4 MiB: chunked at 1 MiB
    async with (
        running_gateway(adapter_deployment, G22, tmp_path / "a", extra=LIMITED) as gateway_a,
        running_gateway(adapter_deployment, H41, tmp_path / "b", extra=LIMITED) as gateway_b,
    ):
        a, b = gateway_a.sdk(), gateway_b.sdk()
        sent = await call(a.send_edoc, edxml, sender=G22)
        assert sent is not None
        assert sent["status"] == "OK", sent
        again = await call(a.send_edoc, edxml, sender=G22)  # the same file: the same DocId
        assert again is not None
        assert again["DocId"] == sent["DocId"]
        [item] = (await until(b.received_list, lambda r: len(r["data"]) == 1, timeout=60))["data"]
        fetched = await call(b.get_edoc, item["docId"])
        assert fetched is not None
        received = base64.b64decode(fetched["data"])
        assert SIGNATURE.sub(b"", received) == edxml
        assert base64.b64encode(annex) in received
        kept = list((tmp_path / "b" / "state" / "documents").iterdir())
        assert [path.read_bytes() for path in kept] == [received]  # on disk, not in SQLite


# -- where chunks are staged ---------------------------------------------------------------


async def test_the_default_staging_dir_is_the_adapters_own_never_one_shared_by_system(
    adapter_deployment: Deployment, tmp_path: Path
) -> None:
    config = adapter_deployment.config(G22).model_copy(update={"staging_dir": None})
    folder = config.agencies[0].folder
    assert folder is not None
    assert config.staging_root() == folder / ".work" / "staging"
    gateway = config.model_copy(
        update={"gateway_port": free_port(), "gateway_state": tmp_path / "state"}
    )
    assert gateway.staging_root() == tmp_path / "state" / "staging"
    bare = config.model_copy(
        update={"agencies": tuple(a.model_copy(update={"folder": None}) for a in config.agencies)}
    )
    assert bare.staging_root().name == f"vdx-staging-{bare.system}-{os.getpid()}"


async def test_a_second_process_staging_in_the_same_directory_refuses_to_start(
    adapter_deployment: Deployment, tmp_path: Path
) -> None:
    staging = tmp_path / "shared-staging"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from pathlib import Path; "
            "from adapters.process_lock import lock_for_this_process; "
            f"lock_for_this_process(Path({str(staging / 'lock')!r}), refusal='held'); "
            "print('locked', flush=True); time.sleep(60)",
        ],
        stdout=subprocess.PIPE,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == b"locked"
        config = adapter_deployment.config(G22).model_copy(update={"staging_dir": staging})
        client = AdapterClient(config)
        with pytest.raises(ConfigurationError, match=r"already staging in .*give each adapter"):
            await client.start()
    finally:
        holder.kill()
        holder.wait()
    # Once the other process is gone, the directory is free again.
    async with AdapterClient(config):
        pass
