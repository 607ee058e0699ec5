"""Codes and agencies over time: any code an agency has had (primary, paired or former)
resolved to the agency and its state at an instant, and a closed agency's successors.

A directory's dates are calendar days in its zone (Asia/Ho_Chi_Minh unless configured): an
agency is in effect from the start of its ``effective`` day there and closed from the start
of its ``closes`` day. Instants come from the caller (its injected clock), never the machine.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, tzinfo
from enum import StrEnum
from typing import NamedTuple

from backbone.clock import start_of_day
from backbone.directory.model import Agency, Hub, Share, Status, Successor
from backbone.organ import OrganCode

__all__ = ["CodeRole", "Heir", "Resolution", "State", "Timeline"]


class CodeRole(StrEnum):
    PRIMARY = "primary"  # organ_code: the one its certificate, account and inbox use
    PAIRED = "paired"  # paired_code: the other format's code for the same agency
    FORMER = "former"  # one of former_codes


class State(StrEnum):
    PENDING = "pending"  # listed, but before its effective day
    ACTIVE = "active"
    CLOSED = "closed"


class Resolution(NamedTuple):
    """What ``code`` names at instant ``at`` (a tuple: the router makes one per address)."""

    code: OrganCode
    agency: Agency
    role: CodeRole
    state: State
    at: datetime

    @property
    def successors(self) -> tuple[Successor, ...]:
        """Who takes over, when the agency is closed at ``at``."""
        return self.agency.successors if self.state is State.CLOSED else ()


@dataclass(frozen=True, slots=True)
class Heir:
    """An agency in service at an instant that took over a closed one, through ``via`` (the
    closed agencies' codes, the first one asked about). ``share`` is full only when every
    step was."""

    agency: Agency
    share: Share
    via: tuple[OrganCode, ...]


class Timeline:
    """Time-aware lookups over a validated directory's agencies."""

    def __init__(
        self,
        by_text: Mapping[str, Agency],
        by_code: Mapping[OrganCode, Agency],
        agencies: tuple[Agency, ...],
        zone: tzinfo,
    ) -> None:
        self.zone = zone
        # Primary codes, shared with the index (by text and by parsed code); paired and
        # former codes here by text only: paired codes are kept as text, unparsed (a code's
        # text is its own), and a question by parsed code about one of them is rare.
        self._by_text = by_text
        self._by_code = by_code
        # (A validated directory gives each code to one agency in one role.)
        self._paired = {a.paired_text: a for a in agencies if a.paired_text is not None}
        self._former = {str(code): a for a in agencies for code in a.former_codes}
        self._days: dict[date, datetime] = {}

    def lookup(self, code: str | OrganCode, at: datetime) -> Resolution | None:
        found = self.holder(code)
        if found is None:
            return None
        parsed = code if isinstance(code, OrganCode) else OrganCode.parse(code)
        return Resolution(parsed, found[0], found[1], self.state(found[0], at), at)

    def holder(self, code: str | OrganCode) -> tuple[Agency, CodeRole] | None:
        """The agency that has or had ``code``, and how: the same at every instant."""
        if isinstance(code, str):
            agency = self._by_text.get(code)
            if agency is not None:
                return agency, CodeRole.PRIMARY
            return self._other(code)  # a malformed code is no code's text
        agency = self._by_code.get(code)
        if agency is not None:
            return agency, CodeRole.PRIMARY
        return self._other(str(code)) if self._paired or self._former else None

    def _other(self, text: str) -> tuple[Agency, CodeRole] | None:
        agency = self._paired.get(text)
        if agency is not None:
            return agency, CodeRole.PAIRED
        agency = self._former.get(text)
        return None if agency is None else (agency, CodeRole.FORMER)

    def current(self, code: OrganCode) -> Agency | None:
        """The agency ``code`` names as its primary or paired code."""
        found = self.holder(code)
        return found[0] if found is not None and found[1] is not CodeRole.FORMER else None

    def state(self, agency: Agency, at: datetime) -> State:
        if agency.effective is not None and at < self.instant(agency.effective):
            return State.PENDING
        if not agency.listed_active:
            return State.CLOSED  # version 1's active: false, closed with no date
        if agency.status is Status.CLOSED and (
            agency.closes is None or at >= self.instant(agency.closes)
        ):
            return State.CLOSED
        return State.ACTIVE

    def hub_state(self, hub: Hub, at: datetime) -> State:
        if hub.status is Status.CLOSED and (hub.closes is None or at >= self.instant(hub.closes)):
            return State.CLOSED
        return State.ACTIVE

    def heirs(self, agency: Agency, at: datetime) -> tuple[Heir, ...]:
        """The agencies in service at ``at`` that took over ``agency``, following successors
        that have closed in turn; empty when ``agency`` is not closed at ``at``. A validated
        directory has no cycle, and each successor in effect when its predecessor closes."""
        if self.state(agency, at) is not State.CLOSED:
            return ()
        found: dict[OrganCode, Heir] = {}
        pending: list[tuple[Agency, Share, tuple[OrganCode, ...]]] = [
            (agency, Share.FULL, (agency.organ_code,))
        ]
        while pending:
            closed, share, via = pending.pop()
            for successor in closed.successors:
                target = self.current(successor.organ_code)
                if target is None:
                    continue
                step = share if successor.share is Share.FULL else Share.PARTIAL
                if self.state(target, at) is State.CLOSED:
                    pending.append((target, step, (*via, target.organ_code)))
                elif target.organ_code not in found:
                    found[target.organ_code] = Heir(target, step, via)
        return tuple(found.values())

    def instant(self, day: date) -> datetime:
        """The start of ``day`` in the directory's zone (memoised: few distinct days)."""
        found = self._days.get(day)
        if found is None:
            found = self._days[day] = start_of_day(day, self.zone)
        return found
