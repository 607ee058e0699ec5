"""A router replica taking up the directory versions the operator applies (docs/directory.md,
"Applying a new version"): each replica binds a queue of its own to the directory fanout
exchange, checks every version it receives off the event loop (0.6 s at country size), and
either keeps its running version (a bad one: one error logged, counted) or saves the new
file where it loads it at start and swaps the directory the pipeline reads, once per
envelope, so each envelope is routed against exactly one version."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import structlog
from aio_pika.abc import AbstractIncomingMessage

from backbone.directory import Directory, Format, dump_directory, format_of, parse_directory
from backbone.directory.succession import succession
from backbone.errors import DirectoryError, UnknownAgencyError
from backbone.observability import metrics
from backbone.wire.names import H_DIRECTORY_FORMAT

__all__ = ["DirectoryUpdates", "LiveDirectory"]

log = structlog.get_logger(__name__)

_FORMATS: dict[str, Format] = {"json": "json", "yaml": "yaml"}


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
    """Receives versions for one replica; ``swap`` installs an accepted one."""

    def __init__(
        self,
        running: Callable[[], Directory],
        swap: Callable[[Directory], None],
        *,
        live: LiveDirectory,
    ) -> None:
        self._running = running
        self._swap = swap
        self._live = live
        self._lock = asyncio.Lock()  # one version at a time: each is checked against the last
        metrics.DIRECTORY_REVISION.set(running().version.revision)
        for outcome in ("applied", "refused"):  # both series exist before the first version
            metrics.DIRECTORY_VERSIONS.labels(outcome)

    async def on_version(self, message: AbstractIncomingMessage) -> None:
        """Check and take up one version; acknowledged either way (a refused version is
        logged and counted, never retried: the operator applies a corrected one)."""
        async with self._lock:
            try:
                directory = await self._accept(message)
            except DirectoryError as error:
                metrics.DIRECTORY_VERSIONS.labels("refused").inc()
                log.error(
                    "router.directory_refused",
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
                    "router.directory_applied",
                    version=directory.version.id,
                    agencies=len(directory),
                    saved_to=None if self._live.path is None else str(self._live.path),
                    outcome="applied",
                )
            finally:
                await message.ack()

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
        return await asyncio.to_thread(self._check_and_save, running, message.body, format)

    def _check_and_save(self, running: Directory, data: bytes, format: Format) -> Directory:
        """In a worker thread: parse, check against ``running``, save atomically."""
        directory = parse_directory(
            data, format=format, source="the version received", base_dir=self._live.base_dir
        )
        problems = succession(running, directory).problems
        if problems:
            raise DirectoryError(
                f"version {directory.version.id}: {len(problems)} problem(s) against the "
                f"running version {running.version.id}: {'; '.join(problems)}"
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
            with partial.open("wb") as out:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
        else:
            dump_directory(directory.file, partial, format=format_of(path))
        os.replace(partial, path)
    except OSError as error:
        partial.unlink(missing_ok=True)
        raise DirectoryError(
            f"version {directory.version.id} cannot be saved to {path} ({error.strerror}), so "
            "a restart would lose it; refused"
        ) from None
