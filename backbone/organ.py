"""QCVN 102 organ codes (``V1V2V3.Z1Z2.Y1Y2.MX1X2``) and hub/system identifiers.

The code is read right to left: ``MX1X2`` is level 1 (a ministry ``G..`` or a province
``H..``), ``Y1Y2`` level 2, ``Z1Z2`` level 3, ``V1V2V3`` level 4; unused levels are zeros.
The code's hierarchy is the routing hierarchy, so routing keys list the levels from level 1
down (``000.21.32.H53`` → ``H53.32.21.000``) and a hub binds a subtree with one pattern.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from backbone.errors import OrganCodeError

__all__ = ["OrganCode", "SystemId", "parse_identifier"]

_LEVEL_PATTERNS = (
    # (position in the written code, level, regex, what it should look like)
    (3, 1, re.compile(r"[A-Z][0-9]{2}"), "a capital letter and two digits, e.g. H53"),
    (2, 2, re.compile(r"[0-9]{2}"), "two digits"),
    (1, 3, re.compile(r"[0-9]{2}"), "two digits"),
    (0, 4, re.compile(r"[0-9]{3}"), "three digits"),
)
_ZERO = {2: "00", 3: "00", 4: "000"}
_SYSTEM_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


@dataclass(frozen=True, slots=True)
class OrganCode:
    """A parsed organ code. ``levels[0]`` is level 1 (``H53``), ``levels[3]`` level 4.

    A level may be set under an empty one (vendor samples carry ``002.00.20.H13``, a unit
    directly under district 20): its parent is then the nearest filled level above it.
    """

    levels: tuple[str, str, str, str]

    @classmethod
    def parse(cls, text: str) -> OrganCode:
        """Parse ``V1V2V3.Z1Z2.Y1Y2.MX1X2``; raise :class:`OrganCodeError` saying what is wrong."""
        return _parse(text)

    @classmethod
    def _parse_uncached(cls, text: str) -> OrganCode:
        parts = text.split(".")
        if len(parts) != 4:
            raise OrganCodeError(
                f"organ code {text!r} has {len(parts)} part(s); expected 4 dot-separated parts "
                "V1V2V3.Z1Z2.Y1Y2.MX1X2 (e.g. 000.00.32.H53)"
            )
        levels = ["", "", "", ""]
        for position, level, pattern, shape in _LEVEL_PATTERNS:
            part = parts[position]
            if not pattern.fullmatch(part):
                raise OrganCodeError(
                    f"organ code {text!r}: level {level} is {part!r}; expected {shape}"
                )
            levels[level - 1] = part
        return cls((levels[0], levels[1], levels[2], levels[3]))

    @classmethod
    def from_routing_key(cls, key: str) -> OrganCode:
        return cls.parse(".".join(reversed(key.split("."))))

    def __str__(self) -> str:
        return ".".join(reversed(self.levels))

    @property
    def level(self) -> int:
        """The deepest non-zero level, 1–4: the code's place in the administrative hierarchy."""
        for level in (4, 3, 2):
            if self.levels[level - 1] != _ZERO[level]:
                return level
        return 1

    @property
    def routing_key(self) -> str:
        """Levels from level 1 down: ``H53.32.21.000``."""
        return ".".join(self.levels)

    @property
    def subtree_pattern(self) -> str:
        """The topic pattern binding this code and everything under it (``H53.32.#``)."""
        return ".".join((*self.levels[: self.level], "#"))

    @property
    def parent(self) -> OrganCode | None:
        level = self.level
        if level == 1:
            return None
        levels = list(self.levels)
        levels[level - 1] = _ZERO[level]
        return OrganCode((levels[0], levels[1], levels[2], levels[3]))

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
        """True when this code is ``root`` or lies in its subtree."""
        depth = root.level
        return self.levels[:depth] == root.levels[:depth]


# Every envelope names its sender and recipients, and the router reads those codes several
# times over; a country has about 12,000, so their parsed forms are kept (codes are
# immutable). Errors are not cached: a malformed code is parsed, and refused, every time.
@lru_cache(maxsize=65536)
def _parse(text: str) -> OrganCode:
    return OrganCode._parse_uncached(text)


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
