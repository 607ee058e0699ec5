"""The gateway fault scenario's parts: gateways as real processes (``backbone adapter run``
with ``gateway_*`` and no drop folder), the agencies' software as threads speaking the SDK's
wire format (:class:`testkit.vxp_client.SdkClient`), and the counts read afterwards from
each gateway's SQLite state and the router's store.

The software behaves as real document software does: ``sendEdoc`` of one file is repeated,
with the same bytes, until the gateway answers OK; the receiving loop lists, fetches and
says ``done``, repeating whatever failed. Both keep counting what the kills did to them.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import re
import sqlite3
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml

from adapters.gateway.state import FILE_NAME
from testkit import Deployment, document_edxml
from testkit.vxp_client import SdkClient
from tests.support.adapter_process import adapter_command
from tests.support.child_process import ChildProcess
from tests.support.gateway import SDK_MADE_AT, gateway_config

__all__ = [
    "Failures",
    "GatewayProcess",
    "KillPoint",
    "ReceivingSoftware",
    "SendingSoftware",
    "document_of",
    "envelopes_seen_by_router",
    "four_kib_document",
    "kill_at",
    "received_per_document",
    "routed_per_document",
]

_DOCUMENT_ID = re.compile(rb"<edXML:DocumentId>([^<]+)</edXML:DocumentId>")
_PAUSE = 0.1  # seconds between a failed call and its repetition


class GatewayProcess(ChildProcess):
    """``backbone adapter run --config FILE`` serving ``system``'s agencies through the
    gateway (state in ``root/state``), as a child process that can be killed."""

    def __init__(self, deployment: Deployment, system: str, root: Path, name: str) -> None:
        config, self.secret = gateway_config(deployment, system, root / name)
        self.port = config.gateway_port
        self.state_file = root / name / "state" / FILE_NAME
        self.config_file = root / f"{name}.yaml"
        dumped = config.model_dump(mode="json", exclude_none=True)
        dumped["amqp_url"] = config.amqp_url.get_secret_value()
        self.config_file.write_text(yaml.safe_dump(dumped))
        self.system_id = config.gateway_systems[0].systemid
        self.log = root / f"{name}.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def sdk(self) -> SdkClient:
        return SdkClient(self.endpoint, self.system_id, self.secret, SDK_MADE_AT)

    def start(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("VDX_") and k != "AMQP_URL"}
        env["VDX_LOG_FORMAT"] = "json"
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [*adapter_command(), "run", "--config", str(self.config_file)],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self.starts += 1

    def serving(self, timeout: float = 60) -> None:
        """Block until this start logged ``gateway.serving`` (HTTP up, loops running)."""
        deadline = time.monotonic() + timeout
        while self.count("gateway.serving") < self.starts:
            assert self.process is not None
            if self.process.poll() is not None:
                raise AssertionError(f"{self.log.stem} exited:\n{self.tail()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.log.stem} not serving after {timeout}s")
            time.sleep(0.1)

    def restart_after_kill(self, pause: float = 0.5) -> None:
        self.kill()
        self.restart(pause)

    def restart(self, pause: float = 0.5) -> None:
        """Start again after a kill, and wait until serving."""
        time.sleep(pause)
        self.start()
        self.serving()

    def count(self, event: str) -> int:
        if not self.log.exists():
            return 0
        return self.log.read_text(errors="replace").count(f'"event": "{event}"')

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""

    def query(self, sql: str, params: Sequence[object] = ()) -> list[tuple[Any, ...]]:
        """Read the gateway's state (WAL: readable while the process writes)."""
        with contextlib.closing(sqlite3.connect(f"file:{self.state_file}?mode=ro", uri=True)) as db:
            return list(db.execute(sql, params))


@dataclass(frozen=True)
class KillPoint:
    """Kill once ``progress`` reached ``after`` and then ``window`` holds (polled; at once
    when None), where the scenario wants the kill to fall.

    A window can close between the poll and the kill (a 4 KiB ``sendEdoc`` lasts a few
    tens of milliseconds); ``landed``, when given, says afterwards whether the kill fell
    inside it, and the point is tried again at the next window, up to ``tries`` kills."""

    after: int
    name: str
    window: Callable[[], bool] | None = None
    landed: Callable[[], bool] | None = None
    tries: int = 5


async def kill_at(
    gateway: GatewayProcess,
    points: Sequence[KillPoint],
    software: threading.Thread,
    progress: Callable[[], int],
    *,
    window_timeout: float = 30.0,
) -> list[str]:
    """Kill (SIGKILL) and restart ``gateway`` at each point while ``software`` runs; what
    each kill hit ("name@progress", "(missed)" when the window never came or no kill fell
    inside it)."""
    hits: list[str] = []
    for point in points:
        while progress() < point.after and software.is_alive():
            await asyncio.sleep(0.01)
        for attempt in range(1, point.tries + 1):
            if not software.is_alive():
                return hits
            in_window = True
            if point.window is not None:
                deadline = time.monotonic() + window_timeout
                while not (in_window := point.window()) and time.monotonic() < deadline:
                    await asyncio.sleep(0.002)
            gateway.kill()  # at once, in this step: the window is still open
            at = progress()
            await asyncio.to_thread(gateway.restart)
            landed = in_window and (point.landed is None or point.landed())
            if landed or attempt == point.tries:
                tried = f" (try {attempt})" if attempt > 1 else ""
                hits.append(f"{point.name}@{at}{tried}" + ("" if landed else " (missed)"))
                break
    return hits


def four_kib_document(sender: str, recipients: Sequence[str], number: int) -> bytes:
    """Document ``number``, its edXML padded with content to 4 KiB."""
    bare = len(document_edxml(sender, recipients, number, content=""))
    filler = "Nội dung văn bản số " * 300
    content = filler.encode()[: max(0, 4096 - bare)].decode(errors="ignore")
    return document_edxml(sender, recipients, number, content=content)


def document_of(edxml: bytes) -> str:
    found = _DOCUMENT_ID.search(edxml)
    assert found is not None, edxml[:300]
    return found.group(1).decode()


@dataclass
class Failures:
    """Calls that did not get an answer, by what happened (a kill shows as the first two)."""

    cut_mid_request: int = 0  # the connection died under the request: a kill landed in it
    refused: int = 0  # nothing listening: the gateway was down
    unreadable: int = 0  # an answer the SDK would hand its caller as null
    fail: Counter[str] = field(default_factory=Counter)  # status FAIL, by ErrorCode
    calling_since: float | None = None  # monotonic: the call under way sent its request

    def sent(self) -> None:
        """The SDK's request left (its client is set up, which alone takes tens of ms)."""
        self.calling_since = time.monotonic()

    def call(self, function: Callable[[], dict[str, Any] | None]) -> dict[str, Any] | None:
        """``function()``'s answer when it is OK; None (counted) otherwise."""
        try:
            answer = function()
        except httpx.ConnectError:
            self.refused += 1
            return None
        except (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError):
            self.cut_mid_request += 1
            return None
        finally:
            self.calling_since = None
        if answer is None:
            self.unreadable += 1
            return None
        if answer.get("status") != "OK":
            self.fail[str(answer.get("ErrorCode"))] += 1
            return None
        return answer

    def in_call_for(self, seconds: float) -> bool:
        """A call's request has been with the gateway for ``seconds``."""
        since = self.calling_since
        return since is not None and time.monotonic() - since >= seconds

    def describe(self) -> str:
        fails = ",".join(f"{code}x{n}" for code, n in sorted(self.fail.items())) or "0"
        return f"cut mid-request {self.cut_mid_request}, refused {self.refused}, FAIL {fails}"


class SendingSoftware(threading.Thread):
    """Sends each file until OK, the same bytes every time; keeps each DocId."""

    def __init__(
        self, gateway: GatewayProcess, sender: str, files: Sequence[bytes], stall_timeout: float
    ) -> None:
        super().__init__(name="sending-software", daemon=True)
        self.timeout = stall_timeout  # fails when one file gets no OK for this long
        self.gateway = gateway
        self.sender = sender
        self.files = files
        self.doc_ids: list[str] = []
        self.attempts = 0
        self.failures = Failures()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            sdk = self.gateway.sdk()
            sdk.on_request = self.failures.sent
            for data in self.files:
                deadline = time.monotonic() + self.timeout
                while time.monotonic() < deadline:
                    self.attempts += 1
                    answer = self.failures.call(
                        lambda: sdk.send_edoc(data, sender=self.sender)  # noqa: B023
                    )
                    if answer is not None:
                        self.doc_ids.append(str(answer["DocId"]))
                        break
                    time.sleep(_PAUSE)
                else:
                    raise AssertionError(f"no OK for file {len(self.doc_ids)} in time")
        except BaseException as error:  # the test thread reports it
            self.error = error


class ReceivingSoftware(threading.Thread):
    """Lists, fetches each item, says ``done``; repeats what failed, until ``expected``
    items are done. "Shown twice": an item listed again after its ``done`` was answered OK
    (an item not yet done may be listed again: the software has not taken it), or two
    items carrying one document."""

    def __init__(self, gateway: GatewayProcess, expected: int, stall_timeout: float) -> None:
        super().__init__(name="receiving-software", daemon=True)
        self.gateway = gateway
        self.expected = expected
        self.timeout = stall_timeout  # fails when no done for this long
        self.done: dict[str, str] = {}  # docId -> DocumentId, once done was answered OK
        self.shown_again: list[str] = []  # docIds listed after their done
        self.listings = 0
        self.failures = Failures()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self._loop()
        except BaseException as error:  # the test thread reports it
            self.error = error

    def _loop(self) -> None:
        sdk = self.gateway.sdk()
        sdk.on_request = self.failures.sent
        deadline, progress = time.monotonic() + self.timeout, 0
        # Fetched and kept, its done not yet answered OK: the software says done again
        # before anything else (the gateway may have recorded a done whose answer was lost
        # with a kill, and then no longer lists the item).
        owed: dict[str, str] = {}
        while len(self.done) < self.expected:
            if len(self.done) != progress:
                deadline, progress = time.monotonic() + self.timeout, len(self.done)
            elif time.monotonic() > deadline:
                raise AssertionError(f"stalled at {progress} of {self.expected} done")
            for doc_id in list(owed):
                if self.failures.call(lambda: sdk.update_status(doc_id, "done")) is None:  # noqa: B023
                    break
                self.done[doc_id] = owed.pop(doc_id)
            if owed:
                time.sleep(_PAUSE)
                continue
            listing = self.failures.call(sdk.received_list)
            if listing is None:
                time.sleep(_PAUSE)
                continue
            self.listings += 1
            items = listing["data"]
            self.shown_again += [item["docId"] for item in items if item["docId"] in self.done]
            if not items:
                time.sleep(_PAUSE)
            for item in items:
                doc_id = str(item["docId"])
                if doc_id in self.done:
                    continue
                fetched = self.failures.call(lambda: sdk.get_edoc(doc_id))  # noqa: B023
                if fetched is None:
                    break  # list again, as the software would after an error
                owed[doc_id] = document_of(base64.b64decode(fetched["data"]))
                if self.failures.call(lambda: sdk.update_status(doc_id, "done")) is None:  # noqa: B023
                    break
                self.done[doc_id] = owed.pop(doc_id)


def received_per_document(
    gateway: GatewayProcess, message_type: str, status_code: str | None = None
) -> Counter[str]:
    """Rows in the gateway's ``received`` table per DocumentId (one row per envelope; a
    status's DocumentId is the document it is about)."""
    rows = gateway.query(
        "SELECT document_id FROM received WHERE message_type = ? AND "
        "coalesce(status_code, '') = coalesce(?, status_code, '')",
        (message_type, status_code),
    )
    return Counter(str(row[0]) for row in rows)


def routed_per_document(store: Path, kind: str, recipient: str) -> Counter[str]:
    """The router store's deliveries (one row per routed envelope and recipient)."""
    with contextlib.closing(sqlite3.connect(f"file:{store}?mode=ro", uri=True)) as db:
        rows = db.execute(
            "SELECT document_id FROM deliveries WHERE kind = ? AND recipient = ?",
            (kind, recipient),
        ).fetchall()
    return Counter(str(row[0]) for row in rows)


def envelopes_seen_by_router(log: Path, sender: str) -> dict[str, set[str]]:
    """Every envelope of ``sender`` the router took (routed, duplicate, rejected…), by
    DocumentId, from its JSON log: a document published twice under two envelopes (sealed
    again) shows two, however the router answered the second."""
    seen: dict[str, set[str]] = {}
    for line in log.read_text(errors="replace").splitlines():
        if not line.startswith("{"):
            continue
        record = json.loads(line)
        about = record.get("document_id"), record.get("envelope_id")
        from_sender = record.get("sender") == sender and None not in about
        if from_sender and str(record.get("event", "")).startswith("router."):
            seen.setdefault(str(about[0]), set()).add(str(about[1]))
    return seen


@contextlib.contextmanager
def stopped_at_end(*processes: ChildProcess) -> Iterator[None]:
    try:
        yield
    finally:
        for process in processes:
            with contextlib.suppress(AssertionError):
                process.stop(timeout=30)
