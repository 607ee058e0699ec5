"""STREAM over AES-256-GCM: round trip, and truncation, reordering, foreign and surplus
chunks each refused with its own reason."""

from __future__ import annotations

import pytest

from backbone.envelope.algorithms import new_content_key
from backbone.envelope.stream_aead import (
    NONCE_PREFIX_BYTES,
    SequentialDecryptor,
    chunk_nonce,
    decrypt_chunk,
    encrypt_chunk,
    new_nonce_prefix,
)
from backbone.errors import ChunkError, Reason

AAD = b"document one"
Stream = tuple[bytes, bytes, list[bytes], list[bytes]]  # key, nonce prefix, parts, chunks


def _encrypt(parts: list[bytes], key: bytes, prefix: bytes, aad: bytes = AAD) -> list[bytes]:
    last = len(parts) - 1
    return [
        encrypt_chunk(key, prefix, aad, index, part, last=index == last)
        for index, part in enumerate(parts)
    ]


def _decrypt_all(chunks: list[bytes], key: bytes, prefix: bytes, aad: bytes = AAD) -> bytes:
    decryptor = SequentialDecryptor(key, prefix, aad)
    plaintext = b"".join(decryptor.feed(chunk) for chunk in chunks)
    decryptor.finish()
    return plaintext


@pytest.fixture
def stream() -> Stream:
    key, prefix = new_content_key(), new_nonce_prefix()
    parts = [b"alpha" * 100, b"beta" * 100, b"gamma" * 7]
    return key, prefix, parts, _encrypt(parts, key, prefix)


def test_nonce_is_prefix_then_big_endian_index_then_last_flag() -> None:
    prefix = bytes(range(NONCE_PREFIX_BYTES))
    assert chunk_nonce(prefix, 0x01020304, last=False) == prefix + b"\x01\x02\x03\x04\x00"
    assert chunk_nonce(prefix, 5, last=True) == prefix + b"\x00\x00\x00\x05\x01"


def test_chunks_decrypt_in_order_to_the_plaintext(stream: Stream) -> None:
    key, prefix, parts, chunks = stream
    assert _decrypt_all(chunks, key, prefix) == b"".join(parts)


def test_a_single_empty_last_chunk_round_trips() -> None:
    key, prefix = new_content_key(), new_nonce_prefix()
    assert _decrypt_all(_encrypt([b""], key, prefix), key, prefix) == b""


def test_a_truncated_stream_is_refused_as_truncated(stream: Stream) -> None:
    key, prefix, _, chunks = stream
    with pytest.raises(ChunkError) as caught:
        _decrypt_all(chunks[:2], key, prefix)
    assert caught.value.reason == Reason.DOCUMENT_TRUNCATED


def test_a_surplus_chunk_after_the_last_is_refused_as_surplus(stream: Stream) -> None:
    key, prefix, _, chunks = stream
    with pytest.raises(ChunkError) as caught:
        _decrypt_all([*chunks, chunks[0]], key, prefix)
    assert caught.value.reason == Reason.CHUNK_SURPLUS


def test_reordered_chunks_do_not_authenticate(stream: Stream) -> None:
    key, prefix, _, chunks = stream
    with pytest.raises(ChunkError) as caught:
        _decrypt_all([chunks[1], chunks[0], chunks[2]], key, prefix)
    assert caught.value.reason == Reason.CHUNK_TAMPERED
    assert "chunk 0 authenticates neither" in caught.value.message


def test_the_last_chunk_moved_forward_is_refused_at_its_new_place(stream: Stream) -> None:
    key, prefix, _, chunks = stream
    with pytest.raises(ChunkError):
        decrypt_chunk(key, prefix, AAD, 1, chunks[2], last=True)


def test_a_chunk_from_another_document_under_the_same_key_does_not_authenticate(
    stream: Stream,
) -> None:
    key, prefix, parts, chunks = stream
    other = _encrypt(parts, key, prefix, aad=b"document two")
    with pytest.raises(ChunkError) as caught:
        _decrypt_all([chunks[0], other[1], chunks[2]], key, prefix)
    assert caught.value.reason == Reason.CHUNK_TAMPERED


def test_a_chunk_under_another_key_does_not_authenticate(stream: Stream) -> None:
    key, prefix, parts, _ = stream
    other = _encrypt(parts, new_content_key(), prefix)
    with pytest.raises(ChunkError):
        decrypt_chunk(key, prefix, AAD, 0, other[0], last=False)


def test_a_corrupted_chunk_does_not_authenticate(stream: Stream) -> None:
    key, prefix, _, chunks = stream
    corrupted = bytearray(chunks[1])
    corrupted[10] ^= 1
    with pytest.raises(ChunkError) as caught:
        decrypt_chunk(key, prefix, AAD, 1, bytes(corrupted), last=False)
    assert "chunk 1 does not decrypt as chunk 1" in caught.value.message
