"""Large sends kept on disk until every message is confirmed, so that a sender killed
half-way finishes the *same* envelope after its restart (docs/large-documents.md).

A chunked envelope cannot be sealed again: another envelope id and other digests under the
same DocumentId are ``duplicate_conflict`` at the router. The content key is never kept;
what is kept is what goes on the wire, already signed and encrypted, so publishing it again
needs no key at all::

    staging_dir/outgoing/pending/<sha256 of the send's key>/
        header.msg            the signed header message
        chunk-000000.msg ...  every chunk message, encrypted
        ready.json            written last (atomically): the key, the source's size, the
                              envelope id and the message count; without it nothing of the
                              send was published, and the directory is deleted
        confirmed             how many messages (header first) the broker confirmed

The router answers a header it routed as a duplicate without resetting the document and
drops the chunks it already passed, so a message confirmed but not yet counted here is
harmless when published again.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import dataclass
from pathlib import Path

from adapters.dropfolder.files import atomic_write_bytes
from backbone.envelope.chunk_wire import read_chunked_header
from backbone.envelope.chunked import ChunkedHeader
from backbone.envelope.split import SealedDocument

__all__ = ["PendingSend", "PendingSends"]

_READY = "ready.json"
_CONFIRMED = "confirmed"
_HEADER = "header.msg"


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

    def write(self, key: str, sealed: SealedDocument) -> PendingSend:
        """Every message of ``sealed`` written and fsynced under ``key``, not yet ready: a
        crash before :meth:`make_ready` leaves a directory :meth:`find` deletes."""
        directory = self._directory(key)
        shutil.rmtree(directory, ignore_errors=True)
        directory.mkdir(parents=True)
        _write_durably(directory / _HEADER, sealed.header_message)
        for index, message in enumerate(sealed.chunk_messages()):
            _write_durably(directory / _chunk_name(index), message)
            del message
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


def _write_durably(path: Path, data: bytes) -> None:
    """``data`` in ``path`` whole or not at all, the rename fsynced."""
    atomic_write_bytes(path, data, scratch=path.parent)
