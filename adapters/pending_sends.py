"""Large sends kept on disk until every message is confirmed, so that a sender killed
half-way finishes the *same* envelope after its restart (docs/large-documents.md).

A chunked envelope cannot be sealed again: another envelope id and other digests under the
same DocumentId are ``duplicate_conflict`` at the router. The content key is never kept;
what is kept is what goes on the wire, already signed and encrypted, so publishing it again
needs no key at all::

    staging_dir/outgoing/pending/<sha256 of the send's key>/
        header.msg            the signed header message
        chunk-000000.msg ...  every chunk message, encrypted, written (and fsynced) as it
                              is sealed, on a thread of its own while the next is encrypted
        ready.json            written last (atomically): the key, the source's size, the
                              envelope id and the message count; without it nothing of the
                              send was published, and the directory is deleted (so a chunk
                              file needs no rename of its own: a torn one is never read)
        confirmed             how many messages (header first) the broker confirmed

The router answers a header it routed as a duplicate without resetting the document and
drops the chunks it already passed, so a message confirmed but not yet counted here is
harmless when published again.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from adapters.dropfolder.files import atomic_write_bytes
from backbone.durable import fsync_path, write_all
from backbone.envelope.chunk_wire import read_chunked_header
from backbone.envelope.chunked import ChunkedHeader
from backbone.envelope.split import ChunkKeeper, SealedDocument

__all__ = ["PendingSend", "PendingSends"]

_READY = "ready.json"
_CONFIRMED = "confirmed"
_HEADER = "header.msg"
_WRITES_AHEAD = 2  # chunk messages handed to the writing thread and not yet on disk


@dataclass(frozen=True, slots=True)
class PendingSend:
    """One kept send: its messages on disk, and how many the broker confirmed."""

    directory: Path
    header: ChunkedHeader

    @property
    def message_count(self) -> int:
        return 1 + self.header.chunk_count

    def message(self, position: int) -> bytes:
        """Message ``position``: 0 is the header message, ``i + 1`` chunk ``i``."""
        name = _HEADER if position == 0 else _chunk_name(position - 1)
        return (self.directory / name).read_bytes()

    def confirmed(self) -> int:
        try:
            return int((self.directory / _CONFIRMED).read_text())
        except (FileNotFoundError, ValueError):
            return 0

    def note_confirmed(self, count: int) -> None:
        _write_durably(self.directory / _CONFIRMED, str(count).encode())

    def discard(self) -> None:
        shutil.rmtree(self.directory, ignore_errors=True)


class PendingSends:
    """The kept sends under ``root`` (``staging_dir/outgoing/pending``), by a caller's key."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def find(self, key: str, source_size: int | None) -> PendingSend | None:
        """The send kept under ``key`` for a source of ``source_size`` bytes (None: whatever
        its size), ready to be published again; a directory never made ready (nothing was
        published) or kept for another source is deleted."""
        directory = self._directory(key)
        try:
            ready = json.loads((directory / _READY).read_bytes())
            header = read_chunked_header((directory / _HEADER).read_bytes()).header
        except FileNotFoundError:
            shutil.rmtree(directory, ignore_errors=True)
            return None
        if ready.get("key") != key or source_size not in (None, ready.get("source_size")):
            shutil.rmtree(directory, ignore_errors=True)
            return None
        return PendingSend(directory, header)

    def keep(self, key: str, seal: Callable[[ChunkKeeper], SealedDocument]) -> PendingSend:
        """Seal with ``seal`` (given where to keep each chunk message as it is encrypted:
        :func:`~backbone.envelope.split.seal_file`'s ``keep``), every message written and
        fsynced under ``key``, not yet ready: a crash before :meth:`make_ready` leaves a
        directory :meth:`find` deletes. The writes run on a thread of their own, at most
        ``_WRITES_AHEAD`` messages behind the encryption."""
        directory = self._directory(key)
        shutil.rmtree(directory, ignore_errors=True)
        directory.mkdir(parents=True)
        try:
            with _ChunkWriter(directory) as writer:
                sealed = seal(writer.put)
            _write_durably(directory / _HEADER, sealed.header_message)
        except BaseException:
            shutil.rmtree(directory, ignore_errors=True)  # a seal that failed keeps nothing
            raise
        return PendingSend(directory, sealed.header)

    def make_ready(self, key: str, pending: PendingSend, source_size: int) -> None:
        """From here on a restarted sender publishes these messages again."""
        record = {
            "key": key,
            "source_size": source_size,
            "envelope_id": pending.header.envelope_id,
            "messages": pending.message_count,
        }
        _write_durably(pending.directory / _READY, json.dumps(record).encode())

    def _directory(self, key: str) -> Path:
        return self.root / hashlib.sha256(key.encode()).hexdigest()[:32]


def _chunk_name(index: int) -> str:
    return f"chunk-{index:06d}.msg"


class _ChunkWriter:
    """Chunk messages written and fsynced into ``directory`` on one thread, in order, while
    the caller encrypts the next; :meth:`put` waits when ``_WRITES_AHEAD`` are pending (so
    memory holds at most those), and raises the first write that failed. Leaving the block
    waits for every write and makes the names durable (the directory fsynced)."""

    def __init__(self, directory: Path) -> None:
        self._directory = directory
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="adapter-keep")
        self._pending: deque[Future[None]] = deque()

    def put(self, index: int, message: bytes) -> None:
        while len(self._pending) >= _WRITES_AHEAD:
            self._pending.popleft().result()
        path = self._directory / _chunk_name(index)
        self._pending.append(self._executor.submit(_write_synced, path, message))

    def __enter__(self) -> _ChunkWriter:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        try:
            while self._pending:
                future = self._pending.popleft()
                if kind is None:
                    future.result()  # a failed write fails the seal
                else:
                    future.cancel()
        finally:
            self._executor.shutdown(wait=True)
        if kind is None:
            fsync_path(self._directory)


def _write_synced(path: Path, data: bytes) -> None:
    """``data`` in ``path``, flushed to disk; no rename: ``ready.json`` is the commit."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        write_all(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_durably(path: Path, data: bytes) -> None:
    """``data`` in ``path`` whole or not at all, the rename fsynced."""
    atomic_write_bytes(path, data, scratch=path.parent)
