"""The fuzz targets: each takes bytes, feeds them to one reader of untrusted input and lets
through only what that reader does not document. A documented error is swallowed; anything
else (another exception, or a documented one without its documented reason) escapes and is
a finding. The same functions run the kept regression inputs in ``make test``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from pydantic import ValidationError

from backbone.edxml import build, examine, validate
from backbone.edxml.document_id import DocumentId
from backbone.envelope import EnvelopeHeader, KeyWrap, read_frame
from backbone.errors import (
    BackboneError,
    DocumentIdError,
    EdxmlError,
    EnvelopeMalformedError,
    Reason,
)
from backbone.wire.events import Event, decode_events
from tests.fuzz import feedback

__all__ = ["TARGETS", "Target", "UndocumentedError"]

# What differs from input to input in a message: quoted names and values, numbers.
_VARIABLE = re.compile(r"'[^']*'|\"[^\"]*\"|\([^)]*\)|\{[^}]*\}|\[[^\]]*\]|[0-9]+")
_KNOWN_FIELDS = (
    frozenset(Event.model_fields)
    | frozenset(EnvelopeHeader.model_fields)
    | frozenset(KeyWrap.model_fields)
)
# read_frame refuses with these two reasons only (backbone/envelope/wire.py, bounds.py).
_FRAME_REASONS = frozenset({Reason.ENVELOPE_MALFORMED, Reason.ENVELOPE_TOO_LARGE})


class UndocumentedError(AssertionError):
    """A documented exception type raised with something its documentation does not say."""


@dataclass(frozen=True, slots=True)
class Target:
    name: str
    run: Callable[[bytes], None]
    what: str  # one line for the report


def _reason_given(exc: BackboneError, allowed: frozenset[Reason] | None = None) -> None:
    """Every refusal has a reason code; UNSPECIFIED or one outside ``allowed`` is a finding."""
    if exc.reason is Reason.UNSPECIFIED or (allowed is not None and exc.reason not in allowed):
        raise UndocumentedError(f"{type(exc).__name__} with reason {exc.reason!r}: {exc}")


def fuzz_edxml(data: bytes) -> None:
    """The pre-scan, hardened parse, schema, checks and reader: ``examine`` reports every
    problem and never raises; ``accepted()`` (what ``validate`` returns) raises EdxmlError;
    an accepted message comes back unchanged from ``validate(build(message))``."""
    examination = examine(data)
    # libxml2 parses and validates in C, out of atheris' sight: each kind of problem (its
    # reason and the shape of its message) is an outcome of its own.
    feedback.note(f"{issue.reason}:{_shape(issue.message)}" for issue in examination.issues)
    if examination.ok != (examination.reason is None) or (
        not examination.ok and not examination.issues
    ):
        raise UndocumentedError(f"inconsistent examination: {examination!r}")
    try:
        message = examination.accepted()
    except EdxmlError as exc:
        _reason_given(exc)
        return
    if validate(build(message)) != message:  # documented in backbone.edxml: a round trip
        raise UndocumentedError(f"{message!r} changes through build() and validate()")


def _shape(message: str) -> str:
    """``XML is not well-formed: Opening and ending tag mismatch: X line 3 ...`` →
    ``XML is not well-formed:Opening and``: the kind of problem without the input's own
    names, values and numbers. With those kept in, nearly every input looked new and the
    corpus filled with junk."""
    parts = _VARIABLE.sub("", message).split(":")[:2]
    return ":".join(
        " ".join(part.split()[:words]) for part, words in zip(parts, (6, 2), strict=False)
    )


def fuzz_envelope(data: bytes) -> None:
    """The envelope's framing and its header's bounds and schema (``read_frame``). The
    header's schema is pydantic-core's: its outcome is told to :mod:`tests.fuzz.feedback`."""
    try:
        frame = read_frame(data)
    except EnvelopeMalformedError as exc:
        _reason_given(exc, _FRAME_REASONS)
        if isinstance(exc.__context__, ValidationError):  # raised ``from None``, still kept
            _note_errors(exc.__context__)
        return
    feedback.note(f"header:{key}" for key in frame.header.model_fields_set)


def fuzz_events(data: bytes) -> None:
    """An events message body (``decode_events``: pydantic's ValidationError). Its outcome
    is told to :mod:`tests.fuzz.feedback`: the decoder is compiled code atheris cannot see."""
    try:
        events = decode_events(data)
    except ValidationError as exc:
        _note_errors(exc)
        return
    feedback.note([f"events:{min(len(events), 16)}"])
    for event in events:
        feedback.note(f"{event.type}:{key}" for key in event.model_fields_set)


def _note_errors(exc: ValidationError) -> None:
    errors = exc.errors(include_url=False)
    feedback.note(f"{e['type']}@{_field(e['loc'])}" for e in errors)
    feedback.note([f"errors:{min(len(errors), 16)}"])


def _field(location: tuple[int | str, ...]) -> str:
    """The model field an error is at; an unknown key (``extra_forbidden``) is the input's
    own text, and counting each as new filled every slot."""
    field = next((part for part in reversed(location) if isinstance(part, str)), "")
    return field if field in _KNOWN_FIELDS else "?"


def fuzz_document_id(data: bytes) -> None:
    """``DocumentId.parse`` (DocumentIdError). Bytes that are not UTF-8 become lone
    surrogates, so the parser also meets characters no decoder would hand it."""
    text = data.decode("utf-8", "surrogateescape")
    try:
        parsed = DocumentId.parse(text)
    except DocumentIdError as exc:
        _reason_given(exc, frozenset({Reason.DOCUMENT_ID_MALFORMED}))
        return
    if str(parsed) != text:  # documented: str() gives back the text it was parsed from
        raise UndocumentedError(f"{text!r} parsed to {parsed!r}, which prints differently")


TARGETS: dict[str, Target] = {
    target.name: target
    for target in (
        Target("edxml", fuzz_edxml, "edXML pre-scan, parser and reader (examine/validate)"),
        Target("envelope", fuzz_envelope, "envelope frame and header reader (read_frame)"),
        Target("events", fuzz_events, "events decoder (decode_events)"),
        Target("document_id", fuzz_document_id, "DocumentId parser (DocumentId.parse)"),
    )
}
