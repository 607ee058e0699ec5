"""What a directory version the adapter takes up changes for the agencies it serves.

The adapter's ``agencies`` are checked against the directory at start only (each must be
served by ``system``). A version applied live may give one of them to another system (moved
to another hub, off a hub to a connection of its own, onto a hub), close it, or recode it;
the adapter takes the version up all the same, as every process does, but it can no longer
act for that agency as configured: the router refuses what it sends for it as the wrong
publisher (or as a closed sender), its documents no longer reach this inbox, and the next
start refuses the configuration. So each such agency is named once, in one warning, when the
version that changes it is taken up (docs/adapter.md, "Directory versions, live")."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Literal, NamedTuple

import structlog

from backbone.directory import Agency, Directory, Status
from backbone.errors import UnknownAgencyError

__all__ = ["ServedChange", "served_changes", "warn_served_changes"]

log = structlog.get_logger(__name__)


class ServedChange(NamedTuple):
    """``agency`` (a served code) in the new version: ``change`` and the systems that now
    receive its documents (its successors' for a closed agency; none known: empty)."""

    agency: str
    change: Literal["moved", "closed", "recoded"]
    now_served_by: tuple[str, ...]
    now_code: str | None = None  # recoded: the agency's current code
    closes: str | None = None  # closed: the closing day (ISO)
    successors: tuple[str, ...] = ()  # closed: who takes over


def served_changes(
    before: Directory, after: Directory, served: Iterable[str], *, system: str, at: datetime
) -> list[ServedChange]:
    """The served agencies ``after`` takes away from ``system`` that ``before`` still gave
    it, in ``served`` order. ``at`` (the adapter's clock) finds a recoded code's agency."""
    changes: list[ServedChange] = []
    for code in served:
        if not _served_by(before, code, system):
            continue  # already so in the running version: said when that one arrived
        agency = after.get(code)
        if agency is None:  # no longer a primary code: recoded (a former or paired one)
            found = after.lookup(code, at)
            now = None if found is None else found.agency
            changes.append(
                ServedChange(
                    code,
                    "recoded",
                    () if now is None else _systems(after, [str(now.organ_code)]),
                    now_code=None if now is None else str(now.organ_code),
                )
            )
        elif agency.status is Status.CLOSED:
            successors = tuple(str(s.organ_code) for s in agency.successors)
            changes.append(
                ServedChange(
                    code,
                    "closed",
                    _systems(after, successors),
                    closes=None if agency.closes is None else agency.closes.isoformat(),
                    successors=successors,
                )
            )
        elif (serving := after.serving_system(code).system_id) != system:
            changes.append(ServedChange(code, "moved", (serving,)))
    return changes


def warn_served_changes(
    before: Directory, after: Directory, served: Iterable[str], *, system: str, at: datetime
) -> list[ServedChange]:
    """One ``adapter.served_agency_changed`` warning per change :func:`served_changes`
    finds; returns them."""
    changes = served_changes(before, after, served, system=system, at=at)
    for change in changes:
        log.warning(
            "adapter.served_agency_changed",
            system=system,
            version=after.version.id,
            **{k: v for k, v in change._asdict().items() if v not in (None, ())},
            outcome="not_served_here",
        )
    return changes


def _served_by(directory: Directory, code: str, system: str) -> bool:
    agency: Agency | None = directory.get(code)
    if agency is None or agency.status is Status.CLOSED:
        return False
    return directory.serving_system(code).system_id == system


def _systems(directory: Directory, codes: Iterable[str]) -> tuple[str, ...]:
    """The systems serving ``codes``, each once, in order (an unknown code: left out)."""
    found: dict[str, None] = {}
    for code in codes:
        try:
            found[directory.serving_system(code).system_id] = None
        except UnknownAgencyError:
            continue
    return tuple(found)
