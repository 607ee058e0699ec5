"""The chunked envelope: its signed header, its limits, which form a document takes, sealing
from a file, and each chunk checked against the header (foreign, surplus, reordered,
corrupted chunks each refused with their own reason)."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import date
from pathlib import Path

import pytest

from backbone.envelope import Kind, SealParties, seal, unwrap_content_key
from backbone.envelope.algorithms import sign
from backbone.envelope.bounds import check_header
from backbone.envelope.chunk_wire import (
    Chunk,
    check_chunk,
    encode_header,
    read_chunk,
    read_chunked_header,
    verify_chunked_header,
)
from backbone.envelope.chunked import (
    DEFAULT_CHUNK_BYTES,
    ChunkLimits,
    digests_digest,
    stream_aad,
    travels_chunked,
)
from backbone.envelope.schema import CHUNKED_SCHEMA_PATH, chunked_header_json_schema
from backbone.envelope.split import SealedDocument, seal_file
from backbone.envelope.stream_aead import SequentialDecryptor
from backbone.envelope.wire import read_frame
from backbone.errors import (
    ChunkError,
    ConfigurationError,
    DocumentTooLargeError,
    EnvelopeError,
    EnvelopeMalformedError,
    Reason,
    SignatureInvalidError,
)
from tests.support import DevPki, make_pki
from tests.support.chunked import DOCUMENT_ID, RECIPIENT, SENDER, SMALL, document, seal_path

pytestmark = pytest.mark.clock  # certificates are validated at the current instant


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> DevPki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def sealed(pki: DevPki, tmp_path: Path) -> SealedDocument:
    return seal_path(pki, document(tmp_path, 3 * 1024 + 100))


def join(pki: DevPki, sealed: SealedDocument, chunks: list[bytes]) -> bytes:
    """What a recipient reads: header verified, key unwrapped, chunks decrypted in order."""
    verified = verify_chunked_header(sealed.header_message, pki.validator(), SMALL)
    key = unwrap_content_key(verified, recipient=RECIPIENT, recipient_key=pki.agency(RECIPIENT).key)
    header = verified.header
    decryptor = SequentialDecryptor(
        key,
        header.nonce_prefix,
        stream_aad(header.envelope_id, header.document_size, header.chunk_size),
    )
    plaintext = b""
    for body in chunks:
        chunk = read_chunk(body)
        check_chunk(header, chunk)
        plaintext += decryptor.feed(chunk.ciphertext)
    decryptor.finish()
    return plaintext


def test_sealed_file_splits_into_chunks_that_join_to_the_file(
    pki: DevPki, sealed: SealedDocument
) -> None:
    header = sealed.header
    assert (header.chunk_count, header.chunk_size, header.document_size) == (4, 1024, 3172)
    assert header.content_encryption == "A256GCM-STREAM"
    chunks = list(sealed.chunk_messages())
    assert [read_chunk(body).index for body in chunks] == [0, 1, 2, 3]
    assert join(pki, sealed, chunks) == sealed.source.read_bytes()


def test_one_seal_parties_gives_both_forms_the_same_header_fields_and_hides_the_key(
    pki: DevPki, tmp_path: Path
) -> None:
    signer = pki.agency(SENDER)
    parties = SealParties(
        kind=Kind.DOCUMENT,
        sender=SENDER,
        sender_key=signer.key,
        sender_cert=signer.certificate,
        recipients={RECIPIENT: pki.agency(RECIPIENT).certificate},
        document_id=DOCUMENT_ID,
        business_type=2,
        due_date=date(2026, 12, 31),
    )
    path = document(tmp_path, 2 * 1024 + 7)

    single = read_frame(seal(path.read_bytes(), parties)).header
    chunked = seal_file(path, parties, limits=SMALL).header

    shared = [
        "kind",
        "sender",
        "recipients",
        "document_id",
        "business_type",
        "status_code",
        "due_date",
        "status_note",
        "sender_certificate",
    ]
    assert [getattr(chunked, name) for name in shared] == [getattr(single, name) for name in shared]
    assert (single.business_type, single.due_date) == (2, date(2026, 12, 31))
    assert (single.sender, single.recipients) == (SENDER, [RECIPIENT])
    assert "sender_key" not in repr(parties)  # never logged with the parties


def test_messages_yield_the_header_first_then_the_chunks(sealed: SealedDocument) -> None:
    messages = list(sealed.messages())
    assert messages[0] == sealed.header_message
    assert len(messages) == 1 + sealed.header.chunk_count


def test_an_empty_file_is_one_empty_last_chunk(pki: DevPki, tmp_path: Path) -> None:
    sealed = seal_path(pki, document(tmp_path, 0))
    assert sealed.header.chunk_count == 1
    assert join(pki, sealed, list(sealed.chunk_messages())) == b""


def test_the_header_is_signed_by_the_sender_and_commits_to_every_chunk(
    pki: DevPki, sealed: SealedDocument
) -> None:
    verified = verify_chunked_header(sealed.header_message, pki.validator(), SMALL)
    assert str(verified.sender.identity) == SENDER
    frame = read_chunked_header(sealed.header_message)
    fields = json.loads(frame.header_bytes)
    fields["chunk_digests"][1] = "0" * 64  # a digest swapped: the signature no longer covers it
    altered = json.dumps(fields, separators=(",", ":"), ensure_ascii=False).encode()
    with pytest.raises(EnvelopeMalformedError, match="payload_digest is not the SHA-256"):
        read_chunked_header(encode_header(altered, frame.signature))
    fields["payload_digest"] = digests_digest(fields["chunk_digests"])  # consistent again
    resealed = json.dumps(fields, separators=(",", ":"), ensure_ascii=False).encode()
    with pytest.raises(SignatureInvalidError):
        verify_chunked_header(encode_header(resealed, frame.signature), pki.validator(), SMALL)


def test_a_header_whose_signature_does_not_verify_is_refused(
    pki: DevPki, sealed: SealedDocument
) -> None:
    frame = read_chunked_header(sealed.header_message)
    forged = sign(pki.agency(RECIPIENT).key, frame.header_bytes)
    with pytest.raises(SignatureInvalidError):
        verify_chunked_header(encode_header(frame.header_bytes, forged), pki.validator(), SMALL)


def test_a_header_announcing_terabytes_is_refused_before_its_signature_is_checked(
    pki: DevPki, sealed: SealedDocument
) -> None:
    frame = read_chunked_header(sealed.header_message)
    fields = json.loads(frame.header_bytes)
    # Consistent on its face (count, sizes, digest of digests), so only the limit refuses it.
    fields["document_size"] = 4 << 40
    fields["chunk_size"] = 1 << 30
    fields["chunk_digests"] = ["ab" * 32] * 4096
    fields["payload_size"] = (4 << 40) + 16 * 4096
    fields["payload_digest"] = digests_digest(fields["chunk_digests"])
    header_bytes = json.dumps(fields, separators=(",", ":"), ensure_ascii=False).encode()
    # Signed with a key that is not the sender's: the limit refuses it before that matters.
    body = encode_header(header_bytes, sign(pki.agency(RECIPIENT).key, header_bytes))
    assert read_chunked_header(body).header.chunk_count == 4096
    with pytest.raises(DocumentTooLargeError) as caught:
        verify_chunked_header(body, pki.validator(), SMALL)
    assert caught.value.reason == Reason.DOCUMENT_TOO_LARGE
    assert f"announces a document of {4 << 40} bytes" in caught.value.message
    assert "max_document_bytes" in caught.value.message


def test_a_chunked_header_is_refused_when_its_chunk_size_is_out_of_bounds(
    sealed: SealedDocument,
) -> None:
    strict = replace(SMALL, min_chunk_bytes=2048, chunk_bytes=2048)
    with pytest.raises(DocumentTooLargeError, match="chunks of 1024 bytes"):
        strict.check(sealed.header)


def test_a_file_above_the_largest_document_is_refused_before_it_is_read(
    pki: DevPki, tmp_path: Path
) -> None:
    path = tmp_path / "huge.bin"
    with path.open("wb") as out:
        out.truncate((1 << 20) + 1)  # sparse
    with pytest.raises(DocumentTooLargeError, match="max_document_bytes"):
        seal_path(pki, path)


def test_the_single_message_reader_refuses_a_chunked_header(sealed: SealedDocument) -> None:
    with pytest.raises(EnvelopeMalformedError, match="not the magic"):
        read_frame(sealed.header_message)


def test_small_documents_keep_the_single_message_form() -> None:
    limits = ChunkLimits()
    assert limits.chunk_bytes == DEFAULT_CHUNK_BYTES == 4 << 20
    assert not travels_chunked(4 << 20, limits)
    assert travels_chunked((4 << 20) + 1, limits)


@pytest.mark.parametrize(
    ("limits", "key"),
    [
        ({"chunk_bytes": 512 << 10}, "chunk_bytes"),
        ({"max_chunk_bytes": 16 << 20, "chunk_bytes": 4 << 20}, "max_chunk_bytes"),
        ({"max_document_bytes": 8 << 30}, "max_document_bytes"),
    ],
)
def test_inconsistent_limits_are_a_configuration_error_naming_the_key(
    limits: dict[str, int], key: str
) -> None:
    with pytest.raises(ConfigurationError, match=key):
        ChunkLimits(**limits)


def test_a_chunk_of_another_document_is_refused_as_foreign(
    pki: DevPki, sealed: SealedDocument, tmp_path: Path
) -> None:
    other = seal_path(pki, document(tmp_path, 3 * 1024 + 100, "other.bin"))
    stranger = read_chunk(next(other.chunk_messages()))
    with pytest.raises(ChunkError) as caught:
        check_chunk(sealed.header, stranger)
    assert caught.value.reason == Reason.CHUNK_FOREIGN
    relabelled = Chunk(sealed.header.envelope_id, 0, stranger.ciphertext)
    with pytest.raises(ChunkError) as caught:
        check_chunk(sealed.header, relabelled)
    assert caught.value.reason == Reason.CHUNK_TAMPERED


def test_a_chunk_beyond_the_announced_count_is_refused_as_surplus(sealed: SealedDocument) -> None:
    last = read_chunk(list(sealed.chunk_messages())[-1])
    with pytest.raises(ChunkError) as caught:
        check_chunk(sealed.header, Chunk(last.envelope_id, 4, last.ciphertext))
    assert caught.value.reason == Reason.CHUNK_SURPLUS
    assert "announces 4 chunk(s)" in caught.value.message


def test_a_chunk_under_another_index_is_refused_as_out_of_order(sealed: SealedDocument) -> None:
    chunks = [read_chunk(body) for body in sealed.chunk_messages()]
    with pytest.raises(ChunkError) as caught:
        check_chunk(sealed.header, Chunk(chunks[0].envelope_id, 1, chunks[2].ciphertext))
    assert caught.value.reason == Reason.CHUNK_OUT_OF_ORDER
    assert "carries chunk 2's ciphertext" in caught.value.message


def test_a_corrupted_chunk_is_refused_as_tampered(sealed: SealedDocument) -> None:
    chunk = read_chunk(next(sealed.chunk_messages()))
    flipped = bytearray(chunk.ciphertext)
    flipped[5] ^= 0x40
    with pytest.raises(ChunkError) as caught:
        check_chunk(sealed.header, Chunk(chunk.envelope_id, 0, bytes(flipped)))
    assert caught.value.reason == Reason.CHUNK_TAMPERED
    with pytest.raises(ChunkError, match=r"\(1000 bytes, not 1040\)"):
        check_chunk(sealed.header, Chunk(chunk.envelope_id, 0, chunk.ciphertext[:1000]))


def test_a_truncated_document_is_refused_by_the_recipient(
    pki: DevPki, sealed: SealedDocument
) -> None:
    with pytest.raises(ChunkError) as caught:
        join(pki, sealed, list(sealed.chunk_messages())[:3])
    assert caught.value.reason == Reason.DOCUMENT_TRUNCATED


def test_a_file_changed_after_sealing_is_refused_while_its_chunks_are_read(
    pki: DevPki, sealed: SealedDocument
) -> None:
    sealed.source.write_bytes(b"another document entirely" * 200)
    with pytest.raises(EnvelopeError, match="changed after envelope"):
        list(sealed.chunk_messages())


def test_a_chunk_message_that_is_not_one_is_refused() -> None:
    with pytest.raises(EnvelopeMalformedError, match="not the magic"):
        read_chunk(b"VDX1" + b"0" * 60)
    with pytest.raises(EnvelopeMalformedError, match="names envelope"):
        read_chunk(b"VDXC" + b"not-a-uuid".ljust(36, b"x") + b"\0\0\0\0")


def test_a_chunked_header_with_a_field_it_does_not_have_is_refused_before_the_schema(
    sealed: SealedDocument,
) -> None:
    frame = read_chunked_header(sealed.header_message)
    fields = json.loads(frame.header_bytes)
    fields["chunk_hints"] = [1, 2, 3]
    header_bytes = json.dumps(fields, separators=(",", ":"), ensure_ascii=False).encode()
    with pytest.raises(EnvelopeMalformedError, match="unknown field 'chunk_hints'"):
        read_chunked_header(encode_header(header_bytes, frame.signature))


def test_a_chunked_header_with_more_digests_than_the_model_allows_is_refused_unparsed(
    sealed: SealedDocument,
) -> None:
    frame = read_chunked_header(sealed.header_message)
    fields = json.loads(frame.header_bytes)
    for count, refusal in (
        (5_000, r"a header for 1 recipient\(s\) is at most"),
        (100_000, "the limit is"),
    ):
        fields["chunk_digests"] = ["ab" * 32] * count
        header_bytes = json.dumps(fields, separators=(",", ":"), ensure_ascii=False).encode()
        with pytest.raises(EnvelopeMalformedError, match=refusal) as caught:
            read_chunked_header(encode_header(header_bytes, frame.signature))
    assert caught.value.reason == Reason.ENVELOPE_TOO_LARGE  # the message, before its header


def test_the_single_message_header_check_refuses_the_chunked_fields(
    sealed: SealedDocument,
) -> None:
    frame = read_chunked_header(sealed.header_message)
    with pytest.raises(EnvelopeMalformedError, match="unknown field"):
        check_header(frame.header_bytes)


def test_the_published_chunked_header_schema_is_the_one_the_model_generates() -> None:
    assert CHUNKED_SCHEMA_PATH.read_text(encoding="utf-8") == chunked_header_json_schema(), (
        "regenerate it: python -m backbone.envelope.schema"
    )
