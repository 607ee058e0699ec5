"""The sending adapter's kept send sealed in one pass (adapters/pending_sends.py): every
chunk message written as it is encrypted is the one the signed header commits to, and a
seal that fails keeps nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from adapters.pending_sends import PendingSends
from backbone.envelope.split import ChunkKeeper, SealedDocument
from backbone.errors import EnvelopeError
from tests.support import DevPki, make_pki
from tests.support.chunked import document, seal_path

pytestmark = pytest.mark.clock  # certificates are validated at the current instant


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> DevPki:
    return make_pki(tmp_path_factory.mktemp("pki"))


def test_the_messages_kept_in_one_pass_are_those_the_signed_header_commits_to(
    pki: DevPki, tmp_path: Path
) -> None:
    source = document(tmp_path, 5 * 1024 + 33)
    sends = PendingSends(tmp_path / "pending")
    sealed: list[SealedDocument] = []

    def seal(keep: ChunkKeeper) -> SealedDocument:
        sealed.append(seal_path(pki, source, keep=keep))
        return sealed[0]

    pending = sends.keep("file:a", seal)
    assert pending.header == sealed[0].header
    assert pending.message(0) == sealed[0].header_message
    # The second pass re-encrypts and checks each chunk against the signed digests.
    again = list(sealed[0].chunk_messages())
    assert [pending.message(i + 1) for i in range(pending.header.chunk_count)] == again
    assert sorted(p.name for p in pending.directory.iterdir() if p.name.startswith("chunk")) == [
        f"chunk-{i:06d}.msg" for i in range(len(again))
    ]


def test_a_seal_that_fails_half_way_keeps_nothing(pki: DevPki, tmp_path: Path) -> None:
    source = document(tmp_path, 5 * 1024 + 33)
    sends = PendingSends(tmp_path / "pending")

    def seal(keep: ChunkKeeper) -> SealedDocument:
        def some_then_fail(index: int, message: bytes) -> None:
            if index == 3:
                raise EnvelopeError("the file changed while it was sealed")
            keep(index, message)

        return seal_path(pki, source, keep=some_then_fail)

    with pytest.raises(EnvelopeError, match="changed while it was sealed"):
        sends.keep("file:a", seal)
    assert list((tmp_path / "pending").iterdir()) == []
    assert sends.find("file:a", None) is None
