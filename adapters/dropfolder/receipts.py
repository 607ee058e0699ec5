"""Which receipt (``sent/*.receipt.json``, or ``failed/`` once moved) an event is about,
found without reading or ``stat``-ing the folder's thousands of receipts for every event.

Each receipt's ids are read once per file version: a receipt is only ever written by an
atomic replace (a new inode), so a directory entry's name and inode — both given by
``readdir``, no ``stat`` — say whether it is known. The receipts the sender writes are noted
as it writes them, so the router's events about them are found at once; anything else (a
restart, a file moved by hand, a status the adapter sent itself) costs one listing of the
folders, never a read of what is already known.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["RECEIPT_SUFFIX", "ReceiptIndex", "read_json"]

RECEIPT_SUFFIX = ".receipt.json"


@dataclass(frozen=True, slots=True)
class _Ids:
    envelope_id: str | None
    document_id: str | None


class ReceiptIndex:
    """Receipts by envelope id and by DocumentId, kept current from directory listings."""

    def __init__(self) -> None:
        self._known: dict[Path, dict[tuple[str, int], _Ids]] = {}  # directory → (name, inode)
        self._by_envelope: dict[str, Path] = {}

    def note(self, receipt: Path, record: dict[str, Any]) -> None:
        """The sender wrote ``receipt`` (with ``record``): its events can be found at once."""
        envelope_id = _text(record.get("envelope_id"))
        if envelope_id is not None:
            self._by_envelope[envelope_id] = receipt

    def by_envelope(
        self, directories: tuple[Path, ...], envelope_id: str
    ) -> tuple[Path, dict[str, Any]] | None:
        """The receipt of ``envelope_id`` in one of ``directories``, with its record."""
        found = self._confirmed(directories, envelope_id)
        if found is None:
            for directory in directories:
                self._refresh(directory)
            found = self._confirmed(directories, envelope_id)
        return found

    def _confirmed(
        self, directories: tuple[Path, ...], envelope_id: str
    ) -> tuple[Path, dict[str, Any]] | None:
        receipt = self._by_envelope.get(envelope_id)
        if receipt is None or receipt.parent not in directories:
            return None
        record = read_json(receipt)
        if record is None or record.get("envelope_id") != envelope_id:
            return None  # moved or replaced since: the listing will say where it is now
        return receipt, record

    def by_document(self, directories: tuple[Path, ...], document_id: str) -> list[Path]:
        """Every receipt in ``directories`` whose DocumentId is ``document_id``."""
        found: list[Path] = []
        for directory in directories:
            self._refresh(directory)
            found.extend(
                directory / name
                for (name, _), ids in self._known.get(directory, {}).items()
                if ids.document_id == document_id
            )
        return found

    def _refresh(self, directory: Path) -> None:
        known = self._known.setdefault(directory, {})
        try:
            entries = [
                (entry.name, entry.inode())
                for entry in os.scandir(directory)
                if entry.name.endswith(RECEIPT_SUFFIX)
            ]
        except FileNotFoundError:
            entries = []
        listed = set(entries)
        for gone in [key for key in known if key not in listed]:
            ids = known.pop(gone)  # moved, replaced or deleted
            if ids.envelope_id is not None and self._by_envelope.get(ids.envelope_id) == (
                directory / gone[0]
            ):
                del self._by_envelope[ids.envelope_id]
        for key in listed - known.keys():
            record = read_json(directory / key[0]) or {}
            ids = _Ids(_text(record.get("envelope_id")), _text(record.get("document_id")))
            known[key] = ids
            if ids.envelope_id is not None:
                self._by_envelope[ids.envelope_id] = directory / key[0]


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


def read_json(path: Path) -> dict[str, Any] | None:
    try:
        value = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None
