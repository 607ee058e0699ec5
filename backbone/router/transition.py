"""Routing through a change (docs/directory.md): what a code in a header means at an instant.

A closed agency's documents keep coming for a while after it closes. For a configured window
from its closing day, a document to it goes on to its one full heir (a merge) unchanged, and
a sender whose code closed is accepted with a warning; after the window, or with no single
heir (a split), the router refuses and names the candidates: it never guesses.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

from backbone.directory import Agency, CodeRole, Directory, Heir, Resolution, Share, State
from backbone.errors import Reason

__all__ = [
    "DEFAULT_TRANSITION_WINDOW_DAYS",
    "Deliver",
    "Forward",
    "Refuse",
    "SenderVerdict",
    "address",
    "sender_verdict",
]

DEFAULT_TRANSITION_WINDOW_DAYS: Final = 180  # about the time a reform's notices take to land
_INACTIVE: Final = "inactive in the directory"


@dataclass(frozen=True, slots=True)
class Deliver:
    """To ``agency`` itself, named by its primary or paired code."""

    agency: Agency


@dataclass(frozen=True, slots=True)
class Forward:
    """To ``agency`` instead of ``code``: a closed code's one full heir within the window, or
    the agency that holds ``code`` as a former code. The sender is told the new address."""

    code: str
    agency: Agency
    via: tuple[str, ...]  # the closed or former codes passed on the way


@dataclass(frozen=True, slots=True)
class Refuse:
    """``message`` says what is wrong with the code, without naming it (the router lists
    every code with the same problem once)."""

    reason: Reason
    message: str
    candidates: tuple[str, ...] = ()  # the heirs in service, never chosen among


Address = Deliver | Forward | Refuse


@dataclass(frozen=True, slots=True)
class SenderVerdict:
    """A sender in service (``warning`` None), closed within the window (a warning for it),
    or refused."""

    agency: Agency
    warning: str | None = None
    refusal: Refuse | None = None


def address(directory: Directory, code: str, at: datetime, window: timedelta) -> Address:
    """Where a document to ``code`` goes at ``at``; unknown, pending and closed-without-heir
    codes are refused as ``recipient_unknown`` as before."""
    found = directory.lookup(code, at)
    if found is None:
        return Refuse(Reason.RECIPIENT_UNKNOWN, "not in the directory")
    agency = found.agency
    if found.state is State.PENDING:
        return Refuse(Reason.RECIPIENT_UNKNOWN, _INACTIVE)
    if found.state is State.ACTIVE:
        if found.role is CodeRole.FORMER:
            return Forward(code, agency, (code,))
        return Deliver(agency)
    heirs = directory.timeline.heirs(agency, at)
    if not heirs:
        return Refuse(Reason.RECIPIENT_UNKNOWN, _INACTIVE)
    candidates = tuple(str(heir.agency.organ_code) for heir in heirs)
    ended = _window_ended(directory, found, at, window)
    if ended is not None:
        return Refuse(
            Reason.RECIPIENT_CLOSED,
            f"{ended}; send to its successor instead: {', '.join(candidates)}",
            candidates,
        )
    if len(heirs) == 1 and heirs[0].share is Share.FULL:
        return Forward(code, heirs[0].agency, _via(code, heirs[0]))
    return Refuse(
        Reason.RECIPIENT_CLOSED,
        f"{_closed(found)} and was split: choose among its successors "
        f"{', '.join(candidates)} and send to the one concerned",
        candidates,
    )


def sender_verdict(
    directory: Directory, agency: Agency, at: datetime, window: timedelta
) -> SenderVerdict:
    """A closed sender may finish its business for ``window`` after it closes, warned."""
    code = str(agency.organ_code)
    state = directory.state_at(agency, at)
    if state is State.ACTIVE:
        return SenderVerdict(agency)
    if state is State.PENDING or agency.closes is None:
        return SenderVerdict(
            agency,
            refusal=Refuse(Reason.SENDER_INACTIVE, f"sender {code} is inactive in the directory"),
        )
    heirs = tuple(str(heir.agency.organ_code) for heir in directory.timeline.heirs(agency, at))
    after = f"; its successors: {', '.join(heirs)}" if heirs else ""
    found = Resolution(agency.organ_code, agency, CodeRole.PRIMARY, state, at)
    ended = _window_ended(directory, found, at, window)
    if ended is not None:
        return SenderVerdict(
            agency,
            refusal=Refuse(
                Reason.SENDER_CLOSED,
                f"sender {code} {ended}: it may no longer send{after}",
                heirs,
            ),
        )
    ends = directory.timeline.instant(agency.closes) + window
    return SenderVerdict(
        agency,
        warning=f"sender {code} {_closed(found)}; accepted until its transition window ends "
        f"on {ends.astimezone(directory.timeline.zone).date()}, refused from then{after}",
    )


def _window_ended(
    directory: Directory, found: Resolution, at: datetime, window: timedelta
) -> str | None:
    """Why the window is over for the closed agency ``found`` names (None: it is not). A
    closing with no date has no window."""
    closes = found.agency.closes
    if closes is None:
        return f"{_closed(found)} with no closing date, so with no transition window"
    if at < directory.timeline.instant(closes) + window:
        return None
    return f"{_closed(found)}; its transition window of {window.days} days has ended"


def _closed(found: Resolution) -> str:
    closes = found.agency.closes
    return "is closed" if closes is None else f"closed on {closes}"


def _via(code: str, heir: Heir) -> tuple[str, ...]:
    return (code, *(str(step) for step in heir.via[1:]))
