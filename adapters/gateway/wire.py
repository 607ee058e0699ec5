"""The axis' HTTP API on the wire, as the vendor SDK speaks it (docs/gateway.md).

Pure functions, no I/O but reading a spooled body: authenticating a request from its raw
headers, checking ``hash-file`` against the body, taking the file out of the body, and
writing responses.

Authentication: the client sends every parameter ``k`` of the call as a header
``XroadVnpt-k``, then ``XroadVnpt-sign-header`` (a JSON object of those headers, in the
client's own order) and ``XroadVnpt-hash-header`` (hex HMAC-SHA256 of that JSON under the
system's secret). The HMAC is checked over the header's bytes exactly as received, in
constant time, and the parameters are taken from that signed JSON only: a plain header
that is not in it (a leftover, a forgery) is never read.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from backbone.errors import GatewayError, Reason

__all__ = [
    "OK",
    "SignedRequest",
    "authenticate",
    "file_of_body",
    "file_of_spooled_body",
    "response_bytes",
    "unpadded_sha256_hex",
]

_PREFIX: Final = "xroadvnpt-"
_SIGN_HEADER: Final = b"xroadvnpt-sign-header"
_HASH_HEADER: Final = b"xroadvnpt-hash-header"
_SYSTEM_ID: Final = "systemid"
# The SDK appends this after the file's bytes (no multipart framing).
_TRAILER: Final = b"\r\n"
_SPOOL_BLOCK: Final = 1 << 20

OK: Final = {"status": "OK", "ErrorCode": "0", "ErrorDesc": "Success"}


@dataclass(frozen=True, slots=True)
class SignedRequest:
    """What the HMAC covers: the system and its parameters, names in lower case."""

    system_id: str
    params: Mapping[str, str] = field(repr=False)
    # Names signed twice in different cases with different values (``docId`` left over
    # from an earlier call beside this call's ``docid``): refused only where read.
    ambiguous: frozenset[str] = frozenset()

    def get(self, name: str) -> str | None:
        """A parameter by name, whatever its case on the wire (``docId``, ``docid``)."""
        if name.lower() in self.ambiguous:
            # Which one this call means cannot be known; acting on the wrong document is
            # worse than refusing.
            raise GatewayError(
                f"the signed headers name {name!r} twice, in different cases, with different "
                "values (one is a leftover of an earlier call): send it once",
                reason=Reason.GATEWAY_REQUEST_MALFORMED,
            )
        return self.params.get(name.lower())

    def require(self, name: str) -> str:
        value = self.get(name)
        if value is None or not value.strip():
            raise GatewayError(
                f"the signed headers carry no {name!r}",
                reason=Reason.GATEWAY_REQUEST_MALFORMED,
            )
        return value.strip()


def authenticate(
    raw_headers: Sequence[tuple[bytes, bytes]],
    secret_of: Callable[[str], bytes | None],
) -> SignedRequest:
    """Check the request's HMAC and return what it signs.

    ``raw_headers``: as received (names in any case); ``secret_of``: a system's secret, or
    None for a system this gateway does not serve."""
    sign = _single(raw_headers, _SIGN_HEADER)
    given = _single(raw_headers, _HASH_HEADER)
    params, ambiguous = _signed_params(sign)
    if _SYSTEM_ID in ambiguous:
        raise GatewayError(
            "XroadVnpt-sign-header names two different systemids",
            reason=Reason.GATEWAY_REQUEST_MALFORMED,
        )
    system_id = params.get(_SYSTEM_ID, "").strip()
    if not system_id:
        raise GatewayError(
            "XroadVnpt-sign-header names no XroadVnpt-systemid",
            reason=Reason.GATEWAY_REQUEST_MALFORMED,
        )
    secret = secret_of(system_id)
    if secret is None:
        raise GatewayError(
            f"system {system_id!r} is not served by this gateway",
            reason=Reason.GATEWAY_SYSTEM_UNKNOWN,
        )
    expected = hmac.new(secret, sign, hashlib.sha256).hexdigest().encode("ascii")
    if not hmac.compare_digest(expected, given.strip().lower()):
        raise GatewayError(
            f"XroadVnpt-hash-header is not the HMAC-SHA256 of XroadVnpt-sign-header under "
            f"the secret of system {system_id!r}",
            reason=Reason.GATEWAY_SIGNATURE_INVALID,
        )
    return SignedRequest(system_id, params, ambiguous)


def _single(raw_headers: Sequence[tuple[bytes, bytes]], name: bytes) -> bytes:
    values = [value for key, value in raw_headers if key.lower() == name]
    if len(values) != 1:
        what = "no" if not values else f"{len(values)}"
        raise GatewayError(
            f"the request carries {what} {name.decode()} header"
            + ("" if len(values) <= 1 else "s: exactly one is expected"),
            reason=Reason.GATEWAY_REQUEST_MALFORMED,
        )
    return values[0]


def _signed_params(sign: bytes) -> tuple[dict[str, str], frozenset[str]]:
    try:
        document = json.loads(sign)
    except (UnicodeDecodeError, ValueError, RecursionError):  # nested past the parser's depth
        document = None
    if not isinstance(document, dict) or not all(
        isinstance(key, str) and isinstance(value, str) for key, value in document.items()
    ):
        raise GatewayError(
            "XroadVnpt-sign-header is not a JSON object of strings",
            reason=Reason.GATEWAY_REQUEST_MALFORMED,
        )
    params: dict[str, str] = {}
    ambiguous: set[str] = set()
    for key, value in document.items():
        name = key.lower()
        if not name.startswith(_PREFIX):
            continue  # the SDK signs only XroadVnpt- headers; anything else is not a parameter
        name = name[len(_PREFIX) :]
        if params.get(name, value) != value:
            ambiguous.add(name)
        params[name] = value
    return params, frozenset(ambiguous)


def unpadded_sha256_hex(data: bytes) -> str:
    """The SDK's ``hash-file``: SHA-256 in hex, each byte without zero padding."""
    return _unpadded(hashlib.sha256(data).digest())


def _unpadded(digest: bytes) -> str:
    return "".join(f"{byte:x}" for byte in digest)


def file_of_body(body: bytes, hash_file: str) -> bytes:
    """The file the client sent: the body without the SDK's trailing CRLF, checked against
    ``hash-file`` (the SDK's unpadded hex, or ordinary 64-digit hex from other clients).
    A body that matches only with its CRLF kept is a file that really ends in one."""
    candidates = [body[: -len(_TRAILER)], body] if body.endswith(_TRAILER) else [body]
    for candidate in candidates:
        if _is_hash_file(hashlib.sha256(candidate).digest(), hash_file):
            return candidate
    raise _hash_mismatch(hash_file, len(body))


def file_of_spooled_body(path: Path, hash_file: str) -> str:
    """:func:`file_of_body` for a body spooled to ``path``, read a block at a time: the
    SDK's trailing CRLF is cut off the file when the file without it is what ``hash-file``
    names. Returns the file's SHA-256 in hex."""
    whole, without_trailer = hashlib.sha256(), hashlib.sha256()
    held = b""  # the last bytes read, which may be the trailer
    size = 0
    with path.open("rb") as source:
        while block := source.read(_SPOOL_BLOCK):
            size += len(block)
            whole.update(block)
            data = held + block
            without_trailer.update(data[: -len(_TRAILER)])
            held = data[-len(_TRAILER) :]
    if held == _TRAILER and _is_hash_file(digest := without_trailer.digest(), hash_file):
        os.truncate(path, size - len(_TRAILER))
        return digest.hex()
    if _is_hash_file(digest := whole.digest(), hash_file):
        return digest.hex()
    raise _hash_mismatch(hash_file, size)


def _is_hash_file(digest: bytes, hash_file: str) -> bool:
    """Whether ``hash_file`` names this SHA-256 ``digest`` (unpadded or ordinary hex)."""
    wanted = hash_file.strip().lower().encode("ascii", "replace")
    return any(
        hmac.compare_digest(form.encode("ascii"), wanted)
        for form in (_unpadded(digest), digest.hex())
    )


def _hash_mismatch(hash_file: str, size: int) -> GatewayError:
    return GatewayError(
        f"hash-file {hash_file[:80]!r} is not the SHA-256 of the {size} bytes received",
        reason=Reason.GATEWAY_HASH_MISMATCH,
    )


def response_bytes(fields: Mapping[str, object]) -> bytes:
    """A JSON response in US-ASCII (non-ASCII escaped as ``\\uXXXX``): the SDK reads the
    ``sendEdoc`` response as US-ASCII."""
    return json.dumps(fields, ensure_ascii=True, separators=(",", ":")).encode("ascii")
