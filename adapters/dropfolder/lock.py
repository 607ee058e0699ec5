"""One adapter process per folder: a POSIX lock on ``.work/lock``."""

from __future__ import annotations

from adapters.dropfolder.layout import AgencyFolder
from adapters.process_lock import lock_for_this_process

__all__ = ["FolderLocks"]


class FolderLocks:
    """The locks this drop folder holds, for the life of the process."""

    def __init__(self) -> None:
        self._fds: list[int] = []

    def acquire(self, folder: AgencyFolder) -> None:
        """Refuse to serve a folder another adapter process serves: two would discard each
        other's work in progress."""
        self._fds.append(
            lock_for_this_process(
                folder.work / "lock",
                refusal=f"another adapter process is already serving {folder.root}",
            )
        )
