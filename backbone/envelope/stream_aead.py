"""STREAM over AES-256-GCM: the streaming AEAD that encrypts a large document chunk by chunk.

The construction is STREAM (Hoang, Reyhanitabar, Rogaway and Vizár, "Online
Authenticated-Encryption and its Nonce-Reuse Misuse-Resistance", CRYPTO 2015), which
makes a nonce-based AEAD into a nonce-based online AE (nOAE) scheme, laid out as Tink's
AES-GCM-HKDF streaming AEAD lays out its nonces:

    nonce of chunk i = prefix (7 random bytes) ‖ i (u32, big-endian) ‖ last (0x00 or 0x01)

Each chunk is AES-256-GCM (:mod:`backbone.envelope.algorithms`) under the document's one
random key, with the same associated data (the document's stream parameters, see
:func:`backbone.envelope.chunked.stream_aad`). Binding the index into the nonce detects a
chunk moved to another place; binding the last flag detects a stream cut short (no chunk
authenticates as last) and a chunk appended after the last. Nothing here is a new scheme:
only the nonce layout is chosen, as Tink chose it.
"""

from __future__ import annotations

import os
import struct
from typing import Final

from backbone.envelope import algorithms
from backbone.errors import ChunkError, DecryptionError, Reason

__all__ = [
    "CONSTRUCTION",
    "MAX_CHUNKS",
    "NONCE_PREFIX_BYTES",
    "TAG_BYTES",
    "SequentialDecryptor",
    "chunk_nonce",
    "decrypt_chunk",
    "encrypt_chunk",
    "new_nonce_prefix",
]

CONSTRUCTION: Final = "A256GCM-STREAM"  # the name the chunked header carries
NONCE_PREFIX_BYTES: Final = 7
TAG_BYTES: Final = 16
MAX_CHUNKS: Final = 2**32  # the u32 index: chunk numbers never repeat under one key

_INDEX = struct.Struct(">I")


def new_nonce_prefix() -> bytes:
    return os.urandom(NONCE_PREFIX_BYTES)


def chunk_nonce(prefix: bytes, index: int, *, last: bool) -> bytes:
    if len(prefix) != NONCE_PREFIX_BYTES:
        raise ValueError(f"a STREAM nonce prefix is {NONCE_PREFIX_BYTES} bytes, not {len(prefix)}")
    if not 0 <= index < MAX_CHUNKS:
        raise ValueError(f"chunk index {index} is outside 0..{MAX_CHUNKS - 1}")
    return prefix + _INDEX.pack(index) + (b"\x01" if last else b"\x00")


def encrypt_chunk(
    key: bytes, prefix: bytes, aad: bytes, index: int, plaintext: bytes, *, last: bool
) -> bytes:
    """Chunk ``index``'s ciphertext, its GCM tag appended."""
    return algorithms.encrypt_content(key, chunk_nonce(prefix, index, last=last), plaintext, aad)


def decrypt_chunk(
    key: bytes, prefix: bytes, aad: bytes, index: int, ciphertext: bytes, *, last: bool
) -> bytes:
    """Chunk ``index``'s plaintext; :class:`ChunkError` when it does not authenticate as that
    chunk (``last`` saying whether it must be the last) of this document."""
    try:
        return algorithms.decrypt_content(
            key, chunk_nonce(prefix, index, last=last), ciphertext, aad
        )
    except DecryptionError:
        where = "the last chunk" if last else "a chunk that is not the last"
        raise ChunkError(
            f"chunk {index} does not decrypt as chunk {index} ({where}) of this document: it "
            "was altered, moved from another place, or belongs to another document"
        ) from None


class SequentialDecryptor:
    """Decrypts a document's chunks in order when the count is not known in advance (STREAM's
    own decryption): each chunk is tried as a middle chunk, then as the last one.

    - a chunk after the one that authenticated as last → ``chunk_surplus``;
    - :meth:`finish` before a chunk authenticated as last → ``document_truncated``;
    - a chunk that authenticates neither way at its index (altered, reordered, or from
      another document) → ``chunk_tampered``.
    """

    def __init__(self, key: bytes, prefix: bytes, aad: bytes) -> None:
        self._key = key
        self._prefix = prefix
        self._aad = aad
        self._index = 0
        self._finished = False

    @property
    def chunks(self) -> int:
        """How many chunks have been decrypted."""
        return self._index

    def feed(self, ciphertext: bytes) -> bytes:
        if self._finished:
            raise ChunkError(
                f"a chunk arrived after the last one (chunk {self._index - 1} was marked last)",
                reason=Reason.CHUNK_SURPLUS,
            )
        index = self._index
        try:
            plaintext = decrypt_chunk(
                self._key, self._prefix, self._aad, index, ciphertext, last=False
            )
        except ChunkError:
            try:
                plaintext = decrypt_chunk(
                    self._key, self._prefix, self._aad, index, ciphertext, last=True
                )
            except ChunkError:
                raise ChunkError(
                    f"chunk {index} authenticates neither as chunk {index} nor as the last "
                    "chunk of this document: altered, out of order, or from another document"
                ) from None
            self._finished = True
        self._index += 1
        return plaintext

    def finish(self) -> None:
        if not self._finished:
            raise ChunkError(
                f"the document ended after {self._index} chunk(s) without its last chunk: it "
                "was truncated",
                reason=Reason.DOCUMENT_TRUNCATED,
            )
