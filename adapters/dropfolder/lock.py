"""One adapter process per folder: a POSIX lock on ``.work/lock``."""

from __future__ import annotations

import fcntl
import os

from adapters.dropfolder.layout import AgencyFolder
from backbone.errors import ConfigurationError

__all__ = ["FolderLocks"]


class FolderLocks:
    """The locks this drop folder holds, for the life of the process."""

    def __init__(self) -> None:
        self._fds: list[int] = []

    def acquire(self, folder: AgencyFolder) -> None:
        """Refuse to serve a folder another adapter process serves: two would discard each
        other's work in progress. A POSIX lock, so it dies with the process (no stale
        lock after a SIGKILL) and is held per process, not per instance."""
        folder.work.mkdir(parents=True, exist_ok=True)
        fd = os.open(folder.work / "lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise ConfigurationError(
                f"another adapter process is already serving {folder.root}"
            ) from None
        self._fds.append(fd)
