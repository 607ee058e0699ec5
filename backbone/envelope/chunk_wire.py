"""A chunked document's messages on the wire, and the checks that need only the header.

Header message (one per document, sent before its chunks)::

    b"VDXH" | u32 header length | header (UTF-8 JSON) | u32 signature length | signature

the single-message framing (:mod:`backbone.envelope.wire`) with no ciphertext. Chunk
message (one per chunk)::

    b"VDXC" | envelope id (36 ASCII bytes) | u32 chunk index (big-endian) | ciphertext

A router or recipient verifies the header once (:func:`verify_chunked_header`), then each
chunk against it (:func:`check_chunk`) without decrypting anything.
"""

from __future__ import annotations

import hashlib
import re
import struct
from dataclasses import dataclass, field
from datetime import datetime
from typing import Final, NamedTuple

from pydantic import ValidationError

from backbone.envelope.binding import check_binding
from backbone.envelope.bounds import MAX_HEADER_BYTES, check_header
from backbone.envelope.chunked import CHUNKED_ALLOWANCE, ChunkedHeader, ChunkLimits
from backbone.envelope.model import summarize
from backbone.envelope.unseal import verify_signature
from backbone.envelope.wire import DEFAULT_MAX_ENVELOPE_SIZE, encode, split_frame
from backbone.errors import ChunkError, EnvelopeMalformedError, Reason
from backbone.pki.validation import CertificateValidator, ValidatedCertificate

__all__ = [
    "CHUNK_MAGIC",
    "HEADER_MAGIC",
    "Chunk",
    "ChunkedFrame",
    "VerifiedChunkedHeader",
    "check_chunk",
    "encode_chunk",
    "encode_header",
    "read_chunk",
    "read_chunked_header",
    "verify_chunked_header",
]

HEADER_MAGIC: Final = b"VDXH"
CHUNK_MAGIC: Final = b"VDXC"
MAX_CHUNKED_HEADER_SIZE: Final = MAX_HEADER_BYTES + CHUNKED_ALLOWANCE.size

_ID_BYTES: Final = 36
_CHUNK_PREFIX = struct.Struct(f">4s{_ID_BYTES}sI")
_UUID: Final = re.compile(rb"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


class ChunkedFrame(NamedTuple):
    header: ChunkedHeader
    header_bytes: bytes  # exactly as on the wire: what the signature covers
    signature: bytes


@dataclass(frozen=True, slots=True)
class VerifiedChunkedHeader:
    """A chunked header within the limits, signed by its (valid, bound) sender."""

    header: ChunkedHeader
    sender: ValidatedCertificate
    body: bytes = field(repr=False)  # the header message as received, for staging


@dataclass(frozen=True, slots=True)
class Chunk:
    envelope_id: str
    index: int
    ciphertext: bytes = field(repr=False)


def encode_header(header_bytes: bytes, signature: bytes) -> bytes:
    return encode(header_bytes, signature, b"", magic=HEADER_MAGIC)


def encode_chunk(envelope_id: str, index: int, ciphertext: bytes) -> bytes:
    return _CHUNK_PREFIX.pack(CHUNK_MAGIC, envelope_id.encode("ascii"), index) + ciphertext


def read_chunked_header(body: bytes) -> ChunkedFrame:
    """Framing and schema of a header message (bounded before pydantic, as ``read_frame``)."""
    header_bytes, signature, rest = split_frame(
        body,
        magic=HEADER_MAGIC,
        max_size=MAX_CHUNKED_HEADER_SIZE + 2048,  # the framing and the largest signature
        max_header_size=MAX_CHUNKED_HEADER_SIZE,
    )
    if rest:
        raise EnvelopeMalformedError(
            f"a chunked header message carries {len(rest)} bytes after its signature"
        )
    check_header(header_bytes, CHUNKED_ALLOWANCE)
    try:
        header = ChunkedHeader.model_validate_json(header_bytes)
    except ValidationError as exc:
        raise EnvelopeMalformedError(
            f"header does not match the chunked envelope schema: {summarize(exc)}"
        ) from None
    return ChunkedFrame(header, header_bytes, signature)


def verify_chunked_header(
    body: bytes,
    validator: CertificateValidator,
    limits: ChunkLimits,
    *,
    at: datetime | None = None,
) -> VerifiedChunkedHeader:
    """Framing and schema, then the limits (before any chunk is read, and before the
    signature's cost), then the sender's certificate and signature, then the DocumentId's
    binding: what :func:`~backbone.envelope.unseal.verify_frame` does for one message,
    without the payload, which arrives in chunks."""
    frame = read_chunked_header(body)
    limits.check(frame.header)
    sender = verify_signature(frame.header, frame.header_bytes, frame.signature, validator, at=at)
    check_binding(frame.header)
    return VerifiedChunkedHeader(frame.header, sender, body)


def read_chunk(body: bytes, *, max_size: int = DEFAULT_MAX_ENVELOPE_SIZE) -> Chunk:
    """The parts of a chunk message; :class:`EnvelopeMalformedError` when it is not one."""
    if len(body) > max_size:
        raise EnvelopeMalformedError(
            f"chunk message is {len(body)} bytes; the limit is {max_size}",
            reason=Reason.ENVELOPE_TOO_LARGE,
        )
    if len(body) < _CHUNK_PREFIX.size:
        raise EnvelopeMalformedError(
            f"chunk message is {len(body)} bytes, too short for its prefix ({_CHUNK_PREFIX.size})"
        )
    magic, envelope_id, index = _CHUNK_PREFIX.unpack_from(body)
    if magic != CHUNK_MAGIC:
        raise EnvelopeMalformedError(
            f"chunk message starts with {magic!r}, not the magic {CHUNK_MAGIC!r}"
        )
    if not _UUID.match(envelope_id):
        raise EnvelopeMalformedError(f"chunk message names envelope {envelope_id[:36]!r}")
    return Chunk(envelope_id.decode("ascii"), index, body[_CHUNK_PREFIX.size :])


def check_chunk(header: ChunkedHeader, chunk: Chunk) -> None:
    """Raise :class:`ChunkError` unless ``chunk`` is the one ``header`` signs for at its
    index: of this document (``chunk_foreign``), within the count (``chunk_surplus``), of
    the announced length and SHA-256 (``chunk_tampered``; ``chunk_out_of_order`` when it is
    the chunk announced at another index)."""
    where = f"chunk {chunk.index} of envelope {header.envelope_id}"
    if chunk.envelope_id != header.envelope_id:
        raise ChunkError(
            f"a chunk of envelope {chunk.envelope_id} was offered as part of envelope "
            f"{header.envelope_id}",
            reason=Reason.CHUNK_FOREIGN,
        )
    if chunk.index >= header.chunk_count:
        raise ChunkError(
            f"{where}: the signed header announces {header.chunk_count} chunk(s) "
            f"(0..{header.chunk_count - 1})",
            reason=Reason.CHUNK_SURPLUS,
        )
    digest = hashlib.sha256(chunk.ciphertext).hexdigest()
    if digest == header.chunk_digests[chunk.index]:
        return  # the digest commits to the length too
    if digest in header.chunk_digests:
        raise ChunkError(
            f"{where} carries chunk {header.chunk_digests.index(digest)}'s ciphertext",
            reason=Reason.CHUNK_OUT_OF_ORDER,
        )
    expected = header.chunk_ciphertext_size(chunk.index)
    size = (
        ""
        if len(chunk.ciphertext) == expected
        else f" ({len(chunk.ciphertext)} bytes, not {expected})"
    )
    raise ChunkError(
        f"{where} does not match the SHA-256 the signed header gives for it{size}: it was "
        "altered or corrupted"
    )
