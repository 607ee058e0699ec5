"""The DocumentId of QCVN 102: ``<OrganId>,<yyyy/MM/dd>,<Number>/<Notation>``.

``000.00.00.G22,2015/09/30,7816/VPCP-TTĐT``: the sender's organ code, the document's date,
its number and notation (Vietnamese letters allowed). The organ code is what binds a
document to its sender: every party checks it against the sender (a document, a take-back)
or the addressee (every other status), so the id is parsed the same way everywhere.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from datetime import date
from typing import Final

from backbone.edxml.dates import parse_date
from backbone.errors import DocumentIdError, OrganCodeError
from backbone.organ import OrganCode

__all__ = ["MAX_DOCUMENT_ID", "SHAPE", "DocumentId"]

SHAPE: Final = (
    "<OrganId>,<yyyy/MM/dd>,<Number>/<Notation> (e.g. 000.00.00.G22,2015/09/30,7816/VPCP-TTĐT)"
)
MAX_DOCUMENT_ID: Final = 512  # characters, as the envelope header allows


@dataclass(frozen=True, slots=True)
class DocumentId:
    """A parsed DocumentId; ``str()`` gives back the text it was parsed from."""

    organ: OrganCode
    day: date
    number: str
    notation: str
    text: str

    @classmethod
    def parse(cls, text: str) -> DocumentId:
        """Parse ``text``; raise :class:`DocumentIdError` saying what is wrong. No control,
        format or separator characters anywhere (a newline or escape in an id reaches logs,
        file names and other agencies' software), and no whitespace."""
        if len(text) > MAX_DOCUMENT_ID:
            raise DocumentIdError(
                f"DocumentId is {len(text)} characters; the limit is {MAX_DOCUMENT_ID}"
            )
        shown = repr(text)  # control characters escaped, Vietnamese letters kept
        bad = _forbidden(text)
        if bad is not None:
            raise DocumentIdError(
                f"DocumentId {shown} holds {bad}; expected {SHAPE} in printable characters"
            )
        parts = text.split(",")
        if len(parts) != 3:
            raise DocumentIdError(
                f"DocumentId {shown} has {len(parts)} comma-separated part(s); expected {SHAPE}"
            )
        organ_text, day_text, number_notation = parts
        try:
            organ = OrganCode.parse(organ_text)
        except OrganCodeError as exc:
            raise DocumentIdError(f"DocumentId {shown}: {exc.message}") from None
        try:
            day = parse_date(day_text)
        except ValueError as exc:
            raise DocumentIdError(f"DocumentId {shown}: {exc}") from None
        number, slash, notation = number_notation.partition("/")
        if not (number and slash and notation):
            raise DocumentIdError(
                f"DocumentId {shown}: {number_notation!r} is not <Number>/<Notation>"
            )
        return cls(organ, day, number, notation, text)

    @property
    def sender(self) -> str:
        """The organ code of the agency that issued the document (its original sender)."""
        return str(self.organ)

    def __str__(self) -> str:
        return self.text


def _forbidden(text: str) -> str | None:
    """The first character a DocumentId may not hold, described, or None."""
    # str.isprintable() is False exactly for the categories C* and Z* but the ASCII space
    # (the same Unicode database as unicodedata): one C loop clears the usual id.
    if text.isprintable() and " " not in text:
        return None
    for character in text:
        category = unicodedata.category(character)
        if category[0] in "CZ":  # control, format, unassigned …; spaces and line separators
            return f"the character U+{ord(character):04X} ({category})"
    return None
