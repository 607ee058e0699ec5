"""``backbone sandbox --out DIR`` as an integration team uses it: a real process, its
``sandbox.json`` read, a document sent with one agency's endpoint, systemid and secret and
taken on another's gateway (the vendor SDK's wire format, testkit.vxp_client), 01 back at
the sender, tracking answering; then SIGTERM, exit 0, and nothing left on the broker."""

from __future__ import annotations

import asyncio
import base64
import json
import re
import signal
import stat
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest

from backbone.devtools.demo import management_client
from testkit import document_edxml, document_id
from testkit.vxp_client import SdkClient
from tests.support.cli_process import start_backbone
from tests.support.gateway import SDK_MADE_AT, call, until

pytestmark = [pytest.mark.broker, pytest.mark.clock]  # document ids carry the Vietnam date

DIRECT, BEHIND_HUB = "000.00.00.G22", "001.21.32.H53"


async def wait_for_file(path: Path, process: subprocess.Popen[bytes], output: Path) -> Any:
    deadline = asyncio.get_running_loop().time() + 50
    while not path.exists():
        assert process.poll() is None, output.read_text()
        assert asyncio.get_running_loop().time() < deadline, output.read_text()
        await asyncio.sleep(0.2)
    return json.loads(path.read_text(encoding="utf-8"))


def stop(process: subprocess.Popen[bytes]) -> int:
    """SIGTERM, as a service manager stops it; its exit code (SIGKILL if it hangs)."""
    process.send_signal(signal.SIGTERM)
    try:
        return process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        raise


def sdk(entry: dict[str, str]) -> SdkClient:
    return SdkClient(entry["endpoint"], entry["systemid"], entry["secret"], SDK_MADE_AT)


async def test_the_sandbox_exchanges_a_document_as_the_sdk_drives_it_and_cleans_up(
    amqp_url: str, tmp_path: Path
) -> None:
    out, output = tmp_path / "out", tmp_path / "sandbox.out"
    process = start_backbone("sandbox", "--out", str(out), output=output, AMQP_URL=amqp_url)
    try:
        sandbox = await wait_for_file(out / "sandbox.json", process, output)
        entries = {entry["organ_code"]: entry for entry in sandbox["agencies"]}
        assert sorted(entry["tier"] for entry in entries.values()) == [1, 1, 2, 3, 4]
        hub = [e for e in entries.values() if e["connection"] == "via hub 00.53.W00"]
        assert {(e["endpoint"], e["systemid"]) for e in hub} == {
            (entries[BEHIND_HUB]["endpoint"], entries[BEHIND_HUB]["systemid"])
        }
        assert len(hub) == 2
        assert len({e["endpoint"] for e in entries.values()}) == 4
        assert stat.S_IMODE((out / "sandbox.json").stat().st_mode) == 0o600
        for entry in entries.values():
            secret_file = out / f"{entry['systemid']}.secret"
            assert secret_file.read_text().strip() == entry["secret"]
            assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600
            assert entry["organ_code"] in output.read_text()  # the table

        sender, recipient = sdk(entries[DIRECT]), sdk(entries[BEHIND_HUB])
        document = document_edxml(DIRECT, [BEHIND_HUB], 1)
        sent = await call(sender.send_edoc, document, sender=DIRECT)
        assert sent is not None
        assert (sent["status"], sent["ErrorCode"]) == ("OK", "0"), sent
        listing = await until(recipient.received_list, lambda r: len(r["data"]) == 1)
        [item] = listing["data"]
        assert (item["from"], item["to"]) == (DIRECT, BEHIND_HUB)
        fetched = await call(recipient.get_edoc, item["docId"])
        assert fetched is not None
        assert document_id(DIRECT, 1).encode() in base64.b64decode(fetched["data"])
        done = await call(recipient.update_status, item["docId"], "done")
        assert done is not None
        assert done["status"] == "OK", done
        statuses = await until(lambda: sender.received_list("status"), lambda r: bool(r["data"]))
        [status_01] = statuses["data"]
        edxml_01 = await call(sender.get_edoc, status_01["docId"])
        assert edxml_01 is not None
        assert b"<edXML:StatusCode>01</edXML:StatusCode>" in base64.b64decode(edxml_01["data"])

        async with httpx.AsyncClient(timeout=10) as http:
            page = await http.get(sandbox["tracking"])
            assert page.status_code == 200
            assert "text/html" in page.headers["content-type"]
            token = entries[DIRECT]["tracking_token"]
            journeys = await http.get(
                httpx.URL(sandbox["tracking"]).join("/api/documents"),
                headers={"Authorization": f"Bearer {token}"},
            )
            assert journeys.status_code == 200, journeys.text
            [journey] = journeys.json()["items"]
            assert (journey["recipient"], journey["state"]) == (BEHIND_HUB, "delivered")
    finally:
        code = stop(process)

    text = output.read_text()
    assert code == 0, text
    assert not out.exists(), list(out.iterdir())
    prefix = re.search(r"broker names prefixed (sandbox-[0-9a-f]+)\.", text)
    assert prefix is not None, text
    management = management_client(amqp_url)
    assert await management.queue_names(prefix=f"{prefix[1]}.") == []
    assert await management.exchange_names(prefix=f"{prefix[1]}.") == []
    direct = [code for code, entry in entries.items() if entry["connection"] == "direct"]
    users = ["router", "hub", *(f"agency-{code}" for code in direct)]
    for user in users:
        assert not await management.delete_user(f"{prefix[1]}-{user}"), f"{user} was left"
