"""What every fault scenario shares: a router as a process, two drop-folder adapters as
processes (G22 sends, H41 receives), a few thousand documents folder to folder, and the
count of what arrived.

The exchange (prefix, broker users, PKI, directory) is :class:`testkit.Exchange`; the
adapters are :class:`tests.support.AdapterProcess`, configured by
:class:`testkit.Deployment` — only the router differs from those harnesses:
here it is ``backbone router run`` in a process of its own, so it can be killed.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from backbone.wire.events import Event, EventType, decode_events
from tests.conftest import REPO
from tests.support import ChildProcess, Deployment, Exchange, document_edxml, document_id
from tests.support.adapter_process import AdapterProcess, drop, inbox_documents

__all__ = [
    "DOCUMENTS",
    "G22",
    "H41",
    "RESULTS",
    "Outcome",
    "Result",
    "RouterProcess",
    "Run",
    "exchange_on",
    "find_event",
    "postgres_database",
    "run_with_fault",
]

G22, H41 = "000.00.00.G22", "000.00.00.H41"
DOCUMENTS = int(os.environ.get("VDX_FAULTS_DOCUMENTS", "2000"))
STALL_TIMEOUT = float(os.environ.get("VDX_FAULTS_STALL_SECONDS", "120"))
POSTGRES_URL = os.environ.get(
    "VDX_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
)


@dataclass(frozen=True)
class Result:
    """One row of the table ``make faults`` prints."""

    scenario: str
    sent: int  # documents dropped into the sender's outbox/
    delivered: int  # distinct documents in the recipient's inbox/
    duplicates: int  # inbox entries beyond the first of a document
    lost: int  # sent, not delivered
    # delivered documents whose status 01 is in the sender's status/; None where the
    # scenario's recipient is no adapter and sends none (the lagging agency)
    statuses: int | None
    seconds: float
    notes: str = ""

    @property
    def statuses_complete(self) -> bool:
        return self.statuses is None or self.statuses == self.delivered

    @property
    def ok(self) -> bool:
        return self.lost == 0 and self.duplicates == 0 and self.statuses_complete


RESULTS: list[Result] = []


async def wait_for(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        await asyncio.sleep(0.2)


class RouterProcess(ChildProcess):
    """``backbone router run --config FILE`` as a child process, configured for an
    :class:`Exchange` (SQLite in ``root`` unless ``store_url`` says otherwise).
    ``command`` replaces ``python -m backbone`` (a wrapper that injects a fault); ``settings``
    are further keys of its configuration file."""

    def __init__(
        self,
        exchange: Exchange,
        root: Path,
        *,
        name: str = "router",
        amqp_url: str | None = None,
        store_url: str | None = None,
        command: Sequence[str] | None = None,
        settings: dict[str, Any] | None = None,
    ) -> None:
        directory = exchange.directory_file(root)
        self.config = root / f"{name}.yaml"
        self.config.write_text(
            yaml.safe_dump(
                {
                    "directory": str(directory),
                    "prefix": exchange.names.prefix,
                    "store_url": store_url or f"sqlite+aiosqlite:///{root / 'router.db'}",
                    "trust_anchors": [str(exchange.pki.ca.cert_path)],
                    "crls": [str(exchange.pki.ca.crl_path)],
                    **(settings or {}),
                }
            )
        )
        self.amqp_url = amqp_url or exchange.amqp_url
        self.log = root / f"{name}.log"
        self.command = list(command or [sys.executable, "-m", "backbone"])
        self.process: subprocess.Popen[bytes] | None = None
        self._starts_logged = 0

    def start(self) -> None:
        self._starts_logged = self.count("router.started")
        env = {k: v for k, v in os.environ.items() if not k.startswith("VDX_")}
        env |= {"AMQP_URL": self.amqp_url, "VDX_LOG_FORMAT": "json"}
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [*self.command, "router", "run", "--config", str(self.config)],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=REPO,
            )

    async def started(self, timeout: float = 60) -> None:
        """Wait until this start logged ``router.started`` (it consumes from then on)."""

        def up() -> bool:
            if self.process is not None and self.process.poll() is not None:
                raise AssertionError(
                    f"the router exited ({self.process.returncode}):\n{self.tail()}"
                )
            return self.count("router.started") > self._starts_logged

        await wait_for(up, timeout, f"{self.log.stem} to start")

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""

    def count(self, event: str) -> int:
        """How many times ``event`` is in the log (every start of this router)."""
        if not self.log.exists():
            return 0
        return self.log.read_text(errors="replace").count(f'"event": "{event}"')


def deployment_for(exchange: Exchange, root: Path) -> Deployment:
    """The adapter harness's :class:`Deployment` (it writes adapter configurations) without
    its in-process router: in these scenarios the router runs as a process of its own."""
    return Deployment.without_router(exchange, root)


class Run:
    """``documents`` documents from G22's folder to H41's, both adapters as processes.

    ``adapter_url``: where the adapters connect (a proxy, another node), with each system's
    own broker user; by default the exchange's broker."""

    def __init__(
        self, exchange: Exchange, root: Path, *, documents: int = DOCUMENTS, adapter_url: str = ""
    ) -> None:
        self.exchange = exchange
        self.root = root
        self.documents = documents
        seen_by_adapters = (
            dataclasses.replace(exchange, amqp_url=adapter_url) if adapter_url else exchange
        )
        deployment = deployment_for(seen_by_adapters, root)
        self.sender = AdapterProcess(deployment, G22, "sender")
        self.recipient = AdapterProcess(deployment, H41, "recipient")
        self.first_number = 100_000  # document numbers: first_number + n
        self.started_at = time.monotonic()

    # -- driving -------------------------------------------------------------------------

    def start_adapters(self) -> None:
        self.sender.start()
        self.recipient.start()

    async def adapters_serving(self) -> None:
        await asyncio.gather(self.sender.serving(), self.recipient.serving())

    def drop_documents(self, numbers: Sequence[int] | None = None) -> None:
        """Write the documents into the sender's outbox/ the way agency software does."""
        for n in numbers if numbers is not None else range(self.documents):
            number = self.first_number + n
            drop(self.sender.folder, f"vb-{number}.edxml", document_edxml(G22, [H41], number))

    def expected(self) -> set[str]:
        return {document_id(G22, self.first_number + n) for n in range(self.documents)}

    def stop_adapters(self, timeout: float = 30.0) -> list[str]:
        """SIGTERM both at once, kill one that has not stopped within ``timeout`` seconds;
        returns what went wrong."""
        running = [a for a in (self.sender, self.recipient) if a.process is not None]
        for adapter in running:
            assert adapter.process is not None
            if adapter.process.poll() is None:
                adapter.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        problems = []
        for adapter in running:
            assert adapter.process is not None
            try:
                code = adapter.process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                adapter.kill()
                problems.append(f"{adapter.log.stem} did not stop within {timeout:.0f}s of SIGTERM")
            else:
                if code != 0:
                    problems.append(f"{adapter.log.stem} exited with {code}")
        return problems

    # -- counting ------------------------------------------------------------------------

    def delivered_entries(self) -> int:
        """Entries in the recipient's inbox/ (cheap: one directory listing)."""
        return _count_entries(self.recipient.folder / "inbox")

    def delivered_documents(self) -> list[str]:
        """The DocumentId of every entry in the recipient's inbox/ (repeats included)."""
        inbox = self.recipient.folder / "inbox"
        if not inbox.is_dir():
            # Seen once (disk-full run, 2,000 documents): every entry counted while waiting,
            # then none read at the count. Say what the folder held instead of "all lost".
            folder = self.recipient.folder
            held = sorted(os.listdir(folder)) if folder.is_dir() else "(no folder)"
            raise AssertionError(f"{inbox} is not a folder at the count; {folder} holds {held}")
        return inbox_documents(self.recipient.folder)

    def status_files(self) -> int:
        return len(list((self.sender.folder / "status").glob("*.edxml")))

    async def until_delivered(self, count: int, what: str = "") -> None:
        """Wait until ``count`` entries are in the inbox, failing if nothing moves for
        ``VDX_FAULTS_STALL_SECONDS``."""
        await self._until(lambda: self.delivered_entries(), count, what or f"{count} delivered")

    async def until_complete(self, expected_statuses: int | None = None) -> None:
        """Every document delivered and every status 01 back in the sender's status/."""
        await self.until_delivered(self.documents, "every document delivered")
        wanted = self.documents if expected_statuses is None else expected_statuses
        await self._until(self.status_files, wanted, "every status 01 back at the sender")
        # A 01 sent twice (allowed: docs/adapter.md) makes the file count run ahead.
        await self._until(
            lambda: len(_arrivals(self.sender.folder)), wanted, "a 01 for every document"
        )
        await asyncio.sleep(2)  # anything delivered twice would be written by now

    async def _until(self, progress: Callable[[], int], count: int, what: str) -> None:
        last, moved = -1, time.monotonic()
        while (now := progress()) < count:
            if now != last:
                last, moved = now, time.monotonic()
            elif time.monotonic() - moved > STALL_TIMEOUT:
                raise AssertionError(
                    f"stalled at {now} of {count} waiting for {what}\n"
                    f"--- sender\n{self.sender.tail()}\n--- recipient\n{self.recipient.tail()}"
                )
            await asyncio.sleep(0.25)

    def result(self, scenario: str, notes: str = "") -> Result:
        """Count from the folders (not from logs): what arrived, how often, and its 01."""
        inbox = Counter(self.delivered_documents())
        expected = self.expected()
        delivered = set(inbox) & expected
        arrived = _arrivals(self.sender.folder) & delivered
        result = Result(
            scenario=scenario,
            sent=len(expected),
            delivered=len(delivered),
            duplicates=sum(count - 1 for count in inbox.values()),
            lost=len(expected - delivered),
            statuses=len(arrived),
            seconds=round(time.monotonic() - self.started_at, 1),
            notes=notes,
        )
        RESULTS.append(result)
        return result


@dataclass(frozen=True)
class Outcome:
    at_fault: int  # inbox entries when the fault came
    note: str  # what the fault reported
    router_codes: list[int | None]  # each router's exit code at the end (None: killed)
    stop_problems: list[str]  # adapters that did not stop cleanly

    def check(
        self,
        result: Result,
        *,
        router_codes: Sequence[int | None] = (0,),
        clean_stop: bool = True,
        logs: str = "",
    ) -> None:
        """What every scenario demands at the end: the routers stopped as expected (0 after
        SIGTERM; None for one killed for good), the adapters stopped cleanly, and nothing
        was lost, delivered twice or left without its status 01."""
        assert self.router_codes == list(router_codes), logs
        assert not clean_stop or not self.stop_problems, self.stop_problems
        assert result.ok, result


async def run_with_fault(
    run: Run, routers: Sequence[RouterProcess], fault: Callable[[], Awaitable[str]]
) -> Outcome:
    """Start the routers and both adapters, drop every document, run ``fault`` once a
    quarter of them is delivered, wait until every document and status 01 arrived, and
    stop everything (SIGTERM)."""
    for router in routers:
        router.start()
    await asyncio.gather(*(router.started() for router in routers))
    run.start_adapters()
    try:
        await run.adapters_serving()
        run.drop_documents()
        await run.until_delivered(run.documents // 4)
        at_fault = run.delivered_entries()
        note = await fault()
        await run.until_complete()
    finally:
        problems = run.stop_adapters()
        codes = [router.stop() for router in routers]
    assert at_fault < run.documents, "the fault came too late to prove anything"
    return Outcome(at_fault, note, codes, problems)


@contextlib.asynccontextmanager
async def exchange_on(
    amqp_url: str, root: Path, *, certificates: bool = True
) -> AsyncIterator[Exchange]:
    """A fresh :class:`Exchange` on the broker at ``amqp_url`` (own prefix and broker users,
    provisioned through ``VDX_MANAGEMENT_URL``), removed afterwards."""
    exchange = await Exchange.create(amqp_url, root / "pki", certificates=certificates)
    try:
        yield exchange
    finally:
        await exchange.close()


def _count_entries(folder: Path) -> int:
    try:
        return sum(1 for _ in os.scandir(folder))
    except FileNotFoundError:
        return 0


def _arrivals(folder: Path) -> set[str]:
    """Documents a status 01 about reached ``folder``'s status/."""
    found: set[str] = set()
    for path in (folder / "status").glob("*.json"):
        record: dict[str, Any] = json.loads(path.read_text())
        if record["status_code"] == "01":
            found.add(str(record["document_id"]))
    return found


async def find_event(
    exchange: Exchange, code: str, type_: EventType, *, document_id: str, timeout: float
) -> Event:
    """Consume the operators' events queue (acking: the run is over) until the event of
    ``type_`` for ``code`` about ``document_id`` comes; thousands of routed events come
    before it. ``code``'s own queue is its drop-folder adapter's to consume."""
    channel = await exchange.channel(exchange.accounts()[0])
    await channel.set_qos(prefetch_count=500)
    queue = await channel.get_queue(exchange.names.events_operators_queue, ensure=False)

    async def scan() -> Event:
        async with queue.iterator() as messages:
            async for message in messages:
                await message.ack()
                for event in decode_events(message.body):
                    if (event.type, event.party, event.document_id) == (
                        type_,
                        code,
                        document_id,
                    ):
                        return event
        raise AssertionError("the events queue went away")

    try:
        return await asyncio.wait_for(scan(), timeout)
    except TimeoutError:
        raise AssertionError(f"no {type_} event about {document_id} in {timeout:.0f}s") from None


@contextlib.asynccontextmanager
async def postgres_database() -> AsyncIterator[str]:
    """A fresh PostgreSQL database for routers to share (dropped afterwards): its URL."""
    import asyncpg  # type: ignore[import-untyped]

    name = f"vdxfaults_{uuid.uuid4().hex[:10]}"
    admin_url = POSTGRES_URL.replace("+asyncpg", "")
    admin = await asyncpg.connect(admin_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        yield POSTGRES_URL.rsplit("/", 1)[0] + f"/{name}"
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
