"""The envelope's bytes on the wire (the AMQP message body)::

    b"VDX1" | u32 header length | header (UTF-8 JSON)
            | u32 signature length | signature | ciphertext

Lengths are big-endian unsigned 32-bit integers; the ciphertext is the rest of the body.
:func:`read_frame` only parses this framing and the header schema: it trusts nothing yet.
"""

from __future__ import annotations

import struct
from typing import NamedTuple

from pydantic import ValidationError

from backbone.envelope.bounds import MAX_HEADER_BYTES, check_header
from backbone.envelope.model import EnvelopeHeader, summarize
from backbone.errors import EnvelopeMalformedError, Reason

__all__ = [
    "DEFAULT_MAX_ENVELOPE_SIZE",
    "MAGIC",
    "MAX_HEADER_SIZE",
    "MAX_SIGNATURE_SIZE",
    "Frame",
    "encode",
    "header_length",
    "read_frame",
    "split_frame",
]

MAGIC = b"VDX1"
MAX_HEADER_SIZE = MAX_HEADER_BYTES  # the widest header, for MAX_RECIPIENTS (``bounds``)
MAX_SIGNATURE_SIZE = 1024  # an RSA-8192 signature
# RabbitMQ 4 refuses bodies above 16 MiB by default (max_message_size); so do we.
DEFAULT_MAX_ENVELOPE_SIZE = 16 << 20

_LENGTH = struct.Struct(">I")
_PREFIX = len(MAGIC) + _LENGTH.size


class Frame(NamedTuple):
    header: EnvelopeHeader
    header_bytes: bytes  # exactly as on the wire: what the signature covers
    signature: bytes
    ciphertext: bytes


def encode(
    header_bytes: bytes, signature: bytes, ciphertext: bytes, *, magic: bytes = MAGIC
) -> bytes:
    return b"".join(
        (
            magic,
            _LENGTH.pack(len(header_bytes)),
            header_bytes,
            _LENGTH.pack(len(signature)),
            signature,
            ciphertext,
        )
    )


def header_length(body: bytes) -> int:
    """The header length the framing claims (0 when the body is too short to say)."""
    if len(body) < _PREFIX:
        return 0
    return int(_LENGTH.unpack_from(body, len(MAGIC))[0])


def read_frame(body: bytes, *, max_size: int = DEFAULT_MAX_ENVELOPE_SIZE) -> Frame:
    """Split ``body`` into its parts and parse the header; raise
    :class:`EnvelopeMalformedError` saying exactly what is wrong with the framing."""
    header_bytes, signature, ciphertext = split_frame(
        body, magic=MAGIC, max_size=max_size, max_header_size=MAX_HEADER_SIZE
    )
    check_header(header_bytes)  # bounded, first problem wins: before pydantic's error list
    try:
        header = EnvelopeHeader.model_validate_json(header_bytes)
    except ValidationError as exc:
        raise EnvelopeMalformedError(
            f"header does not match the envelope schema: {summarize(exc)}"
        ) from None
    return Frame(header, header_bytes, signature, ciphertext)


def split_frame(
    body: bytes, *, magic: bytes, max_size: int, max_header_size: int
) -> tuple[bytes, bytes, bytes]:
    """(header bytes, signature, the rest) of a body framed as above under ``magic``, the
    framing alone checked (:class:`EnvelopeMalformedError` saying what is wrong)."""
    size = len(body)
    if size > max_size:
        raise EnvelopeMalformedError(
            f"envelope is {size} bytes; the limit is {max_size}", reason=Reason.ENVELOPE_TOO_LARGE
        )
    if size < _PREFIX:
        raise EnvelopeMalformedError(
            f"envelope is {size} bytes, too short for the magic and header length ({_PREFIX})"
        )
    if body[: len(magic)] != magic:
        raise EnvelopeMalformedError(
            f"envelope starts with {body[: len(magic)]!r}, not the magic {magic!r}"
        )
    (header_length,) = _LENGTH.unpack_from(body, len(magic))
    header_end = _PREFIX + header_length
    if header_length > max_header_size:
        raise EnvelopeMalformedError(
            f"header length {header_length} exceeds the limit of {max_header_size} bytes"
        )
    if header_end + _LENGTH.size > size:
        raise EnvelopeMalformedError(
            f"header length {header_length} exceeds body ({size - _PREFIX} bytes follow the "
            "length field, and a signature length must follow the header)"
        )
    (signature_length,) = _LENGTH.unpack_from(body, header_end)
    signature_start = header_end + _LENGTH.size
    signature_end = signature_start + signature_length
    if not 0 < signature_length <= MAX_SIGNATURE_SIZE:
        raise EnvelopeMalformedError(
            f"signature length {signature_length} is outside 1..{MAX_SIGNATURE_SIZE} bytes"
        )
    if signature_end > size:
        raise EnvelopeMalformedError(
            f"signature length {signature_length} exceeds body ({size - signature_start} bytes "
            "follow the signature length field)"
        )
    return body[_PREFIX:header_end], body[signature_start:signature_end], body[signature_end:]
