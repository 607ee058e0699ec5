"""Taking up the directory versions the operator applies, live, in every process (docs/
directory.md, "Applying a new version"): router replicas, adapters and gateways alike.

Every process reads the versions stream (``Names.directory_stream``, bound to the directory
fanout exchange) from its last version on: a stream is read without being consumed, so each
reader receives every version, and one started after a version was applied finds it there
(catch-up). Each version is checked against the running one in another process
(:mod:`backbone.directory.check_apart`: seconds of Python at country size, which in a thread
would hold the interpreter lock the event loop routes with); a bad one is refused (one error
logged, counted) and the running version stays; a good one is loaded here (in a worker
thread, a fraction of a second), saved where the process loads its directory at start and
swapped in."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import structlog
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage, AbstractQueue

from backbone.directory import Directory, Format, dump_directory, format_of, parse_directory
from backbone.directory.check_apart import check_apart
from backbone.durable import write_atomically
from backbone.errors import DirectoryError, UnknownAgencyError
from backbone.observability import metrics
from backbone.wire.names import H_DIRECTORY_FORMAT, H_DIRECTORY_VERSION, Names

__all__ = ["DirectoryUpdates", "LiveDirectory", "follow_versions"]

log = structlog.get_logger(__name__)

_FORMATS: dict[str, Format] = {"json": "json", "yaml": "yaml"}
# A version is up to a few MB: a stream needs a prefetch, and two is enough to keep one ready.
_PREFETCH = 2


async def follow_versions(
    channel: AbstractChannel,
    names: Names,
    on_version: Callable[[AbstractIncomingMessage], Awaitable[None]],
) -> tuple[AbstractQueue, str]:
    """Read the versions stream on ``channel`` (its own: the prefetch is set on it) from its
    last version on, into ``on_version``; returns the queue and consumer tag. The read
    starts again from the last version after a reconnection, so a version published
    meanwhile is not missed. Reading needs only the read permission on the stream."""
    await channel.set_qos(prefetch_count=_PREFETCH)
    # ensure=True (a passive declare): a robust channel consumes again after a reconnection
    # only from queues it looked up itself.
    queue = await channel.get_queue(names.directory_stream, ensure=True)
    tag = await queue.consume(on_version, arguments={"x-stream-offset": "last"})
    return queue, tag


@dataclass(frozen=True, slots=True)
class LiveDirectory:
    """Where a replica's running version lives on disk (``None``: kept in memory only, as in
    tests that build a router by hand)."""

    path: Path | None = None

    @property
    def base_dir(self) -> Path | None:
        # Relative certificate paths in a received version are read as at start.
        return None if self.path is None else self.path.parent


class DirectoryUpdates:
    """Receives versions for one process; ``swap`` installs an accepted one. ``component``
    names its log lines (``router.directory_applied``, ``adapter.directory_refused``)."""

    def __init__(
        self,
        running: Callable[[], Directory],
        swap: Callable[[Directory], None],
        *,
        live: LiveDirectory,
        component: str,
    ) -> None:
        self._running = running
        self._swap = swap
        self._live = live
        self._component = component
        self._lock = asyncio.Lock()  # one version at a time: each is checked against the last
        self._catching_up = True  # the first version read is the stream's last, from before
        metrics.DIRECTORY_REVISION.set(running().version.revision)
        for outcome in ("applied", "refused"):  # both series exist before the first version
            metrics.DIRECTORY_VERSIONS.labels(outcome)

    async def on_version(self, message: AbstractIncomingMessage) -> None:
        """Check and take up one version; acknowledged either way (a refused version is
        logged and counted, never retried: the operator applies a corrected one)."""
        async with self._lock:
            try:
                if self._running_already(message):
                    return
                directory = await self._accept(message)
            except DirectoryError as error:
                metrics.DIRECTORY_VERSIONS.labels("refused").inc()
                log.error(
                    f"{self._component}.directory_refused",
                    running=self._running().version.id,
                    publisher=message.user_id,
                    error=error.message,
                    outcome="refused",
                )
            else:
                self._swap(directory)
                metrics.DIRECTORY_VERSIONS.labels("applied").inc()
                metrics.DIRECTORY_REVISION.set(directory.version.revision)
                log.info(
                    f"{self._component}.directory_applied",
                    version=directory.version.id,
                    agencies=len(directory),
                    saved_to=None if self._live.path is None else str(self._live.path),
                    outcome="applied",
                )
            finally:
                self._catching_up = False
                await message.ack()

    def _running_already(self, message: AbstractIncomingMessage) -> bool:
        """The version this process runs (read again after a reconnection), or, at start,
        a last version no newer than the file it loaded: nothing to take up, nothing to
        refuse. The id is the publisher's claim, trusted only to skip, never to apply."""
        claimed = str((message.headers or {}).get(H_DIRECTORY_VERSION, ""))
        running = self._running().version
        revision = claimed.partition(":")[0]
        behind = self._catching_up and revision.isdigit() and int(revision) <= running.revision
        if claimed != running.id and not behind:
            return False
        log.info(
            f"{self._component}.directory_current",
            running=running.id,
            received=claimed,
            outcome="kept",
        )
        return True

    async def _accept(self, message: AbstractIncomingMessage) -> Directory:
        publisher = message.user_id
        running = self._running()
        if publisher is None or _is_an_agency(running, publisher):
            # The broker lets only the operator's account write there; this is the backstop.
            raise DirectoryError(
                f"a directory version published by {publisher or '(no user_id)'!r} is not the "
                "operator's; refused"
            )
        format = _FORMATS.get(str((message.headers or {}).get(H_DIRECTORY_FORMAT)))
        if format is None:
            raise DirectoryError(
                f"a directory version without a known {H_DIRECTORY_FORMAT} header (json or "
                "yaml); refused"
            )
        source = "the version received"
        # The check (both versions loaded, then compared) runs in another process; only the
        # accepted version's own load runs here, in a worker thread.
        verdict = await check_apart(
            running, message.body, format, source=source, base_dir=self._live.base_dir
        )
        if verdict.error is not None:
            raise DirectoryError(verdict.error)
        if verdict.problems:
            raise DirectoryError(
                f"version {verdict.version_id}: {len(verdict.problems)} problem(s) against the "
                f"running version {running.version.id}: {'; '.join(verdict.problems)}"
            )
        return await asyncio.to_thread(self._load_and_save, message.body, format, source)

    def _load_and_save(self, data: bytes, format: Format, source: str) -> Directory:
        """In a worker thread: load the accepted version, save it atomically."""
        directory = parse_directory(
            data, format=format, source=source, base_dir=self._live.base_dir
        )
        if self._live.path is not None:
            _save(self._live.path, directory, data, format)
        return directory


def _is_an_agency(directory: Directory, account: str) -> bool:
    try:
        directory.system_of_account(account)
    except UnknownAgencyError:
        return False
    return True


def _save(path: Path, directory: Directory, data: bytes, format: Format) -> None:
    """Replace ``path`` by the new version in one rename (a crash leaves the old or the new
    file, never half of one), in the file's own format."""
    partial = path.with_name(f".{path.name}.partial")
    try:
        if format_of(path) == format:
            write_atomically(path, data, temporary=partial, sync_directory=False)
        else:
            dump_directory(directory.file, partial, format=format_of(path))
            os.replace(partial, path)
    except OSError as error:
        partial.unlink(missing_ok=True)
        raise DirectoryError(
            f"version {directory.version.id} cannot be saved to {path} ({error.strerror}), so "
            "a restart would lose it; refused"
        ) from None
