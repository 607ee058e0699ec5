"""Organ codes in both formats that circulate, and hub/system identifiers.

- QCVN 102:2016 (``V1V2V3.Z1Z2.Y1Y2.MX1X2``) is read right to left: ``MX1X2`` is level 1 (a
  ministry ``G..`` or a province ``H..``), ``Y1Y2`` level 2, ``Z1Z2`` level 3, ``V1V2V3``
  level 4; unused levels are zeros.
- Decision 20/2020/QĐ-TTg (``H01.151.01``) is read left to right: level 1 first, one group
  per level, at most 35 characters of ``0-9``, ``A-Z`` and ``.``. Groups beyond the fourth
  are units under level-4 units and sit in level 4's tier.

The two never overlap: a QCVN 102 code starts with digits, a Decision 20 code with its
level-1 letter. Neither is derived from the other: the directory says which pairs name the
same agency. The code's hierarchy is the routing hierarchy, so routing keys list the levels
from level 1 down (``000.21.32.H53`` → ``H53.32.21.000``; ``H01.151`` → ``qd20.H01.151``,
whose first word no QCVN 102 key has) and a hub binds a subtree with one pattern.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache

from backbone.errors import OrganCodeError

__all__ = [
    "MAX_CODE_LENGTH",
    "WELL_FORMED_CODE",
    "CodeFormat",
    "OrganCode",
    "SystemId",
    "parse_identifier",
]


class CodeFormat(StrEnum):
    QCVN102 = "qcvn102"
    QD20 = "qd20"


_LEVEL_PATTERNS = (
    # (position in the written code, level, regex, what it should look like)
    (3, 1, re.compile(r"[A-Z][0-9]{2}"), "a capital letter and two digits, e.g. H53"),
    (2, 2, re.compile(r"[0-9]{2}"), "two digits"),
    (1, 3, re.compile(r"[0-9]{2}"), "two digits"),
    (0, 4, re.compile(r"[0-9]{3}"), "three digits"),
)
_ZERO = {2: "00", 3: "00", 4: "000"}
# The whole code at once, for the common case of a well-formed one; a code that does not
# match is read level by level, to say which level is wrong.
_QCVN102_CODE = re.compile(r"([0-9]{3})\.([0-9]{2})\.([0-9]{2})\.([A-Z][0-9]{2})")
_QD20_CODE = re.compile(r"[A-Z][0-9]{2}(?:\.[0-9A-Z]+)*")
_QD20_LEVEL_1 = re.compile(r"[A-Z][0-9]{2}")
_QD20_GROUP = re.compile(r"[0-9A-Z]+")
MAX_CODE_LENGTH = 35  # Decision 20/2020; a QCVN 102 code has 13
_QD20_KEY_WORD = "qd20"  # lowercase: never a QCVN 102 level 1, so the key spaces are apart
# A well-formed code of either format, whole: what ``OrganCode.parse`` accepts, for a
# validator that checks text without parsing it (pydantic's Rust core, where a country's
# paired codes are checked in the directory file without a Python call each).
WELL_FORMED_CODE = (
    r"^(?:[0-9]{3}\.[0-9]{2}\.[0-9]{2}\.[A-Z][0-9]{2}|[A-Z][0-9]{2}(?:\.[0-9A-Z]+)*)$"
)
_SYSTEM_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


@dataclass(frozen=True, slots=True)
class OrganCode:
    """A parsed organ code. ``levels[0]`` is level 1 (``H53``, ``H01``), then each level down.

    QCVN 102 codes always have four levels, zeros where unused. A level may be set under an
    empty one (vendor samples carry ``002.00.20.H13``, a unit directly under district 20):
    its parent is then the nearest filled level above it. Decision 20 codes have one group
    per level, as many as the code has.
    """

    levels: tuple[str, ...]
    format: CodeFormat = CodeFormat.QCVN102

    def __hash__(self) -> int:
        # The levels alone: a tuple of strings hashes in C, where the format's enum member
        # would call back into Python, and directories hash every code several times over.
        # Equality still tells the formats apart.
        return hash(self.levels)

    @classmethod
    def parse(cls, text: str) -> OrganCode:
        """Parse either format; raise :class:`OrganCodeError` saying what is wrong."""
        return _parse(text)

    @classmethod
    def from_routing_key(cls, key: str) -> OrganCode:
        words = key.split(".")
        if words[0] == _QD20_KEY_WORD:
            return cls.parse(".".join(words[1:]))
        return cls.parse(".".join(reversed(words)))

    def __str__(self) -> str:
        if self.format is CodeFormat.QD20:
            return ".".join(self.levels)
        return ".".join(reversed(self.levels))

    @property
    def level(self) -> int:
        """The code's place in the administrative hierarchy, 1–4."""
        if self.format is CodeFormat.QD20:
            return min(len(self.levels), 4)
        for level in (4, 3, 2):
            if self.levels[level - 1] != _ZERO[level]:
                return level
        return 1

    @property
    def routing_key(self) -> str:
        """Levels from level 1 down: ``H53.32.21.000``, ``qd20.H01.151``."""
        if self.format is CodeFormat.QD20:
            return ".".join((_QD20_KEY_WORD, *self.levels))
        return ".".join(self.levels)

    @property
    def subtree_pattern(self) -> str:
        """The topic pattern binding this code and everything under it (``H53.32.#``)."""
        if self.format is CodeFormat.QD20:
            return f"{self.routing_key}.#"
        return ".".join((*self.levels[: self.level], "#"))

    @property
    def parent(self) -> OrganCode | None:
        if self.format is CodeFormat.QD20:
            return OrganCode(self.levels[:-1], self.format) if len(self.levels) > 1 else None
        level = self.level
        if level == 1:
            return None
        levels = list(self.levels)
        levels[level - 1] = _ZERO[level]
        return OrganCode(tuple(levels))

    @property
    def ancestors(self) -> tuple[OrganCode, ...]:
        """Parent chain, nearest first, ending at the level-1 body."""
        chain: list[OrganCode] = []
        node = self.parent
        while node is not None:
            chain.append(node)
            node = node.parent
        return tuple(chain)

    def is_within(self, root: OrganCode) -> bool:
        """True when this code is ``root`` or lies in its subtree (in the same format)."""
        if self.format is not root.format:
            return False
        depth = len(root.levels) if root.format is CodeFormat.QD20 else root.level
        return self.levels[:depth] == root.levels[:depth]


# Every envelope names its sender and recipients, and the router reads those codes several
# times over; a country has about 12,000, so their parsed forms are kept (codes are
# immutable). Errors are not cached: a malformed code is parsed, and refused, every time.
@lru_cache(maxsize=65536)
def _parse(text: str) -> OrganCode:
    if text[:1].isalpha():
        if len(text) <= MAX_CODE_LENGTH and _QD20_CODE.fullmatch(text):
            return OrganCode(tuple(text.split(".")), CodeFormat.QD20)
        return _parse_qd20(text)
    whole = _QCVN102_CODE.fullmatch(text)
    if whole:
        level_4, level_3, level_2, level_1 = whole.groups()
        return OrganCode((level_1, level_2, level_3, level_4))
    return _parse_qcvn102(text)


def _parse_qcvn102(text: str) -> OrganCode:
    parts = text.split(".")
    if len(parts) != 4:
        raise OrganCodeError(
            f"organ code {text!r} has {len(parts)} part(s); expected 4 dot-separated parts "
            "V1V2V3.Z1Z2.Y1Y2.MX1X2 (e.g. 000.00.32.H53), or a Decision 20/2020 code "
            "starting with its level-1 letter (e.g. H01.151)"
        )
    levels = ["", "", "", ""]
    for position, level, pattern, shape in _LEVEL_PATTERNS:
        part = parts[position]
        if not pattern.fullmatch(part):
            raise OrganCodeError(
                f"organ code {text!r}: level {level} is {part!r}; expected {shape}"
            )
        levels[level - 1] = part
    return OrganCode(tuple(levels))


def _parse_qd20(text: str) -> OrganCode:
    if len(text) > MAX_CODE_LENGTH:
        raise OrganCodeError(
            f"organ code {text[:40]!r}…: {len(text)} characters; a Decision 20/2020 code "
            f"has at most {MAX_CODE_LENGTH}"
        )
    groups = tuple(text.split("."))
    if not _QD20_LEVEL_1.fullmatch(groups[0]):
        raise OrganCodeError(
            f"organ code {text!r}: level 1 is {groups[0]!r}; expected a capital letter and "
            "two digits, e.g. H01"
        )
    for level, group in enumerate(groups[1:], start=2):
        if not _QD20_GROUP.fullmatch(group):
            raise OrganCodeError(
                f"organ code {text!r}: level {level} is {group!r}; expected capital letters "
                "and digits (Decision 20/2020)"
            )
    return OrganCode(groups, CodeFormat.QD20)


@dataclass(frozen=True, slots=True)
class SystemId:
    """A hub or system identifier (``00.53.W00``, ``vxp.saas.02``): not an organ code."""

    value: str

    @classmethod
    def parse(cls, text: str) -> SystemId:
        if not _SYSTEM_ID.fullmatch(text):
            raise OrganCodeError(
                f"system id {text!r}: expected 1–64 letters, digits, '.', '_' or '-' "
                "starting with a letter or digit"
            )
        return cls(text)

    def __str__(self) -> str:
        return self.value


def parse_identifier(text: str) -> OrganCode | SystemId:
    """An organ code when ``text`` is one, otherwise a hub/system id."""
    try:
        return OrganCode.parse(text)
    except OrganCodeError:
        return SystemId.parse(text)
