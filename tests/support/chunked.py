"""Chunked documents for the tests of issue 18: a file of known bytes, sealed in small
chunks between two agencies of the development PKI."""

from __future__ import annotations

from pathlib import Path

from backbone.envelope import SealParties
from backbone.envelope.chunked import ChunkLimits
from backbone.envelope.split import ChunkKeeper, SealedDocument, seal_file
from testkit import DevPki

__all__ = ["DOCUMENT_ID", "RECIPIENT", "SENDER", "SMALL", "document", "seal_path"]

SENDER = "000.00.00.G22"
RECIPIENT = "000.00.00.H41"
DOCUMENT_ID = "000.00.00.G22,2015/09/30,7816/VPCP-TTĐT"
SMALL = ChunkLimits(
    max_document_bytes=1 << 20, min_chunk_bytes=1024, max_chunk_bytes=4096, chunk_bytes=1024
)


def seal_path(
    pki: DevPki, path: Path, limits: ChunkLimits = SMALL, keep: ChunkKeeper | None = None
) -> SealedDocument:
    """The file at ``path`` sealed in chunks, a document from SENDER to RECIPIENT
    (``keep``: given each chunk message as it is encrypted)."""
    signer = pki.agency(SENDER)
    return seal_file(
        path,
        SealParties(
            kind="document",
            sender=SENDER,
            sender_key=signer.key,
            sender_cert=signer.certificate,
            recipients={RECIPIENT: pki.agency(RECIPIENT).certificate},
            document_id=DOCUMENT_ID,
            business_type=0,
        ),
        limits=limits,
        keep=keep,
    )


def document(tmp_path: Path, size: int, name: str = "annex.bin") -> Path:
    """A file of ``size`` bytes that differ from chunk to chunk."""
    path = tmp_path / name
    path.write_bytes(bytes(i * 7 % 251 for i in range(size)))
    return path
