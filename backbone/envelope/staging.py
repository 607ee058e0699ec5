"""The recipient's staging area for chunked documents: chunks on disk, in any order, until a
document is whole; then decrypted in order into place atomically.

Layout under ``root`` (one directory per document, named by its envelope id)::

    <envelope id>/header      the header message as received (verified before it was kept)
    <envelope id>/started     when staging began (ISO 8601, from the injected clock)
    <envelope id>/<index>.chunk   each chunk's ciphertext, checked against the header

Every file is written under a dot-name, flushed to disk, then renamed, and a document's
directory is renamed into place only once its header is in it: after a crash, what is
there is whole, and :class:`Staging` rebuilds its state from it (dot-names are leftovers
and deleted; each chunk is checked against the header again). What :meth:`Staging.begin`
and :meth:`Staging.accept` report kept is on disk before they return, names included: the
document's directory is fsynced before it is renamed into place and ``root`` after, the
document's directory again after each chunk's rename. The adapter acknowledges a header or
chunk message once it is kept, so a power cut must not lose it: the broker would not send
it again, and the document could only expire. Delivering renames the whole document into
place and fsyncs its directory before the staged chunks are removed (and ``root`` after),
so a power cut never leaves neither.

Given the content key when staging begins (:meth:`Staging.begin`), each chunk is also
decrypted as it is staged, into ``<envelope id>/.plain`` at its place in the document, so
that delivering a whole document is a flush and a rename instead of a second pass over
every chunk. The decryption runs on a thread of its own, behind the staging (at most
``_DECRYPTS_AHEAD`` chunks), so the next chunk is checked and kept meanwhile; delivery and
removal wait for it. That file is a cache, never the record: it is a dot-name (a crash deletes it,
and its chunks are then decrypted at delivery as without a key), the key is held in memory
only, and a chunk that does not decrypt drops the cache (delivery decrypts again and refuses
the document as before). It takes as much disk as delivering took before it (the plaintext
beside the staged ciphertext), only earlier.

The disk budget is reserved per document when it starts (its whole announced ciphertext),
so a document that fits can always finish, and many half-sent documents cannot together
exceed the budget.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Final

import structlog

from backbone.clock import Clock
from backbone.durable import fsync_path, write_all, write_atomically
from backbone.envelope import algorithms, stream_aead
from backbone.envelope.chunk_wire import (
    Chunk,
    VerifiedChunkedHeader,
    check_chunk,
    read_chunked_header,
)
from backbone.envelope.chunked import ChunkedHeader, stream_aad
from backbone.errors import (
    BackboneError,
    ChunkError,
    DecryptionError,
    Reason,
    StagingError,
)

__all__ = ["Expired", "Staging"]

_HEADER: Final = "header"
_STARTED: Final = "started"
_CHUNK_SUFFIX: Final = ".chunk"
_PLAIN: Final = ".plain"  # the chunks decrypted as they were staged (a cache: a dot-name)
_DECRYPTS_AHEAD: Final = 2  # chunks staged and not yet decrypted, at most
_READ_BYTES: Final = 1 << 20

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Expired:
    """A document that stayed incomplete past the timeout; its chunks are gone."""

    header: ChunkedHeader
    missing: tuple[int, ...]  # the chunk indexes that never arrived


@dataclass(slots=True)
class _Document:
    header: ChunkedHeader
    started: datetime
    present: set[int] = field(default_factory=set)
    # The content key while chunks are decrypted as they are staged (memory only), and the
    # chunks already in ``.plain``; None once that stopped (no key, or a chunk failed).
    key: bytes | None = field(default=None, repr=False)
    decrypted: set[int] = field(default_factory=set)

    @property
    def complete(self) -> bool:
        return len(self.present) == self.header.chunk_count


class Staging:
    """Chunked documents being received, in ``root``, within ``budget_bytes`` of disk;
    those incomplete for longer than ``timeout`` (by ``clock``) can be expired."""

    def __init__(self, root: Path, *, budget_bytes: int, timeout: timedelta, clock: Clock) -> None:
        self._root = root
        self._budget = budget_bytes
        self._timeout = timeout
        self._clock = clock
        self._documents: dict[str, _Document] = {}
        self._decryptor: ThreadPoolExecutor | None = None  # started at the first key
        self._decrypting: deque[tuple[_Document, int, Future[bool]]] = deque()
        root.mkdir(parents=True, exist_ok=True)
        self._rebuild()

    @property
    def reserved_bytes(self) -> int:
        """Disk the staged documents may take when whole (their announced ciphertext)."""
        return sum(document.header.payload_size for document in self._documents.values())

    def staged(self) -> list[str]:
        """The envelope ids of the documents staged, whole or not."""
        return sorted(self._documents)

    def begin(self, verified: VerifiedChunkedHeader, *, content_key: bytes | None = None) -> bool:
        """Start staging the document of a verified header; False if it already is. Raise
        :class:`StagingError` (``staging_full``) when it would exceed the disk budget.
        ``content_key`` (the header's, checked against its commitment): each chunk is
        decrypted as it is staged (module docstring)."""
        header = verified.header
        if header.envelope_id in self._documents:
            return False
        if self.reserved_bytes + header.payload_size > self._budget:
            raise StagingError(
                f"envelope {header.envelope_id} needs {header.payload_size} bytes of staging; "
                f"{self._budget - self.reserved_bytes} of the budget ({self._budget}) are "
                "free",
                reason=Reason.STAGING_FULL,
            )
        started = self._clock()
        building = Path(tempfile.mkdtemp(prefix=".", dir=self._root))
        write_atomically(building / _HEADER, verified.body, sync_directory=False)
        write_atomically(building / _STARTED, started.isoformat().encode(), sync_directory=False)
        fsync_path(building)  # both names in it, before it is renamed into place
        building.rename(self._root / header.envelope_id)
        fsync_path(self._root)  # the document's name: begun is kept (module docstring)
        document = _Document(header, started)
        if content_key is not None and algorithms.key_commitment(content_key) == (
            header.key_commitment
        ):
            document.key = content_key
        self._documents[header.envelope_id] = document
        log.info("staging_started", envelope_id=header.envelope_id, chunks=header.chunk_count)
        return True

    def accept(self, chunk: Chunk) -> bool:
        """Keep ``chunk`` if it is the one its document's header signs for at its index;
        False for a duplicate (dropped). :class:`ChunkError` says why a chunk is refused."""
        document = self._documents.get(chunk.envelope_id)
        if document is None:
            raise ChunkError(
                f"chunk {chunk.index} names envelope {chunk.envelope_id}, which is not being "
                "staged (no verified header, or already delivered or expired)",
                reason=Reason.CHUNK_FOREIGN,
            )
        check_chunk(document.header, chunk)
        if chunk.index in document.present:
            return False
        # The chunk and its name on disk before it is reported kept (module docstring).
        write_atomically(
            self._chunk_path(chunk.envelope_id, chunk.index), chunk.ciphertext, sync_directory=True
        )
        document.present.add(chunk.index)
        if document.key is not None:
            self._decrypt_early(document, chunk)
        return True

    def _decrypt_early(self, document: _Document, chunk: Chunk) -> None:
        """``chunk`` decrypted into its place in ``.plain`` on the decrypting thread, once
        fewer than ``_DECRYPTS_AHEAD`` are under way (:meth:`_settle` records them)."""
        header = document.header
        self._settle(_DECRYPTS_AHEAD - 1)
        if document.key is None:  # an earlier chunk dropped the cache meanwhile
            return
        if self._decryptor is None:
            self._decryptor = ThreadPoolExecutor(1, thread_name_prefix="staging-decrypt")
        future = self._decryptor.submit(
            _decrypt_into,
            self._root / header.envelope_id / _PLAIN,
            document.key,
            header,
            chunk,
        )
        self._decrypting.append((document, chunk.index, future))

    def _settle(self, most: int) -> None:
        """Wait for the early decryptions under way until at most ``most`` remain; a chunk
        that did not decrypt (or write) drops its document's cache: delivery then decrypts
        the staged chunks, and refuses the document as it would have."""
        while len(self._decrypting) > most:
            document, index, future = self._decrypting.popleft()
            if future.result() and document.key is not None:
                document.decrypted.add(index)
            else:
                document.key = None
                document.decrypted.clear()

    def close(self) -> None:
        """Finish the early decryptions under way and stop the decrypting thread (it is
        started again at the next chunk): nothing writes into staging after this."""
        self._settle(0)
        if self._decryptor is not None:
            self._decryptor.shutdown(wait=True)
            self._decryptor = None

    def missing(self, envelope_id: str) -> list[int]:
        document = self._document(envelope_id)
        return [i for i in range(document.header.chunk_count) if i not in document.present]

    def is_complete(self, envelope_id: str) -> bool:
        return self._document(envelope_id).complete

    def header(self, envelope_id: str) -> ChunkedHeader:
        return self._document(envelope_id).header

    def deliver(self, envelope_id: str, content_key: bytes, destination: Path) -> Path:
        """Decrypt the whole document in order into a temporary file beside
        ``destination``, then rename it into place: no partial document is ever visible.
        The staging space is reclaimed after. ``content_key`` is the recipient's, from
        :func:`~backbone.envelope.unseal.unwrap_content_key` on the verified header."""
        document = self._document(envelope_id)
        header = document.header
        if not document.complete:
            missing = _listed(self.missing(envelope_id))
            raise StagingError(
                f"envelope {envelope_id} is incomplete: chunk(s) {missing} have not arrived",
                reason=Reason.DOCUMENT_INCOMPLETE,
            )
        if algorithms.key_commitment(content_key) != header.key_commitment:
            raise DecryptionError(
                f"the key given for envelope {envelope_id} is not the one its header commits to"
            )
        self._settle(0)
        if self._deliver_decrypted(document, content_key, destination):
            return destination
        handle, temporary = tempfile.mkstemp(prefix=".", dir=destination.parent)
        try:
            with os.fdopen(handle, "wb") as out:
                for plaintext in self._decrypted(header, content_key):
                    out.write(plaintext)
                    del plaintext  # not alive while the next chunk is read
                out.flush()
                os.fsync(out.fileno())
            os.replace(temporary, destination)
            fsync_path(destination.parent)  # delivered for good before the chunks go
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        self._remove(envelope_id)
        log.info("staging_delivered", envelope_id=envelope_id, size=header.document_size)
        return destination

    def _deliver_decrypted(
        self, document: _Document, content_key: bytes, destination: Path
    ) -> bool:
        """Every chunk decrypted as it was staged with this very key: ``.plain`` flushed,
        checked for its size and renamed to ``destination``; False when not (the caller
        decrypts the staged chunks)."""
        header = document.header
        if document.key != content_key or len(document.decrypted) != header.chunk_count:
            return False
        plain = self._root / header.envelope_id / _PLAIN
        try:
            fd = os.open(plain, os.O_RDONLY)
            try:
                os.fsync(fd)
                size = os.fstat(fd).st_size
            finally:
                os.close(fd)
            if size != header.document_size:
                return False
            os.replace(plain, destination)  # the same file system: staging_dir holds both
            fsync_path(destination.parent)  # delivered for good before the chunks go
        except OSError:
            return False
        self._remove(header.envelope_id)
        log.info("staging_delivered", envelope_id=header.envelope_id, size=header.document_size)
        return True

    def expire(self) -> list[Expired]:
        """Remove every incomplete document staged longer ago than the timeout, reclaiming
        its space; what was expired, for the event to its sender and to operators."""
        now = self._clock()
        expired = [
            Expired(document.header, tuple(self.missing(envelope_id)))
            for envelope_id, document in self._documents.items()
            if not document.complete and now - document.started >= self._timeout
        ]
        for gone in expired:
            self._remove(gone.header.envelope_id)
            log.warning(
                "staging_expired",
                envelope_id=gone.header.envelope_id,
                reason=Reason.DOCUMENT_INCOMPLETE.value,
                missing=len(gone.missing),
            )
        return expired

    def _decrypted(self, header: ChunkedHeader, key: bytes) -> Iterator[bytes]:
        prefix = header.nonce_prefix
        aad = stream_aad(header.envelope_id, header.document_size, header.chunk_size)
        last = header.chunk_count - 1
        for index in range(header.chunk_count):
            ciphertext = self._chunk_path(header.envelope_id, index).read_bytes()
            plaintext = stream_aead.decrypt_chunk(
                key, prefix, aad, index, ciphertext, last=index == last
            )
            del ciphertext  # one chunk's ciphertext or plaintext alive at a time, not both
            yield plaintext
            del plaintext

    def _document(self, envelope_id: str) -> _Document:
        try:
            return self._documents[envelope_id]
        except KeyError:
            raise StagingError(
                f"envelope {envelope_id} is not being staged", reason=Reason.CHUNK_FOREIGN
            ) from None

    def _chunk_path(self, envelope_id: str, index: int) -> Path:
        return self._root / envelope_id / f"{index:05d}{_CHUNK_SUFFIX}"

    def _remove(self, envelope_id: str) -> None:
        self._settle(0)  # no decryption writes into a directory being deleted
        del self._documents[envelope_id]
        shutil.rmtree(self._root / envelope_id, ignore_errors=True)
        fsync_path(self._root)  # gone for good: a restart does not find it complete again

    def _rebuild(self) -> None:
        """State from the directory: whole documents back, leftovers of a crash deleted."""
        for entry in sorted(self._root.iterdir()):
            if entry.name.startswith("."):
                _delete(entry)  # a document or file that was never renamed into place
                continue
            try:
                document = self._restore(entry)
            except (BackboneError, OSError, ValueError) as exc:
                log.warning("staging_unreadable_removed", path=entry.name, error=str(exc))
                _delete(entry)
                continue
            self._documents[document.header.envelope_id] = document

    def _restore(self, directory: Path) -> _Document:
        header = read_chunked_header((directory / _HEADER).read_bytes()).header
        if header.envelope_id != directory.name:
            raise ValueError(f"holds the header of envelope {header.envelope_id}")
        started = datetime.fromisoformat((directory / _STARTED).read_text("ascii"))
        document = _Document(header, started)
        for path in directory.iterdir():
            if path.name.startswith("."):
                path.unlink()
            elif path.name.endswith(_CHUNK_SUFFIX):
                index = int(path.name.removesuffix(_CHUNK_SUFFIX))
                if _chunk_file_matches(header, index, path):
                    document.present.add(index)
                else:
                    path.unlink()
        return document


def _decrypt_into(plain: Path, key: bytes, header: ChunkedHeader, chunk: Chunk) -> bool:
    """``chunk``'s plaintext written at its place in ``plain``; False when it does not
    decrypt or cannot be written (the caller drops the cache)."""
    aad = stream_aad(header.envelope_id, header.document_size, header.chunk_size)
    last = chunk.index == header.chunk_count - 1
    try:
        plaintext = stream_aead.decrypt_chunk(
            key, header.nonce_prefix, aad, chunk.index, chunk.ciphertext, last=last
        )
        fd = os.open(plain, os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            write_all(fd, plaintext, chunk.index * header.chunk_size)
        finally:
            os.close(fd)
    except (ChunkError, OSError):
        return False
    return True


def _chunk_file_matches(header: ChunkedHeader, index: int, path: Path) -> bool:
    if not 0 <= index < header.chunk_count:
        return False
    if path.stat().st_size != header.chunk_ciphertext_size(index):
        return False
    digest = hashlib.sha256()
    with path.open("rb") as chunk:
        while block := chunk.read(_READ_BYTES):
            digest.update(block)
    return digest.hexdigest() == header.chunk_digests[index]


def _delete(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def _listed(indexes: list[int], limit: int = 10) -> str:
    shown = ", ".join(str(index) for index in indexes[:limit])
    return shown + (f" and {len(indexes) - limit} more" if len(indexes) > limit else "")
