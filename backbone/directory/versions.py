"""Which directory version is which: its ``revision`` (the order operators apply versions
in) and the SHA-256 of its content, together its version id (docs/directory.md, "Applying a
new version"). The digest is of the file's canonical JSON, not of its bytes, so the same
content has the same id whether it was written as JSON or YAML, by hand or by
``dump_directory``."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from backbone.directory.model import DirectoryFile

__all__ = ["DirectoryVersion", "version_of"]


@dataclass(frozen=True, slots=True)
class DirectoryVersion:
    revision: int  # 0 for a file without one
    digest: str  # SHA-256 (hex) of the canonical JSON

    @property
    def id(self) -> str:
        """``<revision>:<sha256>``: what routing decisions record."""
        return f"{self.revision}:{self.digest}"


def version_of(file: DirectoryFile) -> DirectoryVersion:
    # agency_count says how the file was written, not what it says: left out.
    canonical = file.model_copy(update={"agency_count": None}).model_dump_json(
        exclude_defaults=True
    )
    return DirectoryVersion(file.revision or 0, hashlib.sha256(canonical.encode()).hexdigest())
