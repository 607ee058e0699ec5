"""A 200 MiB document split, staged and joined while Python's peak allocation stays at a few
chunk sizes: nothing on the path holds the whole document (issue 18). Not timed."""

from __future__ import annotations

import hashlib
import tracemalloc
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from backbone.envelope import unwrap_content_key
from backbone.envelope.chunk_wire import read_chunk, verify_chunked_header
from backbone.envelope.chunked import ChunkLimits
from backbone.envelope.staging import Staging
from tests.support import make_pki
from tests.support.chunked import RECIPIENT, seal_path

pytestmark = pytest.mark.clock  # certificates are validated at the current instant

DOCUMENT_BYTES = 200 << 20
LIMITS = ChunkLimits()  # the defaults: 4 MiB chunks


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as source:
        while block := source.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


@pytest.mark.large
def test_a_200_mib_document_splits_and_joins_within_a_few_chunk_sizes(tmp_path: Path) -> None:
    pki = make_pki(tmp_path / "pki")
    source = tmp_path / "annex.bin"
    with source.open("wb") as out:  # sparse, with a few written regions so chunks differ
        out.truncate(DOCUMENT_BYTES)
        for offset in range(0, DOCUMENT_BYTES, 16 << 20):
            out.seek(offset)
            out.write(offset.to_bytes(8, "big") * 1024)
    validator = pki.validator()
    recipient_key = pki.agency(RECIPIENT).key
    area = Staging(
        tmp_path / "staging",
        budget_bytes=DOCUMENT_BYTES + (1 << 20),
        timeout=timedelta(hours=1),
        clock=lambda: datetime(2026, 3, 2, 8, 0, tzinfo=UTC),
    )
    target = tmp_path / "delivered.bin"

    tracemalloc.start()
    try:
        sealed = seal_path(pki, source, LIMITS)
        verified = verify_chunked_header(sealed.header_message, validator, LIMITS)
        area.begin(verified)
        for body in sealed.chunk_messages():
            area.accept(read_chunk(body))
        key = unwrap_content_key(verified, recipient=RECIPIENT, recipient_key=recipient_key)
        area.deliver(sealed.header.envelope_id, key, target)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert sealed.header.chunk_count == 50
    assert _sha256(target) == _sha256(source)
    # A few chunk buffers at a time (the message being published and the chunk cut from it,
    # the next plaintext and its ciphertext); the document is 50 chunks.
    assert peak < 5 * LIMITS.chunk_bytes, f"peak {peak / 2**20:.1f} MiB"
    print(f"peak traced allocation: {peak / 2**20:.1f} MiB for a {DOCUMENT_BYTES >> 20} MiB file")
