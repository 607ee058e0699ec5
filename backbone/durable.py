"""Writing a file whole or not at all: the one implementation the staging area of chunked
documents, the saved directory version and the drop folder share.

A file is written under a temporary name, flushed and fsynced, then renamed over its
target (``os.replace``, atomic inside one file system): after a crash the target holds
the old content or the new, never half of one. The directory is fsynced after the rename
when ``sync_directory`` says so, so that a power cut cannot lose the new name either. The
file is created like ``open(path, "wb")`` creates it (mode 0o666 less the umask).

:func:`write_all` is the one loop that writes a whole buffer to a file descriptor, at its
position or at an offset, however few bytes each ``write`` takes."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["fsync_path", "write_all", "write_atomically"]


def fsync_path(path: Path) -> None:
    """Flush the file or directory at ``path`` to disk (a directory: the renames inside it)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_all(fd: int, data: bytes | bytearray | memoryview, offset: int | None = None) -> None:
    """Every byte of ``data`` written to ``fd``: at its current position (``os.write``), or
    from ``offset`` on (``os.pwrite``, the position untouched); a short write is followed by
    another for the rest. Raises what ``os.write`` or ``os.pwrite`` raises."""
    view = memoryview(data).cast("B")
    while view:
        if offset is None:
            written = os.write(fd, view)
        else:
            written = os.pwrite(fd, view, offset)
            offset += written
        view = view[written:]


def write_atomically(
    target: Path, data: bytes, *, temporary: Path | None = None, sync_directory: bool
) -> None:
    """``data`` at ``target``, whole or not at all: written to ``temporary`` (by default the
    dot-name ``.<name>`` beside ``target``; it must be on the same file system), fsynced,
    renamed over ``target``, then ``target``'s directory fsynced if ``sync_directory``. If
    anything fails, the temporary file is removed and the error raised; ``target`` is
    untouched."""
    temporary = temporary if temporary is not None else target.with_name(f".{target.name}")
    try:
        with temporary.open("wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, target)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    if sync_directory:
        fsync_path(target.parent)
