"""One adapter process per directory: a POSIX lock on a file in it."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from backbone.errors import ConfigurationError

__all__ = ["lock_for_this_process"]


def lock_for_this_process(lock_file: Path, *, refusal: str) -> int:
    """Lock ``lock_file`` (created with its directory) for this process and return its open
    descriptor (closing it releases the lock); :class:`ConfigurationError` with ``refusal``
    when another process holds it. A POSIX lock, so it dies with the process (no stale lock
    after a SIGKILL) and is held per process, not per instance."""
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock_file, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        raise ConfigurationError(refusal) from None
    return fd
