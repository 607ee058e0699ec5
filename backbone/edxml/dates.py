"""edXML's date texts: ``yyyy/MM/dd`` and ``yyyy/MM/dd HH:mm:ss`` (local time, no zone)."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date, datetime
from typing import TypeVar

__all__ = ["format_date", "format_timestamp", "parse_date", "parse_timestamp"]

_T = TypeVar("_T")
_DATE = re.compile(r"([0-9]{4})/([0-9]{2})/([0-9]{2})")
_TIMESTAMP = re.compile(r"([0-9]{4})/([0-9]{2})/([0-9]{2}) ([0-9]{2}):([0-9]{2}):([0-9]{2})")


def parse_date(text: str) -> date:
    """The date ``text`` names; ValueError if it is not ``yyyy/MM/dd`` or no such day exists."""
    year, month, day = _numbers(_DATE, text, "a date yyyy/MM/dd")
    return _checked(text, lambda: date(year, month, day))


def parse_timestamp(text: str) -> datetime:
    year, month, day, hour, minute, second = _numbers(
        _TIMESTAMP, text, "a timestamp yyyy/MM/dd HH:mm:ss"
    )
    return _checked(text, lambda: datetime(year, month, day, hour, minute, second))


def format_date(value: date) -> str:
    # Not strftime: it does not zero-pad years below 1000 on every platform.
    return f"{value.year:04d}/{value.month:02d}/{value.day:02d}"


def format_timestamp(value: datetime) -> str:
    """Whole seconds, as edXML carries them; any zone or microseconds are dropped."""
    return f"{format_date(value)} {value.hour:02d}:{value.minute:02d}:{value.second:02d}"


def _numbers(pattern: re.Pattern[str], text: str, shape: str) -> list[int]:
    match = pattern.fullmatch(text)
    if match is None:
        raise ValueError(f"{text!r} is not {shape}")
    return [int(part) for part in match.groups()]


def _checked(text: str, make: Callable[[], _T]) -> _T:
    try:
        return make()
    except ValueError as exc:  # the shape is right but no such day or time exists
        raise ValueError(f"{text!r} is not a real date: {exc}") from None
