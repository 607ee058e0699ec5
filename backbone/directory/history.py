"""Cross-entry rules of a version-2 directory's history: dates, codes never reused,
successors that lead somewhere, no cycles, no hub closed under live agencies.

Each problem names the entries involved in the ``agencies[3] (code).field: what is wrong``
style of :mod:`backbone.directory.problems`. Dates compare as calendar days: every one is a
day in the same zone, so their order does not depend on it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import date
from typing import NamedTuple

from pydantic import BaseModel

from backbone.directory.model import Agency, DirectoryFile, Share, Status
from backbone.organ import CodeFormat, OrganCode, SystemId

__all__ = ["CodeClaim", "CodeClaims", "history_problems", "needed_version", "version_problems"]

_NAMED = 3  # entries named in one problem before "and N more"
_V2_AGENCY_FIELDS = frozenset(
    {"paired_code", "parent", "status", "effective", "closes", "former_codes", "successors"}
)
# What an agency's own history checks read (every other field of it has its default).
_HISTORY_FIELDS = frozenset({"status", "closes", "successors", "former_codes", "parent"})
# The same as the model's fields (``paired_code`` is kept as ``paired_text``).
_V2_AGENCY_MODEL_FIELDS = (_V2_AGENCY_FIELDS - {"paired_code"}) | {"paired_text"}
_V2_HUB_FIELDS = frozenset({"status", "closes"})


class CodeClaim(NamedTuple):
    """Which agency a code names and how: ``field`` is ``organ_code``, ``paired_code`` or
    ``former_codes``. (A tuple: a country makes one per code.)"""

    position: int
    field: str


def needed_version(agencies: Iterable[object], hubs: Iterable[object]) -> int:
    """The oldest file version with every field these entries (models or dicts) use."""
    for entries, fields in ((agencies, _V2_AGENCY_FIELDS), (hubs, _V2_HUB_FIELDS)):
        for entry in entries:
            if isinstance(entry, BaseModel):
                used: object = {_file_name(entry, name) for name in entry.model_fields_set}
            else:
                used = entry
            if isinstance(used, Mapping | set) and not fields.isdisjoint(used):
                return 2
    return 1


def version_problems(file: DirectoryFile) -> list[str]:
    """Fields the file's version does not have."""
    problems: list[str] = []
    if file.version == 1:
        for name in ("agency_count", "revision"):
            if getattr(file, name) is not None:
                problems.append(f"{name}: needs version: 2 (this file says version: 1)")
        for position, hub in enumerate(file.hubs):
            for name in sorted(hub.model_fields_set & _V2_HUB_FIELDS):
                problems.append(
                    f"hubs[{position}] ({hub.id}).{name}: needs version: 2 (this file says "
                    "version: 1)"
                )
        for position, agency in enumerate(file.agencies):
            set_fields = agency.model_fields_set & _V2_AGENCY_MODEL_FIELDS
            for name in sorted(_file_name(agency, field) for field in set_fields):
                problems.append(
                    f"{_where(position, agency)}.{name}: needs version: 2 (this file says "
                    "version: 1)"
                )
        return problems
    for position, agency in enumerate(file.agencies):
        if "listed_active" in agency.model_fields_set:
            problems.append(
                f"{_where(position, agency)}.active: version 2 has no 'active'; write "
                "status: closed with the date it closes"
            )
    if file.agency_count is not None and file.agency_count != len(file.agencies):
        problems.append(
            f"agency_count: the file says {file.agency_count} agencies but lists "
            f"{len(file.agencies)}; it may be cut short"
        )
    return problems


class CodeClaims:
    """Every code naming an agency, the first claim kept: primary codes (the index's map of
    first positions, reused), then paired codes, then former codes (the order
    :func:`history_problems` reports conflicts in). ``primary_texts``: the primary codes by
    their text, the index's too."""

    def __init__(
        self,
        agencies: Sequence[Agency],
        primaries: Mapping[OrganCode, int],
        primary_texts: Mapping[str, object],
    ) -> None:
        self._primaries = primaries
        # Paired and former codes by their text, to their position: paired codes are kept as
        # text, unparsed (a code's text is its own, so equal texts are equal codes). A claim
        # is made only when asked for: a country has 10,000 paired codes.
        self._paired: dict[str, int] = {}
        self._former: dict[str, int] = {}
        # Claims that came second, found while building (a hash or two each): (position,
        # code, kind, field). An agency's own codes, and paired codes of the primary's format
        # (positions in ``same_format``), are not counted (each has its own error).
        self.second: list[tuple[int, OrganCode, str, str]] = []
        self.same_format: set[int] = set()
        paired_at = self._paired
        qd20 = CodeFormat.QD20
        for position, agency in enumerate(agencies):
            paired = agency.paired_text
            if paired is None:
                continue
            # A Decision 20 code starts with its letter, a QCVN 102 one with digits.
            if paired[0].isalpha() is (agency.organ_code.format is qd20):
                self.same_format.add(position)  # refused as such
            elif paired in primary_texts or paired in paired_at:
                code = OrganCode.parse(paired)
                self.second.append((position, code, "paired_code", "paired_code"))
            else:
                paired_at[paired] = position
        for position, agency in enumerate(agencies):
            if not agency.former_codes:
                continue
            for index, code in enumerate(agency.former_codes):
                if code in agency.codes:
                    continue
                text = str(code)
                if code in primaries or text in paired_at or text in self._former:
                    self.second.append((position, code, "former_codes", f"former_codes[{index}]"))
                else:
                    self._former[text] = position

    def get(self, code: OrganCode) -> CodeClaim | None:
        position = self._primaries.get(code)
        if position is not None:
            return CodeClaim(position, "organ_code")
        if not self._paired and not self._former:
            return None
        text = str(code)
        position = self._paired.get(text)
        if position is not None:
            return CodeClaim(position, "paired_code")
        position = self._former.get(text)
        return None if position is None else CodeClaim(position, "former_codes")

    def __getitem__(self, code: OrganCode) -> CodeClaim:
        found = self.get(code)
        if found is None:
            raise KeyError(code)
        return found


def history_problems(
    file: DirectoryFile, primaries: Mapping[OrganCode, int], primary_texts: Mapping[str, object]
) -> list[str]:
    """Everything wrong with a version-2 file's history. ``primaries``: each primary code's
    first position, as the index found them (it reports duplicates among them);
    ``primary_texts``: the same codes by their text."""
    return _History(file, CodeClaims(file.agencies, primaries, primary_texts)).problems()


class _History:
    def __init__(self, file: DirectoryFile, claims: CodeClaims) -> None:
        self.file = file
        self.agencies = file.agencies
        self.claims = claims
        self.found: list[str] = []
        self.with_history: list[int] = []  # the positions ``problems`` checks one by one

    def problems(self) -> list[str]:
        # Only agencies that set a field of their history have one to check (most of a
        # country: none), and those whose paired code has the primary's format.
        history = _HISTORY_FIELDS
        self.with_history = positions = sorted(
            self.claims.same_format.union(
                position
                for position, agency in enumerate(self.agencies)
                if not history.isdisjoint(agency.__pydantic_fields_set__)
            )
        )
        same_format = self.claims.same_format
        closed = Status.CLOSED
        for position in positions:
            agency = self.agencies[position]
            if agency.status is closed or agency.closes or agency.successors:
                self._dates(position, agency)
            if agency.former_codes or (same_format and position in same_format):
                self._own_codes(position, agency)
            if agency.parent is not None:
                self._parent(position, agency)
            if agency.successors:
                self._successors(position, agency)
        for position, code, _kind, field in self.claims.second:
            self._claimed(position, code, field)
        self._successor_cycles()
        self._parent_cycles()
        self._hubs()
        return self.found

    # -- one agency ----------------------------------------------------------------------

    def _status(self, where: str, status: Status, closes: date | None, what: str) -> None:
        """``closes`` goes with ``status: closed``, for an agency and a hub alike."""
        if status is Status.CLOSED and closes is None:
            self.found.append(f"{where}.closes: required when status is closed")
        if status is Status.ACTIVE and closes is not None:
            self.found.append(
                f"{where}.closes: set to {closes} but status is active; a closing {what} "
                "says status: closed"
            )

    def _dates(self, position: int, agency: Agency) -> None:
        where = _where(position, agency)
        closed = agency.status is Status.CLOSED
        self._status(where, agency.status, agency.closes, "agency")
        if (
            agency.closes is not None
            and agency.effective is not None
            and agency.closes <= agency.effective
        ):
            self.found.append(
                f"{where}.closes: {agency.closes} is not after effective {agency.effective}"
            )
        if agency.successors and not closed:
            self.found.append(
                f"{where}.successors: an active agency has no successors; only a closed "
                "one is taken over"
            )

    def _own_codes(self, position: int, agency: Agency) -> None:
        # Where is written out only for a problem: most agencies of a country have none.
        paired = agency.paired_code
        if paired is not None and paired.format is agency.organ_code.format:
            self.found.append(
                f"{_where(position, agency)}.paired_code: {paired} is a "
                f"{_FORMAT_NAMES[paired.format]} code like organ_code; the paired code is "
                "the other format's"
            )
        for index, code in enumerate(agency.former_codes):
            if code in agency.codes:
                self.found.append(
                    f"{_where(position, agency)}.former_codes[{index}]: {code} is this "
                    "agency's current code"
                )

    def _claimed(self, position: int, code: OrganCode, field: str) -> None:
        """The problem at ``field``: ``code`` was claimed first by another entry."""
        claim = self.claims[code]
        holder = self.agencies[claim.position]
        what = {
            "organ_code": "the organ_code",
            "paired_code": "the paired_code",
            "former_codes": "a former code",
        }[claim.field]
        reuse = "a code names one agency only"
        if holder.status is Status.CLOSED and claim.field != "former_codes":
            reuse = f"it closed on {holder.closes}, and a closed code never comes back"
        self.found.append(
            f"{_where(position, self.agencies[position])}.{field}: {code} is already {what} of "
            f"{_where(claim.position, holder)}; {reuse}"
        )

    def _parent(self, position: int, agency: Agency) -> None:
        assert agency.parent is not None
        where = f"{_where(position, agency)}.parent"
        if agency.parent in agency.codes:
            self.found.append(f"{where}: {agency.parent} is the agency itself")
            return
        self._current(agency.parent, where)

    def _current(self, code: OrganCode, where: str) -> Agency | None:
        """The agency ``code`` names by a current code, or None after a problem."""
        claim = self.claims.get(code)
        if claim is None:
            self.found.append(f"{where}: {code} is not in the directory")
            return None
        holder = self.agencies[claim.position]
        if claim.field == "former_codes":
            self.found.append(
                f"{where}: {code} is a former code of {_where(claim.position, holder)}; name "
                f"its current code {holder.organ_code}"
            )
            return None
        return holder

    def _successors(self, position: int, agency: Agency) -> None:
        where = _where(position, agency)
        fulls = sum(successor.share is Share.FULL for successor in agency.successors)
        if fulls and len(agency.successors) > 1:
            self.found.append(
                f"{where}.successors: a full successor takes over all of the agency, so it "
                "is the only one; mark each partial (a split) or keep one full (a merge)"
            )
        seen: set[int] = set()
        for index, successor in enumerate(agency.successors):
            at = f"{where}.successors[{index}]"
            target = self._current(successor.organ_code, at)
            if target is None:
                continue
            claim = self.claims[successor.organ_code]
            if claim.position in seen:
                self.found.append(f"{at}: {successor.organ_code} is named twice")
            seen.add(claim.position)
            if claim.position == position or agency.closes is None:
                continue  # a cycle of one, reported with the cycles
            self._successor_alive(at, agency.closes, claim.position, target)

    def _successor_alive(self, at: str, closes: date, position: int, target: Agency) -> None:
        """A successor must be in effect when the agency closes, and not closed by then
        unless it has successors of its own (documents forwarded to it go on from there)."""
        named = _where(position, target)
        if target.effective is not None and target.effective > closes:
            self.found.append(
                f"{at}: {named} takes effect on {target.effective}, after this agency "
                f"closes on {closes}"
            )
        if (
            target.status is Status.CLOSED
            and target.closes is not None
            and target.closes <= closes
            and not target.successors
        ):
            self.found.append(
                f"{at}: {named} is itself closed on {target.closes}, by the time this agency "
                f"closes on {closes}, and has no successors: documents forwarded to it would "
                "end nowhere"
            )

    # -- across agencies -----------------------------------------------------------------

    def _successor_cycles(self) -> None:
        edges: dict[int, list[int]] = {}
        for position in self.with_history:
            agency = self.agencies[position]
            if not agency.successors:
                continue
            targets = [
                claim.position
                for successor in agency.successors
                if (claim := self.claims.get(successor.organ_code)) is not None
                and claim.field != "former_codes"
            ]
            if targets:
                edges[position] = targets
        for cycle in _cycles(edges):
            path = " → ".join(str(self.agencies[p].organ_code) for p in (*cycle, cycle[0]))
            self.found.append(
                f"{_where(cycle[0], self.agencies[cycle[0]])}.successors: a cycle of "
                f"successors: {path}"
            )

    def _parent_cycles(self) -> None:
        if all(self.agencies[position].parent is None for position in self.with_history):
            return  # parents drawn from codes alone always lead up, never round
        edges: dict[int, list[int]] = {}
        for position, agency in enumerate(self.agencies):
            node = agency.parent_code
            while node is not None:  # up to the nearest listed ancestor
                claim = self.claims.get(node)
                if claim is not None and claim.field != "former_codes":
                    edges[position] = [claim.position]
                    break
                node = node.parent
        for cycle in _cycles(edges):
            path = " → ".join(str(self.agencies[p].organ_code) for p in (*cycle, cycle[0]))
            self.found.append(
                f"{_where(cycle[0], self.agencies[cycle[0]])}.parent: a cycle of parents: {path}"
            )

    def _hubs(self) -> None:
        closing = {
            hub.id: hub.closes
            for hub in self.file.hubs
            if hub.status is Status.CLOSED and hub.closes is not None
        }
        # One pass over the agencies for every closed hub (a reform closes dozens: a pass
        # each was a third of loading the reformed country).
        live_under: dict[SystemId, list[str]] = {hub: [] for hub in closing}
        if closing:
            for index, agency in enumerate(self.agencies):
                via = agency.hub
                closes = None if via is None else closing.get(via)
                if via is not None and closes is not None and _live_on(agency, closes):
                    live_under[via].append(_where(index, agency))
        for position, hub in enumerate(self.file.hubs):
            where = f"hubs[{position}] ({hub.id})"
            self._status(where, hub.status, hub.closes, "hub")
            if hub.status is Status.ACTIVE or hub.closes is None:
                continue
            live = live_under[hub.id]
            if live:
                named = ", ".join(live[:_NAMED])
                more = f" and {len(live) - _NAMED} more" if len(live) > _NAMED else ""
                self.found.append(
                    f"{where}.status: a hub closed under live agencies: it closes on "
                    f"{hub.closes} while {named}{more} still connect through it; move them "
                    "to another hub or close them first"
                )


_FORMAT_NAMES = {CodeFormat.QCVN102: "QCVN 102", CodeFormat.QD20: "Decision 20/2020"}


def _file_name(model: BaseModel, field: str) -> str:
    """A field's name in the file (its alias: ``paired_text`` is written ``paired_code``)."""
    return type(model).model_fields[field].alias or field


def _where(position: int, agency: Agency) -> str:
    return f"agencies[{position}] ({agency.organ_code})"


def _live_on(agency: Agency, day: date) -> bool:
    """In service on ``day`` or after it."""
    if agency.status is Status.ACTIVE:
        return agency.listed_active
    return agency.closes is not None and agency.closes > day


def _cycles(edges: dict[int, list[int]]) -> list[tuple[int, ...]]:
    """Each cycle of the graph once, from its first node met, in a depth-first walk."""
    state: dict[int, int] = {}  # 1 on the current path, 2 done
    found: list[tuple[int, ...]] = []
    for start in edges:
        if start in state:
            continue
        path: list[int] = [start]
        pending: list[list[int]] = [list(reversed(edges.get(start, [])))]
        state[start] = 1
        while path:
            if not pending[-1]:
                state[path.pop()] = 2
                pending.pop()
                continue
            node = pending[-1].pop()
            mark = state.get(node)
            if mark == 1:
                found.append(tuple(path[path.index(node) :]))
            elif mark is None:
                state[node] = 1
                path.append(node)
                pending.append(list(reversed(edges.get(node, []))))
    return found
