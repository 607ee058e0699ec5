"""What to do about a reason code, in the words of ``docs/reasons.md``: its "what to do"
column is the one place that text lives; the records the drop folder writes quote it.

The file ships in the wheel as ``backbone/_docs/reasons.md`` (``pyproject.toml``) and is
read from the repository's ``docs/`` otherwise.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path

__all__ = ["what_to_do"]

_ROW = re.compile(r"^\| `([a-z_0-9]+)` \| (?:[^|]*) \| ([^|]*) \|$", re.MULTILINE)


def _reasons_file() -> Path:
    backbone_dir = Path(__file__).resolve().parents[2] / "backbone"
    installed = backbone_dir / "_docs" / "reasons.md"
    return installed if installed.is_file() else backbone_dir.parent / "docs" / "reasons.md"


@functools.cache
def _remedies() -> dict[str, str]:
    try:
        text = _reasons_file().read_text(encoding="utf-8")
    except OSError:
        return {}
    table = text[text.find("## Every reason") :]
    return {code: advice.strip().replace("**", "") for code, advice in _ROW.findall(table)}


def what_to_do(reason: str) -> str:
    """The "what to do" of ``reason`` in docs/reasons.md; a pointer to it when the reason is
    not listed there (or the file is missing from an installation)."""
    return _remedies().get(reason) or f"see docs/reasons.md for {reason!r}"
