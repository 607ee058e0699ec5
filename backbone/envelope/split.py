"""Sealing a large document from a file on disk, chunk by chunk, in bounded memory.

The signed header commits to every chunk's ciphertext digest, and the header goes first,
so every chunk is encrypted before the header is built and signed. A caller that keeps the
chunk messages (the sending adapter writes them to disk before anything is published) is
handed each one as it is encrypted (``keep``): the file is read and encrypted once. Without
``keep``, only the digests are kept and :meth:`SealedDocument.chunk_messages` reads and
encrypts the file a second time; STREAM encryption is deterministic for a key, nonce prefix
and associated data, so that pass yields exactly the ciphertexts the header signed, and a
file that changed in between is caught by comparing digests. At no point is more than one
plaintext chunk and its ciphertext held.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import BinaryIO

from backbone.envelope import algorithms, stream_aead
from backbone.envelope.chunk_wire import encode_chunk, encode_header
from backbone.envelope.chunked import (
    ChunkedHeader,
    ChunkLimits,
    chunk_count,
    digests_digest,
    stream_aad,
)
from backbone.envelope.seal import SealParties, b64, build_header, checked_parties, in_utc, signed
from backbone.errors import DocumentTooLargeError, EnvelopeError
from backbone.pki.validation import CertificateValidator

__all__ = ["ChunkKeeper", "SealedDocument", "seal_file"]

# Given each chunk's index and its message as it is encrypted (see seal_file's ``keep``).
ChunkKeeper = Callable[[int, bytes], None]


@dataclass(frozen=True, slots=True)
class SealedDocument:
    """A document sealed in chunks: its header message now, its chunk messages on demand."""

    header: ChunkedHeader
    header_message: bytes
    source: Path
    _key: bytes = field(repr=False)  # the content key: never in reprs or logs
    _prefix: bytes = field(repr=False)

    def chunk_messages(self) -> Iterator[bytes]:
        """Each chunk message in order, read and encrypted one at a time; raises
        :class:`EnvelopeError` if the file no longer holds what the header signed."""
        header = self.header
        with self.source.open("rb") as source:
            for index, ciphertext in enumerate(_encrypted(source, self._key, self._prefix, header)):
                if hashlib.sha256(ciphertext).hexdigest() != header.chunk_digests[index]:
                    raise _changed(self.source, header)
                message = encode_chunk(header.envelope_id, index, ciphertext)
                # Each buffer dropped as soon as it is used: at most a plaintext chunk, its
                # ciphertext and one message are alive at any time.
                del ciphertext
                yield message
                del message
            if source.read(1):
                raise _changed(self.source, header)

    def messages(self) -> Iterator[bytes]:
        """The header message, then every chunk message: what the sender publishes."""
        yield self.header_message
        yield from self.chunk_messages()


def seal_file(
    path: Path,
    parties: SealParties,
    *,
    limits: ChunkLimits,
    envelope_id: str | None = None,
    created: datetime | None = None,
    validator: CertificateValidator | None = None,
    keep: ChunkKeeper | None = None,
) -> SealedDocument:
    """Seal the file at ``path`` in chunks of ``limits.chunk_bytes``: the parties, header
    fields and checks (keys, certificates, binding, agreement with ``parties.message``) as
    :func:`~backbone.envelope.seal.seal` takes them. ``keep`` is handed each chunk's
    message, in order, as it is encrypted (the one pass over the file); it may hold it no
    longer than it needs to write it."""
    sender_code, targets = checked_parties(parties, validator)
    document_size = path.stat().st_size
    if document_size > limits.max_document_bytes:
        raise DocumentTooLargeError(
            f"{path.name} is {document_size} bytes; the limit (max_document_bytes) is "
            f"{limits.max_document_bytes}"
        )
    envelope_id = envelope_id or str(uuid.uuid4())
    chunk_size = limits.chunk_bytes
    key = algorithms.new_content_key()
    prefix = stream_aead.new_nonce_prefix()
    plan = _Plan(envelope_id, document_size, chunk_size)
    with path.open("rb") as source:
        digests = []
        for index, ciphertext in enumerate(_encrypted(source, key, prefix, plan)):
            digests.append(hashlib.sha256(ciphertext).hexdigest())
            if keep is not None:
                keep(index, encode_chunk(envelope_id, index, ciphertext))
            del ciphertext  # not alive while the next chunk is read
        if source.read(1):
            raise EnvelopeError(f"{path.name} grew while it was being sealed; seal it again")
    if len(digests) != chunk_count(document_size, chunk_size):
        raise EnvelopeError(f"{path.name} shrank while it was being sealed; seal it again")
    header = build_header(
        ChunkedHeader,
        parties,
        sender_code=sender_code,
        targets=targets,
        content_key=key,
        envelope_id=envelope_id,
        created=in_utc(created),
        payload_size=document_size + stream_aead.TAG_BYTES * len(digests),
        payload_digest=digests_digest(digests),
        content_encryption=stream_aead.CONSTRUCTION,
        nonce=b64(prefix),
        document_size=document_size,
        chunk_size=chunk_size,
        chunk_digests=digests,
    )
    return SealedDocument(
        header, encode_header(*signed(header, parties.sender_key)), path, key, prefix
    )


@dataclass(frozen=True, slots=True)
class _Plan:
    """The stream parameters, before there is a header to read them from."""

    envelope_id: str
    document_size: int
    chunk_size: int


def _encrypted(
    source: BinaryIO, key: bytes, prefix: bytes, plan: _Plan | ChunkedHeader
) -> Iterator[bytes]:
    """Each chunk's ciphertext, reading ``plan.chunk_size`` bytes at a time; a short read
    before the announced end is a file that shrank."""
    aad = stream_aad(plan.envelope_id, plan.document_size, plan.chunk_size)
    count = chunk_count(plan.document_size, plan.chunk_size)
    for index in range(count):
        last = index == count - 1
        want = plan.document_size - plan.chunk_size * index if last else plan.chunk_size
        plaintext = source.read(want)
        if len(plaintext) != want:
            raise EnvelopeError("the file shrank while it was being sealed; seal it again")
        ciphertext = stream_aead.encrypt_chunk(key, prefix, aad, index, plaintext, last=last)
        del plaintext
        yield ciphertext
        del ciphertext


def _changed(path: Path, header: ChunkedHeader) -> EnvelopeError:
    return EnvelopeError(
        f"{path.name} changed after envelope {header.envelope_id} was sealed: its chunks no "
        "longer match the signed header; seal it again"
    )
