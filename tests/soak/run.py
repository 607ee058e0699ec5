"""The soak run: a router and four drop-folder adapters as processes, steady mixed traffic
(tests/soak/traffic.py), one router kill and restart and one cut of the broker connections
in the middle third, a sample every interval, then the count of what arrived.

The router and the sending adapter (G22) reach the broker through a TCP proxy
(tests/faults/proxy.py), so one cut resets both their connections; the recipients' adapters
and this process connect directly.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from adapters.client import AdapterClient
from backbone.broker.management import ManagementClient
from tests.faults.harness import RouterProcess, exchange_on
from tests.faults.proxy import TcpProxy
from tests.soak.counts import Counts, count, unanswered
from tests.soak.sampling import Sample, Sampler, Watched
from tests.soak.traffic import G01, G22, RECIPIENTS, Ledger, Traffic
from tests.support import Deployment, Exchange
from tests.support.adapter_process import AdapterProcess
from tests.support.ports import free_ports

__all__ = ["Cast", "Settings", "SoakRun", "soak"]

RESTART_AT, CUT_AT = 0.45, 0.55  # shares of the run: both in the middle third (growth.py)
CUT_SECONDS = 5.0
STALL_SECONDS = 120.0  # the drain at the end fails when nothing moves this long


@dataclass(frozen=True)
class Settings:
    minutes: float
    rate: float  # steps of the traffic cycle per second
    interval: float  # seconds between samples
    amqp_url: str
    root: Path  # logs, folders, store


@dataclass
class SoakRun:
    settings: Settings
    samples: list[Sample]
    counts: Counts
    events: list[tuple[float, str]] = field(default_factory=list)  # (seconds, what happened)
    seconds: float = 0.0
    drain_seconds: float = 0.0


async def soak(settings: Settings, say: Callable[[str], None]) -> SoakRun:
    root = settings.root
    async with (
        exchange_on(settings.amqp_url, root) as exchange,
        TcpProxy(_host_port(settings.amqp_url)) as proxy,
    ):
        proxied = _with_port(settings.amqp_url, proxy.port)
        ports = free_ports(1 + 1 + len(RECIPIENTS))
        router = RouterProcess(exchange, root, amqp_url=proxied, settings={"http_port": ports[0]})
        through_proxy = Deployment.without_router(
            dataclasses.replace(exchange, amqp_url=proxied), root
        )
        direct = Deployment.without_router(exchange, root)
        sender = AdapterProcess(through_proxy, G22, "sender", http_port=ports[1])
        recipients = {
            code: AdapterProcess(direct, code, f"recipient-{code}", http_port=port)
            for code, port in zip(RECIPIENTS, ports[2:], strict=True)
        }
        adapters = [sender, *recipients.values()]
        router.start()
        await router.started()
        for adapter in adapters:
            adapter.start()
        try:
            await asyncio.gather(*(adapter.serving() for adapter in adapters))
            say(f"router and {len(adapters)} adapters up; traffic for {settings.minutes} min")
            watched = [
                Watched("router", _pid_of(router), _metrics_url(ports[0])),
                Watched("G22", _pid_of(sender), _metrics_url(ports[1])),
                *(
                    Watched(code, _pid_of(adapter), _metrics_url(port))
                    for (code, adapter), port in zip(recipients.items(), ports[2:], strict=True)
                ),
            ]
            cast = Cast(proxy, router, sender, recipients, watched)
            return await _drive(settings, exchange, cast, say)
        finally:
            for adapter in adapters:
                with contextlib.suppress(AssertionError):
                    adapter.stop()
            with contextlib.suppress(AssertionError):
                router.stop()


@dataclass(frozen=True)
class Cast:
    """The processes of a run, and the proxy between some of them and the broker."""

    proxy: TcpProxy
    router: RouterProcess
    sender: AdapterProcess
    recipients: dict[str, AdapterProcess]
    watched: list[Watched]


async def _drive(
    settings: Settings, exchange: Exchange, cast: Cast, say: Callable[[str], None]
) -> SoakRun:
    client = AdapterClient(Deployment.without_router(exchange, settings.root).config(G01))
    await client.start()
    traffic = Traffic(exchange, cast.sender.folder, client)
    listeners = await traffic.listen()
    try:
        return await _measure(settings, traffic, cast, say)
    finally:
        for task in listeners:
            task.cancel()
        await asyncio.gather(*listeners, return_exceptions=True)
        await client.close()


async def _measure(
    settings: Settings, traffic: Traffic, cast: Cast, say: Callable[[str], None]
) -> SoakRun:
    router, proxy = cast.router, cast.proxy
    store = router.config.parent / "router.db"
    sampler = Sampler(
        cast.watched,
        ManagementClient.from_env(),
        traffic.exchange.names.prefix,
        [store, store.with_name("router.db-wal"), store.with_name("router.db-shm")],
        lambda: traffic.sent,
    )
    run = SoakRun(settings, sampler.samples, Counts())
    duration = settings.minutes * 60
    started = time.monotonic()

    def now() -> float:
        return time.monotonic() - started

    async def faults() -> None:
        await asyncio.sleep(duration * RESTART_AT)
        run.events.append((now(), "router SIGKILL"))
        say("router: SIGKILL, restart after 1 s")
        router.kill()
        await asyncio.sleep(1)
        router.start()
        await router.started()
        run.events.append((now(), "router restarted"))
        await asyncio.sleep(max(0.0, duration * CUT_AT - now()))
        run.events.append((now(), f"broker connections cut {CUT_SECONDS:.0f} s"))
        say(f"proxy: broker connections of the router and G22 cut for {CUT_SECONDS:.0f} s")
        proxy.cut()
        await asyncio.sleep(CUT_SECONDS)
        proxy.restore()

    async def sampling() -> None:
        while True:
            sample = await sampler.sample(now())
            say(_progress(sample, traffic))
            await asyncio.sleep(settings.interval - (now() % settings.interval))

    background = [asyncio.create_task(faults()), asyncio.create_task(sampling())]
    try:
        step = 0
        while (due := step / settings.rate) < duration:
            await asyncio.sleep(max(0.0, due - now()))
            await traffic.step()
            step += 1
        run.seconds = now()
        if background[0].done():
            background[0].result()  # a fault that failed fails the run
    finally:
        for task in background:
            task.cancel()
        await asyncio.gather(*background, return_exceptions=True)
        await sampler.close()
    say(f"traffic over: {traffic.sent} envelopes submitted; waiting for everything to arrive")
    folders = {code: adapter.folder for code, adapter in cast.recipients.items()}
    await _until_settled(traffic.ledger, folders, cast.sender.folder, say)
    run.drain_seconds = now() - run.seconds
    run.counts = count(traffic.ledger, folders, cast.sender.folder)
    return run


async def _until_settled(
    ledger: Ledger, folders: dict[str, Path], sender_folder: Path, say: Callable[[str], None]
) -> None:
    """Wait until every delivery, status and answer is in, or nothing moved for
    ``STALL_SECONDS`` (then the count says what is missing)."""

    def progress() -> tuple[int, int, int]:
        entries = sum(_entries(folder / "inbox") for folder in folders.values())
        statuses = _entries(sender_folder / "status") // 2 + len(ledger.raw_statuses)
        return entries, statuses, len(ledger.resent) + len(ledger.refused) - unanswered(ledger)

    wanted = (ledger.deliveries, ledger.deliveries, len(ledger.resent) + len(ledger.refused))
    last, moved = progress(), time.monotonic()
    while True:
        now = progress()
        if all(have >= want for have, want in zip(now, wanted, strict=True)):
            break
        if now != last:
            last, moved = now, time.monotonic()
        elif time.monotonic() - moved > STALL_SECONDS:
            say(f"stalled {STALL_SECONDS:.0f} s at {now} of {wanted}")
            return
        await asyncio.sleep(1)
    await asyncio.sleep(3)  # anything delivered twice would be written by now


def _progress(sample: Sample, traffic: Traffic) -> str:
    rss = " ".join(f"{name}={value / 2**20:.0f}M" for name, value in sample.rss.items())
    return (
        f"{sample.at:6.0f}s sent={traffic.sent} queued={sample.queued:.0f} "
        f"store={sample.store_bytes / 2**20:.1f}M rss: {rss}"
    )


def _entries(folder: Path) -> int:
    try:
        return sum(1 for _ in os.scandir(folder))
    except FileNotFoundError:
        return 0


def _pid_of(process: RouterProcess | AdapterProcess) -> Callable[[], int | None]:
    """The process's pid while it runs (the router's changes when it is restarted)."""

    def pid() -> int | None:
        running = process.process
        return running.pid if running is not None and running.poll() is None else None

    return pid


def _metrics_url(port: int) -> str:
    return f"http://127.0.0.1:{port}/metrics"


def _host_port(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    return parts.hostname or "127.0.0.1", parts.port or 5672


def _with_port(url: str, port: int) -> str:
    parts = urlsplit(url)
    userinfo = parts.netloc.rpartition("@")[0]
    netloc = f"{userinfo}@{parts.hostname}:{port}" if userinfo else f"{parts.hostname}:{port}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
