"""Whether a checked directory may follow the running one (``backbone directory apply`` and
every router replica ask the same): a higher revision, the same tier model (the tier
exchanges are declared from it), every certificate readable, and a history that only grows
(:func:`~backbone.directory.diff.diff_directories`' problems)."""

from __future__ import annotations

from dataclasses import dataclass

from backbone.directory.certificates import certificate_problems
from backbone.directory.diff import DirectoryDiff, diff_directories
from backbone.directory.index import Directory

__all__ = ["Succession", "succession"]


@dataclass(frozen=True, slots=True)
class Succession:
    diff: DirectoryDiff
    problems: tuple[str, ...]  # empty: ``new`` may replace the running version


def succession(running: Directory, new: Directory) -> Succession:
    """What changes from ``running`` to ``new`` (both loaded), and why ``new`` may not
    follow it, every reason at once."""
    problems: list[str] = []
    before, after = running.version.revision, new.version.revision
    if new.file.revision is None:
        problems.append(
            f"revision: {new.source} has none; a version to apply carries a revision higher "
            f"than the running one ({before})"
        )
    elif after <= before:
        problems.append(
            f"revision: {after} is not after the running revision {before}; an older or the "
            f"same version is never applied again (give this one revision {before + 1} or more)"
        )
    if new.tiers != running.tiers:
        problems.append(
            "tiers: the tier model differs from the running one; a new tier model needs new "
            "tier exchanges, so it is deployed with a restart, not applied live"
        )
    diff = diff_directories(running, new)
    problems += diff.problems
    problems += certificate_problems(new)
    return Succession(diff, tuple(problems))
