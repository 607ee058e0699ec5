"""How large a header can be, from the model's own limits, and a pre-scan that enforces it
before pydantic sees the JSON.

A header for N recipients is at most :func:`max_header_bytes` (N) bytes: that is the size of
the *widest* header for N recipients, every field at the longest value the model allows
(free text such as ``document_id`` written with the longest JSON escapes), serialised
compactly as the wire format says. Nothing here is a tuned number: change a limit in
:mod:`backbone.envelope.model` and the bounds follow.

:func:`check_header` runs in time linear in the header and stops at the first problem:

1. the header is no larger than the widest header for ``MAX_RECIPIENTS``;
2. it holds no more ``:`` and ``,`` bytes than that header can (every key needs a ``:``,
   every further key or item a ``,``; two ``bytes.count`` calls), so a header of 100,000
   keys is refused before any of them is parsed;
3. its JSON has only the envelope's field names, none twice, and no more objects than one
   per key wrap (``json.loads`` with a hook; the first breach raises);
4. it is no larger than the widest header for the recipients it names.

Only then does pydantic validate it, and then with few keys to report on: pydantic builds
one error object per problem, which is what made 100,000 unknown keys cost seconds.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Any, Final, get_args

from annotated_types import MaxLen
from pydantic import BaseModel

from backbone.envelope.model import MAX_RECIPIENTS, EnvelopeHeader, KeyWrap
from backbone.errors import EnvelopeMalformedError
from backbone.organ import MAX_CODE_LENGTH

__all__ = [
    "MAX_HEADER_BYTES",
    "NO_ALLOWANCE",
    "Allowance",
    "check_header",
    "max_header_bytes",
    "widest_header",
]

# One code point as the longest JSON escape writes it: a UTF-16 surrogate pair, 12 bytes.
_WIDEST_CHARACTER: Final = "\U0001f600"
_SCHEMA_ERROR: Final = "header does not match the envelope schema"


def _max_length(model: type[BaseModel], name: str) -> int:
    for constraint in model.model_fields[name].metadata:
        if isinstance(constraint, MaxLen):
            return int(constraint.max_length)
    raise LookupError(f"{model.__name__}.{name} has no max_length")


def _literal(model: type[BaseModel], name: str) -> Any:
    (value,) = get_args(model.model_fields[name].annotation)
    return value


def _organ_code(index: int) -> str:
    """Distinct, valid and as long as an organ code can be (a Decision 20/2020 one)."""
    return f"H41.{index:0{MAX_CODE_LENGTH - 4}d}"


def widest_header(recipients: int, *, kind: str, text: str = _WIDEST_CHARACTER) -> bytes:
    """The largest header for ``recipients`` of ``kind`` ("document" or "status"), compact
    JSON; free text is made of ``text`` (the widest escape by default). Base64 and
    hexadecimal values are at their longest; the timestamp has microseconds and a
    ``+00:00`` offset; integers are as long as a signed 64-bit one."""
    codes = [_organ_code(index) for index in range(recipients)]
    document = kind == "document"
    fields: dict[str, object] = {
        "version": _literal(EnvelopeHeader, "version"),
        "envelope_id": "ffffffff-ffff-4fff-bfff-ffffffffffff",
        "kind": kind,
        "sender": _organ_code(0),
        "recipients": codes,
        "document_id": text * _max_length(EnvelopeHeader, "document_id"),
        "business_type": 3 if document else None,
        "status_code": None if document else "16",
        "created": "9999-12-31T23:59:59.999999+00:00",
        "payload_size": 2**63 - 1,
        "payload_digest": "f" * 64,
        "key_commitment": "f" * 64,
        "content_encryption": _literal(EnvelopeHeader, "content_encryption"),
        "nonce": "A" * 16,
        "key_wraps": [
            {
                "recipient": code,
                "cert_sha256": "f" * 64,
                "alg": _literal(KeyWrap, "alg"),
                "wrapped_key": "A" * _max_length(KeyWrap, "wrapped_key"),
            }
            for code in codes
        ],
        "sender_certificate": "A" * _max_length(EnvelopeHeader, "sender_certificate"),
        "signature_alg": _literal(EnvelopeHeader, "signature_alg"),
    }
    if document:
        fields["due_date"] = "9999-12-31"
    else:
        fields["status_note"] = text * _max_length(EnvelopeHeader, "status_note")
    return json.dumps(fields, separators=(",", ":"), ensure_ascii=True).encode()


@cache
def _linear(measure: Callable[[bytes], int]) -> tuple[int, int]:
    """(fixed part, part per recipient) of ``measure`` over the widest headers: each key
    wrap and recipient adds the same bytes, so two sizes give the line."""

    def widest(recipients: int) -> int:
        return max(
            measure(widest_header(recipients, kind=kind, text=text))
            for kind in ("document", "status")
            for text in (_WIDEST_CHARACTER, ":", ",")
        )

    one, two = widest(1), widest(2)
    return one - (two - one), two - one


def _size(header: bytes) -> int:
    return len(header)


def _colons(header: bytes) -> int:
    return header.count(b":")


def _commas(header: bytes) -> int:
    return header.count(b",")


def _at_most(measure: Callable[[bytes], int], recipients: int) -> int:
    fixed, each = _linear(measure)
    return fixed + each * recipients


def max_header_bytes(recipients: int) -> int:
    """The largest header, in bytes, that names ``recipients`` recipients."""
    return _at_most(_size, recipients)


MAX_HEADER_BYTES: Final = max_header_bytes(MAX_RECIPIENTS)
_MAX_COLONS: Final = _at_most(_colons, MAX_RECIPIENTS)
_MAX_COMMAS: Final = _at_most(_commas, MAX_RECIPIENTS)
_FIELD_NAMES: Final = frozenset(EnvelopeHeader.model_fields) | frozenset(KeyWrap.model_fields)
_MAX_OBJECTS: Final = 1 + MAX_RECIPIENTS  # the header and its key wraps


@dataclass(frozen=True, slots=True)
class Allowance:
    """What a header *extending* the envelope header (the chunked form's,
    :mod:`backbone.envelope.chunked`) may hold beyond it: its extra field names, and the
    bytes, ``:`` and ``,`` its widest extra fields take."""

    fields: frozenset[str] = frozenset()
    size: int = 0
    colons: int = 0
    commas: int = 0


NO_ALLOWANCE: Final = Allowance()


class _BreachError(Exception):
    """The first field name or object a header may not have (raised inside json.loads)."""


class _FieldNames:
    """``object_pairs_hook`` for ``json.loads``: only the envelope's field names, each once
    per object, and no more objects than a header has. The first breach raises."""

    def __init__(self, names: frozenset[str]) -> None:
        self._objects = 0
        self._names = names

    def __call__(self, pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        self._objects += 1
        if self._objects > _MAX_OBJECTS:
            raise _BreachError(f"more than {_MAX_OBJECTS} JSON objects (one per key wrap, and one)")
        seen: set[str] = set()
        for name, _ in pairs:
            if name not in self._names:
                raise _BreachError(f"unknown field {name[:64]!r}")
            if name in seen:
                raise _BreachError(f"field {name!r} appears twice in one object")
            seen.add(name)
        return dict(pairs)


def check_header(header: bytes, allowance: Allowance = NO_ALLOWANCE) -> None:
    """Refuse ``header`` (:class:`EnvelopeMalformedError`, saying why) if it is larger, or
    holds more keys, items or objects, than a header for the recipients it names can, or a
    field name the envelope does not have; otherwise pydantic validates it cheaply.
    ``allowance``: what an extending header may hold beyond these."""
    if len(header) > (largest := MAX_HEADER_BYTES + allowance.size):
        raise EnvelopeMalformedError(
            f"header length {len(header)} exceeds the limit of {largest} bytes (the "
            f"largest header, for {MAX_RECIPIENTS} recipients)"
        )
    for measure, limit, what in (
        (_colons, _MAX_COLONS + allowance.colons, "':'"),
        (_commas, _MAX_COMMAS + allowance.commas, "','"),
    ):
        if (count := measure(header)) > limit:
            raise EnvelopeMalformedError(
                f"{_SCHEMA_ERROR}: it holds {count} {what} bytes; a header for "
                f"{MAX_RECIPIENTS} recipients holds at most {limit}"
            )
    try:
        fields = json.loads(
            header.decode("utf-8"), object_pairs_hook=_FieldNames(_FIELD_NAMES | allowance.fields)
        )
    except _BreachError as breach:
        raise EnvelopeMalformedError(f"{_SCHEMA_ERROR}: {breach}") from None
    except (ValueError, RecursionError):
        return  # not UTF-8 or not JSON: pydantic says where, in one error
    recipients = fields.get("recipients") if isinstance(fields, dict) else None
    if not isinstance(recipients, list) or not recipients:
        return  # pydantic says what is wrong with it
    if len(recipients) > MAX_RECIPIENTS:
        raise EnvelopeMalformedError(
            f"{_SCHEMA_ERROR}: recipients: {len(recipients)} recipients; at most {MAX_RECIPIENTS}"
        )
    limit = max_header_bytes(len(recipients)) + allowance.size
    if len(header) > limit:
        raise EnvelopeMalformedError(
            f"header is {len(header)} bytes; a header for {len(recipients)} recipient(s) is "
            f"at most {limit} bytes"
        )
