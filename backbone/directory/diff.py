"""What changes from one directory version to the next: agencies added, closed, merged
(closed with one full successor), split (closed with partial successors), renamed, moved
(to another hub or another parent), recoded, paired with another code; hubs added and
closed. And what a next version may not do to the history it inherits: drop a code (a
closed code stays resolvable forever) or reopen a closed one.

Pure logic over two loaded :class:`Directory` objects; ``backbone directory diff`` prints it.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

from backbone.directory.index import Directory
from backbone.directory.model import Agency, Share, Status
from backbone.directory.timeline import CodeRole

__all__ = ["Change", "ChangeKind", "DirectoryDiff", "diff_directories"]


class ChangeKind(StrEnum):
    ADDED = "added"
    CLOSED = "closed"  # with no successor: abolished
    MERGED = "merged"  # closed with one full successor
    SPLIT = "split"  # closed with partial successors
    RECODED = "recoded"  # the same agency under a new primary code; the old one former or paired
    RENAMED = "renamed"
    MOVED = "moved"  # to another hub, between a hub and a direct connection, or another parent
    PAIRED = "paired"  # its paired code added, changed or dropped
    REACTIVATED = "reactivated"  # version 1's active: false back to true
    HUB_ADDED = "hub-added"
    HUB_CLOSED = "hub-closed"


@dataclass(frozen=True, slots=True)
class Change:
    kind: ChangeKind
    code: str  # the agency's code in the old version (its new one when added), or a hub id
    before: str | None = None
    after: str | None = None
    successors: tuple[str, ...] = ()

    def line(self) -> str:
        text = f"{self.kind.value:<12} {self.code}"
        if self.before is not None or self.after is not None:
            text += f": {self.before or '-'} → {self.after or '-'}"
        if self.successors:
            text += f" → {', '.join(self.successors)}"
        return text


@dataclass(frozen=True, slots=True)
class DirectoryDiff:
    old_source: str
    new_source: str
    changes: tuple[Change, ...]
    problems: tuple[str, ...] = field(default=())  # what the new version may not do

    def counts(self) -> dict[str, int]:
        counted = Counter(change.kind for change in self.changes)
        return {kind.value: counted[kind] for kind in ChangeKind if counted[kind]}

    def as_json(self) -> dict[str, Any]:
        return {
            "old": self.old_source,
            "new": self.new_source,
            "counts": self.counts(),
            "changes": [
                {key: value for key, value in asdict(change).items() if value not in (None, ())}
                for change in self.changes
            ],
            "problems": list(self.problems),
        }


def diff_directories(old: Directory, new: Directory) -> DirectoryDiff:
    """What changes from ``old`` to ``new`` (both already validated)."""
    changes: list[Change] = []
    problems: list[str] = []
    for agency in old.agencies:
        code = str(agency.organ_code)
        after = new.get(agency.organ_code)
        if after is None:
            recoded = new.timeline.holder(agency.organ_code)
            if recoded is None or recoded[1] is CodeRole.PRIMARY:
                problems.append(
                    f"{code}: listed in {old.source} but gone from {new.source}; close it "
                    "instead (a closed code stays resolvable forever)"
                )
                continue
            after = recoded[0]
            changes.append(Change(ChangeKind.RECODED, code, code, str(after.organ_code)))
        parents = (_parent(old, agency), _parent(new, after))
        changes += _agency_changes(code, agency, after, parents, problems, new.source)
    known = {str(code) for agency in old.agencies for code in agency.codes}
    for agency in new.agencies:
        if str(agency.organ_code) not in known and not any(
            str(code) in known for code in agency.former_codes
        ):
            changes.append(Change(ChangeKind.ADDED, str(agency.organ_code), after=agency.name))
    changes += _hub_changes(old, new, problems)
    return DirectoryDiff(old.source, new.source, tuple(changes), tuple(problems))


def _agency_changes(
    code: str,
    before: Agency,
    after: Agency,
    parents: tuple[str | None, str | None],
    problems: list[str],
    source: str,
) -> list[Change]:
    changes: list[Change] = []
    if before.name != after.name:
        changes.append(Change(ChangeKind.RENAMED, code, before.name, after.name))
    reparented = parents[0] != parents[1]
    if reparented or (before.connection, before.hub) != (after.connection, after.hub):
        was = _place(before, parents[0] if reparented else None)
        now = _place(after, parents[1] if reparented else None)
        changes.append(Change(ChangeKind.MOVED, code, was, now))
    if before.paired_code != after.paired_code:
        changes.append(
            Change(ChangeKind.PAIRED, code, _text(before.paired_code), _text(after.paired_code))
        )
    was_closed = before.status is Status.CLOSED
    if was_closed and after.status is Status.ACTIVE:
        problems.append(
            f"{code}: closed on {before.closes} but active again in {source}; a closed code "
            "never comes back"
        )
    elif not before.listed_active and after.active:
        changes.append(Change(ChangeKind.REACTIVATED, code))
    elif before.active and not after.active:
        changes.append(_closure(code, after))
    return changes


def _closure(code: str, after: Agency) -> Change:
    successors = tuple(str(successor.organ_code) for successor in after.successors)
    closes = _text(after.closes)
    if not successors:
        return Change(ChangeKind.CLOSED, code, after=closes)
    if len(successors) == 1 and after.successors[0].share is Share.FULL:
        return Change(ChangeKind.MERGED, code, after=closes, successors=successors)
    return Change(ChangeKind.SPLIT, code, after=closes, successors=successors)


def _hub_changes(old: Directory, new: Directory, problems: list[str]) -> list[Change]:
    changes: list[Change] = []
    before = {hub.system_id: hub for hub in old.hubs}
    for hub in new.hubs:
        was = before.pop(hub.system_id, None)
        if was is None:
            changes.append(Change(ChangeKind.HUB_ADDED, hub.system_id, after=hub.name))
        elif was.status is Status.ACTIVE and hub.status is Status.CLOSED:
            changes.append(Change(ChangeKind.HUB_CLOSED, hub.system_id, after=_text(hub.closes)))
    for hub_id in before:
        problems.append(
            f"hub {hub_id}: listed in {old.source} but gone from {new.source}; close it instead"
        )
    return changes


def _parent(directory: Directory, agency: Agency) -> str | None:
    """The primary code of the agency's parent (so a parent recoded or named by its
    paired code is the same parent), or its code when the parent is not listed."""
    code = agency.parent_code
    if code is None:
        return None
    held = directory.timeline.holder(code)
    return str(held[0].organ_code if held is not None else code)


def _place(agency: Agency, parent: str | None) -> str:
    """Its connection (``hub X`` or ``direct``), and its parent when that changed."""
    route = f"hub {agency.hub}" if agency.hub is not None else "direct"
    return f"{route}, under {parent or '-'}" if parent is not None else route


def _text(value: object | None) -> str | None:
    return None if value is None else str(value)
