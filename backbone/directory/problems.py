"""Turning what is wrong with a directory into one :class:`DirectoryError` that names each
entry (by position and by its organ code or hub id) and the field at fault."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import ValidationError

from backbone.directory.model import code_text_message
from backbone.errors import DirectoryError
from backbone.tiers import error_path

__all__ = ["directory_error", "validation_problems"]

_SHOWN = 20  # a file broken everywhere would otherwise print thousands of lines
_ENTRY_KEYS = {"agencies": "organ_code", "hubs": "id"}


def validation_problems(error: ValidationError, raw: Any) -> list[str]:
    """Each schema problem as ``agencies[3] (000.00.32.H53).hub: what is wrong``.

    ``raw`` is the data that failed (the parsed file), used only to name entries."""
    problems = []
    for problem in error.errors(include_url=False):
        loc = problem["loc"]
        where = error_path(loc)
        if len(loc) >= 2 and loc[0] in _ENTRY_KEYS and isinstance(loc[1], int):
            label = _entry_label(raw, str(loc[0]), loc[1])
            head = error_path(loc[:2])
            where = f"{head} ({label}){where[len(head) :]}" if label else where
        message = code_text_message(loc[-1] if loc else None, problem["type"], problem["input"])
        problems.append(f"{where}: {message or problem['msg']}")
    return problems


def directory_error(source: str, problems: Sequence[str]) -> DirectoryError:
    if len(problems) == 1:
        return DirectoryError(f"{source}: {problems[0]}")
    lines = [f"{source}: {len(problems)} problems:"]
    lines += [f"  - {problem}" for problem in problems[:_SHOWN]]
    if len(problems) > _SHOWN:
        lines.append(f"  … and {len(problems) - _SHOWN} more")
    return DirectoryError("\n".join(lines))


def _entry_label(raw: Any, section: str, position: int) -> str | None:
    try:
        value = raw[section][position][_ENTRY_KEYS[section]]
    except (KeyError, IndexError, TypeError):
        return None
    return value if isinstance(value, str) else None
