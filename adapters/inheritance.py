"""Which served agency took over a closed code: where the router forwards its documents.

A merge hands the closed agency's records and keys to the agency absorbing it. The router
forwards a document addressed to a closed code with one full heir to that heir's inbox
unchanged, so still encrypted to the closed agency's certificate (docs/directory.md,
"Routing through a change"); the heir's adapter opens it with the closed agency's key, its
``inherited_keys`` (docs/adapter.md).

Judged on the directory's last word on each agency (its status), not at an instant: a
forwarded envelope is in the inbox already, and the router judged the window when it
forwarded it.
"""

from __future__ import annotations

from collections.abc import Collection

from backbone.directory import Agency, Directory, Share

__all__ = ["served_heir"]


def served_heir(directory: Directory, code: str, served: Collection[str]) -> str | None:
    """The agency among ``served`` that took over closed ``code`` in full, directly or
    through full successors that closed in turn; None when ``code`` is not closed, or no
    served agency took it over in full (a split is never forwarded)."""
    agency = directory.get(code)
    if agency is None or agency.active:
        return None
    seen: set[str] = set()
    pending: list[Agency] = [agency]
    while pending:
        closed = pending.pop()
        for successor in closed.successors:
            if successor.share is not Share.FULL:
                continue
            target = directory.timeline.current(successor.organ_code)
            if target is None or str(target.organ_code) in seen:
                continue
            name = str(target.organ_code)
            seen.add(name)
            if name in served:
                return name
            if not target.active:
                pending.append(target)
    return None
