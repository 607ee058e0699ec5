"""The chunked envelope's header, its limits, and which form a document travels in.

A document larger than one chunk (:func:`travels_chunked`) is encrypted with STREAM
(:mod:`backbone.envelope.stream_aead`) and sent as one signed header message and its chunk
messages (:mod:`backbone.envelope.chunk_wire`). The header extends the single-message
header (same routing fields, key wraps, key commitment and signature) with what commits to
the chunks: the plaintext size, the chunk size, and each chunk's SHA-256 in order.

Why a list of digests rather than a Merkle root: each chunk is then checked against the
signed header alone, as it passes, with nothing carried beside it; a root would need an
inclusion proof in every chunk message for the same check. The list is bounded
(:data:`MAX_CHUNK_COUNT` digests, 67 bytes each in JSON), so the header stays well under one
broker message. ``payload_digest`` is the SHA-256 of the concatenated raw digests, so the
one value that names a payload elsewhere (logs, the store) still does.
"""

from __future__ import annotations

import base64
import hashlib
import json
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, Literal, Self

from pydantic import Field, model_validator

from backbone.envelope.bounds import Allowance
from backbone.envelope.model import EnvelopeHeader, Sha256Hex
from backbone.envelope.stream_aead import CONSTRUCTION, TAG_BYTES
from backbone.envelope.wire import DEFAULT_MAX_ENVELOPE_SIZE
from backbone.errors import ConfigurationError, DocumentTooLargeError

__all__ = [
    "CHUNKED_ALLOWANCE",
    "DEFAULT_CHUNK_BYTES",
    "MAX_CHUNK_COUNT",
    "ChunkLimits",
    "ChunkedHeader",
    "chunk_count",
    "digests_digest",
    "stream_aad",
    "travels_chunked",
]

MiB: Final = 1 << 20
DEFAULT_CHUNK_BYTES: Final = 4 * MiB
# The model's hard ceiling, whatever the configuration: 1 GiB in 256 KiB chunks.
MAX_CHUNK_COUNT: Final = 4096
# A chunk message is its framing (magic, envelope id, index) and the ciphertext.
CHUNK_FRAMING_BYTES: Final = 4 + 36 + 4


def chunk_count(document_size: int, chunk_size: int) -> int:
    """How many chunks ``document_size`` bytes make: at least one (an empty last chunk)."""
    return max(1, -(-document_size // chunk_size))


def digests_digest(digests: Sequence[str]) -> str:
    """SHA-256 of the chunks' raw SHA-256 digests, concatenated in order (hex)."""
    return hashlib.sha256(b"".join(bytes.fromhex(digest) for digest in digests)).hexdigest()


class ChunkedHeader(EnvelopeHeader):
    """The signed header of a document that travels in chunks."""

    # The same AES-256-GCM, used as STREAM: a narrower literal than the single form's.
    content_encryption: Literal["A256GCM-STREAM"] = Field(  # type: ignore[assignment]
        description="STREAM (Hoang, Reyhanitabar, Rogaway, Vizár 2015) over AES-256-GCM"
    )
    nonce: str = Field(
        pattern=r"^[A-Za-z0-9+/]{10}==$", description="base64 of the 7-byte STREAM nonce prefix"
    )
    payload_size: int = Field(
        ge=TAG_BYTES, description="every chunk's ciphertext together, GCM tags included"
    )
    payload_digest: Sha256Hex = Field(
        description="SHA-256 of the chunk digests' raw bytes, concatenated in order"
    )
    document_size: int = Field(ge=0, description="plaintext bytes of the whole document")
    chunk_size: int = Field(ge=1, description="plaintext bytes per chunk; the last holds the rest")
    chunk_digests: list[Sha256Hex] = Field(
        min_length=1,
        max_length=MAX_CHUNK_COUNT,
        fail_fast=True,
        description="SHA-256 of each chunk's ciphertext, in chunk order",
    )

    @model_validator(mode="after")
    def _chunks_consistent(self) -> Self:
        count = chunk_count(self.document_size, self.chunk_size)
        if len(self.chunk_digests) != count:
            raise ValueError(
                f"{self.document_size} bytes in chunks of {self.chunk_size} make {count} "
                f"chunk(s); chunk_digests lists {len(self.chunk_digests)}"
            )
        if self.payload_size != self.document_size + TAG_BYTES * count:
            raise ValueError("payload_size is not document_size plus one GCM tag per chunk")
        if self.payload_digest != digests_digest(self.chunk_digests):
            raise ValueError("payload_digest is not the SHA-256 of chunk_digests")
        return self

    @property
    def chunk_count(self) -> int:
        return len(self.chunk_digests)

    @property
    def nonce_prefix(self) -> bytes:
        return base64.b64decode(self.nonce)

    def chunk_plaintext_size(self, index: int) -> int:
        if index < self.chunk_count - 1:
            return self.chunk_size
        return self.document_size - self.chunk_size * (self.chunk_count - 1)

    def chunk_ciphertext_size(self, index: int) -> int:
        return self.chunk_plaintext_size(index) + TAG_BYTES


_AAD = struct.Struct(">36sQQ")
_AAD_LABEL: Final = b"vdx-chunked-1"


def stream_aad(envelope_id: str, document_size: int, chunk_size: int) -> bytes:
    """Every chunk's associated data: the document's stream parameters, which the signed
    header repeats. (Not the header bytes themselves: they hold the chunk digests, which
    exist only once the chunks are encrypted.) The envelope id makes it unique per
    document, so a chunk cannot move to another even under the same key."""
    return _AAD_LABEL + _AAD.pack(envelope_id.encode("ascii"), document_size, chunk_size)


def _widest_extra_fields() -> bytes:
    widest = {
        "document_size": 2**63 - 1,
        "chunk_size": 2**63 - 1,
        "chunk_digests": ["f" * 64] * MAX_CHUNK_COUNT,
        # the longer content_encryption value; the nonce prefix is shorter than a nonce
        "content_encryption": CONSTRUCTION,
    }
    return json.dumps(widest, separators=(",", ":")).encode()


_EXTRA: Final = _widest_extra_fields()
# What the chunked header may hold beyond the widest single-message header (``bounds``).
CHUNKED_ALLOWANCE: Final = Allowance(
    fields=frozenset(ChunkedHeader.model_fields) - frozenset(EnvelopeHeader.model_fields),
    size=len(_EXTRA),
    colons=_EXTRA.count(b":"),
    commas=_EXTRA.count(b","),
)


@dataclass(frozen=True, slots=True)
class ChunkLimits:
    """Limits on chunked documents; the keys are named as configuration will name them.

    ``chunk_bytes`` is what a sender splits with; a header whose chunk size lies outside
    ``min_chunk_bytes``..``max_chunk_bytes``, or whose document exceeds
    ``max_document_bytes``, is refused before any chunk is read."""

    max_document_bytes: int = 1 << 30
    min_chunk_bytes: int = 1 * MiB
    max_chunk_bytes: int = 8 * MiB
    chunk_bytes: int = DEFAULT_CHUNK_BYTES

    def __post_init__(self) -> None:
        if not 0 < self.min_chunk_bytes <= self.chunk_bytes <= self.max_chunk_bytes:
            raise ConfigurationError(
                "chunk_bytes must lie between min_chunk_bytes and max_chunk_bytes (all above "
                f"0); they are {self.chunk_bytes}, {self.min_chunk_bytes} and "
                f"{self.max_chunk_bytes}"
            )
        largest_message = self.max_chunk_bytes + TAG_BYTES + CHUNK_FRAMING_BYTES
        if largest_message > DEFAULT_MAX_ENVELOPE_SIZE:
            raise ConfigurationError(
                f"max_chunk_bytes {self.max_chunk_bytes} makes chunk messages of "
                f"{largest_message} bytes, above the broker's {DEFAULT_MAX_ENVELOPE_SIZE}: "
                "lower it"
            )
        if chunk_count(self.max_document_bytes, self.min_chunk_bytes) > MAX_CHUNK_COUNT:
            raise ConfigurationError(
                f"max_document_bytes {self.max_document_bytes} in chunks of min_chunk_bytes "
                f"{self.min_chunk_bytes} exceeds {MAX_CHUNK_COUNT} chunks: raise "
                "min_chunk_bytes or lower max_document_bytes"
            )

    def check(self, header: ChunkedHeader) -> None:
        """Raise :class:`DocumentTooLargeError` when ``header`` announces more than these
        limits allow."""
        if header.document_size > self.max_document_bytes:
            raise DocumentTooLargeError(
                f"envelope {header.envelope_id} announces a document of {header.document_size} "
                f"bytes; the limit (max_document_bytes) is {self.max_document_bytes}"
            )
        if not self.min_chunk_bytes <= header.chunk_size <= self.max_chunk_bytes:
            raise DocumentTooLargeError(
                f"envelope {header.envelope_id} announces chunks of {header.chunk_size} bytes; "
                f"they must lie between {self.min_chunk_bytes} and {self.max_chunk_bytes}"
            )


def travels_chunked(document_size: int, limits: ChunkLimits) -> bool:
    """Whether a document of ``document_size`` bytes goes in chunks: only when it does not
    fit in one chunk; smaller ones keep the single-message envelope."""
    return document_size > limits.chunk_bytes
