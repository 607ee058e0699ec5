"""File-system primitives of the drop folder: atomic writes, unique names, safe names.

Every state change of the drop folder is one ``os.replace`` inside one file system, so a
crash leaves each file either where it was or where it was going, never half-way. Data is
fsynced before the rename that publishes it, and the directory after it, so a power cut
cannot publish a name whose content is not on disk yet.
"""

from __future__ import annotations

import json
import os
import re
import unicodedata
import uuid
from pathlib import Path
from typing import Any

from backbone.durable import fsync_path, write_atomically

__all__ = [
    "atomic_write_bytes",
    "atomic_write_json",
    "replace_durably",
    "safe_file_name",
    "unique_destination",
]

# Characters no attachment name may carry: path separators, NUL and controls, and what
# Windows refuses (agency folders are often SMB shares read by Windows software).
_UNSAFE = re.compile(r'[\x00-\x1f\x7f/\\<>:"|?*]')
_MAX_NAME_BYTES = 200  # well under the 255-byte limit of common file systems


def atomic_write_bytes(target: Path, data: bytes, *, scratch: Path) -> None:
    """Write ``target`` so that it either does not exist or holds all of ``data``.

    The temporary file lives in ``scratch`` (hidden, same file system) so the agency's
    software never sees a half-written file under a name it watches."""
    temporary = scratch / f"{uuid.uuid4().hex}.tmp"
    write_atomically(target, data, temporary=temporary, sync_directory=True)


def atomic_write_json(target: Path, value: Any, *, scratch: Path) -> None:
    data = json.dumps(value, ensure_ascii=False, indent=2, sort_keys=True).encode() + b"\n"
    atomic_write_bytes(target, data, scratch=scratch)


def replace_durably(source: Path, target: Path) -> None:
    """``os.replace`` and fsync both directories. For a directory ``source``, its content
    is synced first: renaming a directory into place is the commit point of an inbox
    entry, so everything in it must already be on disk."""
    if source.is_dir():
        for child in source.rglob("*"):
            if child.is_file():
                fsync_path(child)
        fsync_path(source)
    os.replace(source, target)
    fsync_path(target.parent)
    if source.parent != target.parent:
        fsync_path(source.parent)


def unique_destination(directory: Path, name: str, *, tag: str) -> Path:
    """``directory/name``, or ``stem~tag.ext`` when software reused a name whose earlier
    document is still there: a new file must never overwrite an older record."""
    candidate = directory / name
    if not candidate.exists():
        return candidate
    stem, dot, ext = name.rpartition(".")
    base = f"{stem}~{tag}" if dot else f"{name}~{tag}"
    for n in range(1, 10_000):
        suffix = "" if n == 1 else f"-{n}"
        candidate = directory / (f"{base}{suffix}.{ext}" if dot else f"{base}{suffix}")
        if not candidate.exists():
            return candidate
    raise FileExistsError(f"no free name for {name} in {directory}")


def safe_file_name(name: str | None, *, fallback: str) -> str:
    """A name that stays inside its directory: no separators, no ``..``, no controls, no
    leading dot (a hidden file would be missed), at most 200 UTF-8 bytes, extension kept."""
    text = unicodedata.normalize("NFC", name or "")
    # Only the last component counts: "..\\..\\x.pdf" and "a/b.pdf" are names a sender
    # chose, not places to write.
    text = re.split(r"[/\\]", text)[-1]
    text = _UNSAFE.sub("_", text).strip().strip(".").strip()
    if not text or set(text) <= {"_", "."}:
        text = fallback
    return _truncate(text)


def _truncate(name: str) -> str:
    if len(name.encode()) <= _MAX_NAME_BYTES:
        return name
    stem, dot, ext = name.rpartition(".")
    if not dot or len(ext.encode()) > 16:
        stem, ext = name, ""
    budget = _MAX_NAME_BYTES - len(ext.encode()) - (1 if ext else 0)
    cut = stem.encode()[:budget].decode(errors="ignore")
    return f"{cut}.{ext}" if ext else cut
