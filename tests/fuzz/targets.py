"""The fuzz targets: each takes bytes, feeds them to one reader of untrusted input and lets
through only what that reader does not document. A documented error is swallowed; anything
else (another exception, or a documented one without its documented reason) escapes and is
a finding. The same functions run the kept regression inputs in ``make test``.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from pydantic import ValidationError

from adapters.gateway.operations import _message_type, _recipients
from adapters.gateway.wire import authenticate, file_of_body
from backbone.edxml import build, examine, validate
from backbone.edxml.document_id import DocumentId
from backbone.envelope import EnvelopeHeader, KeyWrap, read_frame
from backbone.errors import (
    BackboneError,
    DocumentIdError,
    EdxmlError,
    EnvelopeMalformedError,
    GatewayError,
    Reason,
)
from backbone.wire.events import Event, decode_events
from tests.fuzz import feedback
from tests.fuzz.gateway_request import decode_request

__all__ = ["TARGETS", "Target", "UndocumentedError"]

_R = TypeVar("_R")

# What differs from input to input in a message: quoted names and values, numbers.
_VARIABLE = re.compile(r"'[^']*'|\"[^\"]*\"|\([^)]*\)|\{[^}]*\}|\[[^\]]*\]|[0-9]+")
_KNOWN_FIELDS = (
    frozenset(Event.model_fields)
    | frozenset(EnvelopeHeader.model_fields)
    | frozenset(KeyWrap.model_fields)
)
# read_frame refuses with these two reasons only (backbone/envelope/wire.py, bounds.py).
_FRAME_REASONS = frozenset({Reason.ENVELOPE_MALFORMED, Reason.ENVELOPE_TOO_LARGE})
# The gateway's system in the seeds (tests/fuzz/seeds.py): it is served, any other is not.
GATEWAY_SYSTEM = "qlvb"
GATEWAY_SECRET = "fuzz-secret-of-qlvb"
_AUTH_REASONS = frozenset(
    {
        Reason.GATEWAY_REQUEST_MALFORMED,
        Reason.GATEWAY_SYSTEM_UNKNOWN,
        Reason.GATEWAY_SIGNATURE_INVALID,
    }
)
_PARAMETER_REASONS = frozenset({Reason.GATEWAY_REQUEST_MALFORMED})
_HASH_REASONS = frozenset({Reason.GATEWAY_HASH_MISMATCH})
# The parameters the SDK sends; any other name is the input's own text (see _field).
_KNOWN_PARAMETERS = frozenset(
    {"systemid", "timestamp", "content-type", "from", "to", "servicetype", "messagetype"}
    | {"hash-file", "docid", "filepath", "status"}
)


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


def fuzz_gateway(data: bytes) -> None:
    """The gateway's request parsing (adapters.gateway): ``authenticate`` over the raw
    headers as given; then, as a client holding the secret would send the same headers
    (their sign-header signed again, so that mutated parameters get past the HMAC),
    ``_message_type``, ``_recipients`` (``to``) and ``file_of_body`` against ``hash-file``.
    All refuse with GatewayError and a gateway reason; the JSON is parsed by compiled code,
    so each outcome is told to :mod:`tests.fuzz.feedback`."""
    headers, body = decode_request(data)
    as_sent = _gateway_step("sent", _AUTH_REASONS, lambda: authenticate(headers, _secret_of))
    resigned = _resigned(headers)
    if resigned is None:
        return
    request = _gateway_step("signed", _AUTH_REASONS, lambda: authenticate(resigned, _secret_of))
    if request is None:
        return
    if as_sent is not None and as_sent != request:  # its HMAC was right: the same request
        raise UndocumentedError(f"{as_sent!r} differs once signed again: {request!r}")
    feedback.note(f"param:{_parameter(name)}" for name in request.params)
    message_type = request.get("messagetype") or "edoc"  # as getReceivedEdocList reads it
    _gateway_step("messagetype", _PARAMETER_REASONS, lambda: _message_type(message_type))
    recipients = _gateway_step("to", _PARAMETER_REASONS, lambda: _recipients(request.get("to")))
    if recipients is not None:
        feedback.note([f"to:{min(len(recipients), 4)}"])
    hash_file = request.get("hash-file")
    if hash_file is not None:
        found = _gateway_step("file", _HASH_REASONS, lambda: file_of_body(body, hash_file))
        if found is not None and found not in (body, body[:-2]):
            raise UndocumentedError(f"file_of_body gave {len(found)} bytes not of the body")


def _gateway_step(where: str, allowed: frozenset[Reason], parse: Callable[[], _R]) -> _R | None:
    """``parse()``'s result, or None when it refused as documented."""
    try:
        return parse()
    except GatewayError as exc:
        _reason_given(exc, allowed)
        feedback.note([f"{where}:{exc.reason}:{_shape(exc.message)}"])
        return None


def _secret_of(system_id: str) -> bytes | None:
    return GATEWAY_SECRET.encode() if system_id == GATEWAY_SYSTEM else None


def _resigned(headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]] | None:
    """The headers with their one sign-header's right HMAC in place of any hash-header;
    None without exactly one sign-header (authenticate refused those already)."""
    signs = [value for name, value in headers if name.lower() == b"xroadvnpt-sign-header"]
    if len(signs) != 1:
        return None
    digest = hmac.new(GATEWAY_SECRET.encode(), signs[0], hashlib.sha256).hexdigest()
    kept = [(name, value) for name, value in headers if name.lower() != b"xroadvnpt-hash-header"]
    return [*kept, (b"XroadVnpt-hash-header", digest.encode())]


def _parameter(name: str) -> str:
    return name if name in _KNOWN_PARAMETERS else "?"


TARGETS: dict[str, Target] = {
    target.name: target
    for target in (
        Target("edxml", fuzz_edxml, "edXML pre-scan, parser and reader (examine/validate)"),
        Target("envelope", fuzz_envelope, "envelope frame and header reader (read_frame)"),
        Target("events", fuzz_events, "events decoder (decode_events)"),
        Target("document_id", fuzz_document_id, "DocumentId parser (DocumentId.parse)"),
        Target("gateway", fuzz_gateway, "gateway request parsing (authenticate, to, hash-file)"),
    )
}
