"""Handing a received file on (into a drop folder's inbox entry, the gateway's state)
without reading it into memory."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

__all__ = ["place_copy"]


def place_copy(source: Path, target: Path) -> None:
    """``target`` as a copy of ``source`` without reading it into memory: a hard link when
    both are on one file system (nothing copied; ``source`` may then be deleted), else
    copied in blocks. Not atomic by itself: write under a name renamed into place."""
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)
