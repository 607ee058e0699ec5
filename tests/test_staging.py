"""The recipient's staging area: chunks in any order, duplicates dropped, hostile chunks
refused, a disk budget, atomic delivery, expiry on an injected clock, a restart, and what
begin and accept report kept is on disk, names included, before they return."""

from __future__ import annotations

import os
import random
import stat
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from backbone.envelope import unwrap_content_key
from backbone.envelope.chunk_wire import (
    Chunk,
    VerifiedChunkedHeader,
    read_chunk,
    verify_chunked_header,
)
from backbone.envelope.split import SealedDocument
from backbone.envelope.staging import Staging
from backbone.errors import ChunkError, DecryptionError, Reason, StagingError
from tests.support import DevPki, make_pki
from tests.support.chunked import RECIPIENT, SMALL, document, seal_path

pytestmark = pytest.mark.clock  # certificates are validated at the current instant

START = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
TIMEOUT = timedelta(hours=1)


class FakeClock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> DevPki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def sealed(pki: DevPki, tmp_path: Path) -> SealedDocument:
    return seal_path(pki, document(tmp_path, 5 * 1024 + 33))


def staging(root: Path, clock: FakeClock, budget: int = 1 << 20) -> Staging:
    return Staging(root, budget_bytes=budget, timeout=TIMEOUT, clock=clock)


def begun(
    pki: DevPki, sealed: SealedDocument, root: Path, clock: FakeClock, parts: slice = slice(0)
) -> Staging:
    """A staging area in ``root`` with ``sealed`` begun and its ``parts`` chunks accepted."""
    area = staging(root, clock)
    area.begin(verified(pki, sealed))
    for chunk in chunks(sealed)[parts]:
        area.accept(chunk)
    return area


def verified(pki: DevPki, sealed: SealedDocument) -> VerifiedChunkedHeader:
    return verify_chunked_header(sealed.header_message, pki.validator(), SMALL)


def key_of(pki: DevPki, sealed: SealedDocument) -> bytes:
    return unwrap_content_key(
        verified(pki, sealed), recipient=RECIPIENT, recipient_key=pki.agency(RECIPIENT).key
    )


def chunks(sealed: SealedDocument) -> list[Chunk]:
    return [read_chunk(body) for body in sealed.chunk_messages()]


def test_chunks_in_any_order_with_duplicates_deliver_the_document_atomically(
    pki: DevPki, sealed: SealedDocument, tmp_path: Path, clock: FakeClock
) -> None:
    area = staging(tmp_path / "staging", clock)
    assert area.begin(verified(pki, sealed))
    assert not area.begin(verified(pki, sealed))  # the header again: nothing new
    shuffled = chunks(sealed)
    random.Random(18).shuffle(shuffled)
    accepted = [area.accept(chunk) for chunk in shuffled + shuffled[:3]]
    assert accepted == [True] * 6 + [False] * 3  # duplicates dropped
    envelope_id = sealed.header.envelope_id
    assert area.is_complete(envelope_id)
    (tmp_path / "inbox").mkdir()
    target = tmp_path / "inbox" / "annex.bin"
    assert area.deliver(envelope_id, key_of(pki, sealed), target) == target
    assert target.read_bytes() == sealed.source.read_bytes()
    assert list((tmp_path / "inbox").iterdir()) == [target]  # no temporary file left
    assert area.staged() == []
    assert area.reserved_bytes == 0
    assert list((tmp_path / "staging").iterdir()) == []  # space reclaimed


def test_an_incomplete_document_is_not_delivered(
    pki: DevPki, sealed: SealedDocument, tmp_path: Path, clock: FakeClock
) -> None:
    area = begun(pki, sealed, tmp_path / "staging", clock, slice(-2))
    assert area.missing(sealed.header.envelope_id) == [4, 5]
    target = tmp_path / "delivered.bin"
    with pytest.raises(StagingError) as caught:
        area.deliver(sealed.header.envelope_id, key_of(pki, sealed), target)
    assert caught.value.reason == Reason.DOCUMENT_INCOMPLETE
    assert "chunk(s) 4, 5 have not arrived" in caught.value.message
    assert not target.exists()


def test_a_chunk_that_fails_decryption_leaves_no_partial_document(
    pki: DevPki, sealed: SealedDocument, tmp_path: Path, clock: FakeClock
) -> None:
    root = tmp_path / "staging"
    area = begun(pki, sealed, root, clock, slice(None))
    target = tmp_path / "out" / "annex.bin"
    target.parent.mkdir()
    with pytest.raises(DecryptionError, match="not the one its header commits to"):
        area.deliver(sealed.header.envelope_id, bytes(32), target)
    # The staged chunk altered on disk after it was checked: delivery fails at that chunk.
    chunk_file = root / sealed.header.envelope_id / "00003.chunk"
    altered = bytearray(chunk_file.read_bytes())
    altered[0] ^= 1
    chunk_file.write_bytes(bytes(altered))
    with pytest.raises(ChunkError, match="chunk 3 does not decrypt"):
        area.deliver(sealed.header.envelope_id, key_of(pki, sealed), target)
    assert list(target.parent.iterdir()) == []


def test_with_the_key_chunks_are_decrypted_as_staged_and_delivery_renames_that_file(
    pki: DevPki, sealed: SealedDocument, tmp_path: Path, clock: FakeClock
) -> None:
    root = tmp_path / "staging"
    area = staging(root, clock)
    key = key_of(pki, sealed)
    area.begin(verified(pki, sealed), content_key=key)
    shuffled = chunks(sealed)
    random.Random(7).shuffle(shuffled)
    for chunk in shuffled:
        area.accept(chunk)
    envelope_id = sealed.header.envelope_id
    assert (root / envelope_id / ".plain").exists()  # decrypted in place, in any order
    # The staged ciphertext is not read again: delivery is the decrypted file renamed.
    for chunk_file in (root / envelope_id).glob("*.chunk"):
        chunk_file.write_bytes(b"not read again")
    target = tmp_path / "delivered.bin"
    assert area.deliver(envelope_id, key, target) == target
    assert target.read_bytes() == sealed.source.read_bytes()
    assert area.staged() == []
    assert list(root.iterdir()) == []


def test_a_restart_drops_the_chunks_decrypted_as_staged_and_delivery_decrypts_them_again(
    pki: DevPki, sealed: SealedDocument, tmp_path: Path, clock: FakeClock
) -> None:
    root = tmp_path / "staging"
    key = key_of(pki, sealed)
    before = staging(root, clock)
    before.begin(verified(pki, sealed), content_key=key)
    for chunk in chunks(sealed)[:3]:
        before.accept(chunk)
    plain = root / sealed.header.envelope_id / ".plain"
    assert plain.exists()
    before.close()  # the process stops: its decrypting thread with it
    area = staging(root, clock)  # the adapter restarted half-way: the key was in memory
    assert not plain.exists()
    for chunk in chunks(sealed)[3:]:
        area.accept(chunk)
    assert not plain.exists()
    target = tmp_path / "delivered.bin"
    area.deliver(sealed.header.envelope_id, key, target)
    assert target.read_bytes() == sealed.source.read_bytes()


def test_a_chunk_that_cannot_be_decrypted_early_drops_the_cache_and_delivery_decrypts_all(
    pki: DevPki, sealed: SealedDocument, tmp_path: Path, clock: FakeClock
) -> None:
    root = tmp_path / "staging"
    area = staging(root, clock)
    key = key_of(pki, sealed)
    area.begin(verified(pki, sealed), content_key=key)
    (root / sealed.header.envelope_id / ".plain").mkdir()  # no chunk can be written there
    for chunk in chunks(sealed):
        area.accept(chunk)
    target = tmp_path / "delivered.bin"
    area.deliver(sealed.header.envelope_id, key, target)
    assert target.read_bytes() == sealed.source.read_bytes()
    assert list(root.iterdir()) == []


def test_a_key_not_the_committed_one_decrypts_nothing_early_and_delivery_refuses_it(
    pki: DevPki, sealed: SealedDocument, tmp_path: Path, clock: FakeClock
) -> None:
    root = tmp_path / "staging"
    area = staging(root, clock)
    area.begin(verified(pki, sealed), content_key=bytes(32))
    for chunk in chunks(sealed):
        area.accept(chunk)
    assert not (root / sealed.header.envelope_id / ".plain").exists()
    with pytest.raises(DecryptionError, match="not the one its header commits to"):
        area.deliver(sealed.header.envelope_id, bytes(32), tmp_path / "delivered.bin")
    assert not (tmp_path / "delivered.bin").exists()


def test_foreign_surplus_and_corrupted_chunks_are_refused_and_not_kept(
    pki: DevPki, sealed: SealedDocument, tmp_path: Path, clock: FakeClock
) -> None:
    root = tmp_path / "staging"
    area = begun(pki, sealed, root, clock)
    other = seal_path(pki, document(tmp_path, 2000, "other.bin"))
    first = chunks(sealed)[0]
    cases = {
        Reason.CHUNK_FOREIGN: chunks(other)[0],  # its document was never begun here
        Reason.CHUNK_SURPLUS: Chunk(first.envelope_id, 6, first.ciphertext),
        Reason.CHUNK_TAMPERED: Chunk(first.envelope_id, 0, first.ciphertext[:-1] + b"\0"),
        Reason.CHUNK_OUT_OF_ORDER: Chunk(first.envelope_id, 2, first.ciphertext),
    }
    for reason, chunk in cases.items():
        with pytest.raises(ChunkError) as caught:
            area.accept(chunk)
        assert caught.value.reason == reason
    assert area.missing(sealed.header.envelope_id) == [0, 1, 2, 3, 4, 5]
    kept = sorted(path.name for path in (root / sealed.header.envelope_id).iterdir())
    assert kept == ["header", "started"]


def test_a_document_that_would_exceed_the_disk_budget_is_refused(
    pki: DevPki, sealed: SealedDocument, tmp_path: Path, clock: FakeClock
) -> None:
    size = sealed.header.payload_size
    area = staging(tmp_path / "staging", clock, budget=size + 100)
    area.begin(verified(pki, sealed))
    second = seal_path(pki, document(tmp_path, 1024, "second.bin"))
    with pytest.raises(StagingError) as caught:
        area.begin(verified(pki, second))
    assert caught.value.reason == Reason.STAGING_FULL
    assert f"needs {second.header.payload_size} bytes of staging; 100 of the budget" in (
        caught.value.message
    )
    assert area.staged() == [sealed.header.envelope_id]


def test_an_incomplete_document_expires_after_the_timeout_and_its_space_is_reclaimed(
    pki: DevPki, sealed: SealedDocument, tmp_path: Path, clock: FakeClock
) -> None:
    root = tmp_path / "staging"
    area = staging(root, clock, budget=sealed.header.payload_size)
    area.begin(verified(pki, sealed))
    for chunk in chunks(sealed)[1:]:
        area.accept(chunk)
    clock.now = START + TIMEOUT - timedelta(seconds=1)
    assert area.expire() == []
    clock.now = START + TIMEOUT
    (expired,) = area.expire()
    assert expired.header.envelope_id == sealed.header.envelope_id
    assert expired.missing == (0,)
    assert list(root.iterdir()) == []
    assert area.reserved_bytes == 0
    with pytest.raises(ChunkError) as caught:  # a late chunk of it is foreign now
        area.accept(chunks(sealed)[0])
    assert caught.value.reason == Reason.CHUNK_FOREIGN
    area.begin(verified(pki, seal_path(pki, document(tmp_path, 1024, "next.bin"))))  # room again


def test_a_complete_document_does_not_expire(
    pki: DevPki, sealed: SealedDocument, tmp_path: Path, clock: FakeClock
) -> None:
    area = begun(pki, sealed, tmp_path / "staging", clock, slice(None))
    clock.now = START + 2 * TIMEOUT
    assert area.expire() == []


def test_staging_is_rebuilt_from_disk_after_a_restart(
    pki: DevPki, sealed: SealedDocument, tmp_path: Path, clock: FakeClock
) -> None:
    root = tmp_path / "staging"
    area = staging(root, clock)
    area.begin(verified(pki, sealed))
    parts = chunks(sealed)
    for chunk in parts[:4]:
        area.accept(chunk)
    envelope_id = sealed.header.envelope_id
    # What a crash can leave: a chunk half written, a document never renamed into place,
    # and a chunk file cut short.
    (root / envelope_id / ".00004.chunk").write_bytes(b"half")
    (root / ".tmpabc").mkdir()
    cut = root / envelope_id / "00002.chunk"
    cut.write_bytes(cut.read_bytes()[:100])

    restarted = staging(root, clock)
    assert restarted.staged() == [envelope_id]
    assert restarted.missing(envelope_id) == [2, 4, 5]
    assert restarted.reserved_bytes == sealed.header.payload_size
    assert not (root / ".tmpabc").exists()
    assert not (root / envelope_id / ".00004.chunk").exists()
    assert not restarted.accept(parts[0])  # still a duplicate
    for chunk in parts[2:]:
        restarted.accept(chunk)
    target = tmp_path / "delivered.bin"
    restarted.deliver(envelope_id, key_of(pki, sealed), target)
    assert target.read_bytes() == sealed.source.read_bytes()
    clock.now = START + TIMEOUT  # the start time survived the restart too
    assert restarted.expire() == []


def _record_disk_steps(monkeypatch: pytest.MonkeyPatch) -> list[str | int]:
    """Each fsync and rename, in order: ``file`` for a file fsynced, the inode number of a
    directory fsynced, ``rename <new name>``."""
    steps: list[str | int] = []
    real_fsync, real_replace, real_rename = os.fsync, os.replace, os.rename

    def fsync(fd: int) -> None:
        status = os.fstat(fd)
        steps.append(status.st_ino if stat.S_ISDIR(status.st_mode) else "file")
        real_fsync(fd)

    def renaming(real: Callable[[str | Path, str | Path], None]) -> Callable[..., None]:
        def rename(source: str | Path, destination: str | Path) -> None:
            steps.append(f"rename {Path(destination).name}")
            real(source, destination)

        return rename

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", renaming(real_replace))
    monkeypatch.setattr(os, "rename", renaming(real_rename))
    return steps


def test_a_begun_document_and_a_kept_chunk_are_on_disk_names_included_before_they_return(
    pki: DevPki,
    sealed: SealedDocument,
    tmp_path: Path,
    clock: FakeClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    root = tmp_path / "staging"
    area = staging(root, clock)
    steps = _record_disk_steps(monkeypatch)

    assert area.begin(verified(pki, sealed))

    envelope_id = sealed.header.envelope_id
    document_directory = (root / envelope_id).stat().st_ino
    assert steps == [
        "file",
        "rename header",
        "file",
        "rename started",
        document_directory,  # both names in it, before it is renamed into place
        f"rename {envelope_id}",
        root.stat().st_ino,  # the document's name in the staging root
    ]
    steps.clear()
    parts = chunks(sealed)

    assert area.accept(parts[3])
    assert not area.accept(parts[3])  # a duplicate: nothing written, nothing to sync

    assert steps == ["file", "rename 00003.chunk", document_directory]


@pytest.mark.parametrize("decrypted_as_staged", [False, True])
def test_a_delivered_document_is_on_disk_name_included_before_its_staged_chunks_go(
    pki: DevPki,
    sealed: SealedDocument,
    tmp_path: Path,
    clock: FakeClock,
    monkeypatch: pytest.MonkeyPatch,
    decrypted_as_staged: bool,
) -> None:
    root, delivered = tmp_path / "staging", tmp_path / "delivered"
    delivered.mkdir()
    key = key_of(pki, sealed)
    area = staging(root, clock)
    area.begin(verified(pki, sealed), content_key=key if decrypted_as_staged else None)
    for chunk in chunks(sealed):
        area.accept(chunk)
    steps = _record_disk_steps(monkeypatch)

    area.deliver(sealed.header.envelope_id, key, delivered / "document.xml")

    assert (delivered / "document.xml").read_bytes() == sealed.source.read_bytes()
    assert steps == [
        "file",  # the whole plaintext, decrypted now or as it was staged
        "rename document.xml",
        delivered.stat().st_ino,  # its name, before the staged chunks are deleted
        root.stat().st_ino,  # the staged chunks' directory gone from the root
    ]
    assert area.staged() == []


def test_a_restart_keeps_the_start_time_for_expiry(
    pki: DevPki, sealed: SealedDocument, tmp_path: Path, clock: FakeClock
) -> None:
    root = tmp_path / "staging"
    staging(root, clock).begin(verified(pki, sealed))
    clock.now = START + TIMEOUT
    (expired,) = staging(root, clock).expire()
    assert expired.missing == (0, 1, 2, 3, 4, 5)


def test_a_restart_removes_a_staged_directory_whose_header_is_unreadable(
    pki: DevPki, sealed: SealedDocument, tmp_path: Path, clock: FakeClock
) -> None:
    root = tmp_path / "staging"
    begun(pki, sealed, root, clock, slice(2))
    stray = root / "3f1c0e5a-0000-4000-8000-000000000000"
    stray.mkdir()
    (stray / "header").write_bytes(b"VDXH not a header")
    restarted = staging(root, clock)
    assert restarted.staged() == [sealed.header.envelope_id]
    assert not stray.exists()


def test_closing_finishes_the_decryptions_under_way_and_stops_the_decrypting_thread(
    pki: DevPki, sealed: SealedDocument, tmp_path: Path, clock: FakeClock
) -> None:
    root = tmp_path / "staging"
    threads_before = set(threading.enumerate())
    area = staging(root, clock)
    key = key_of(pki, sealed)
    area.begin(verified(pki, sealed), content_key=key)
    for chunk in chunks(sealed):
        area.accept(chunk)
    area.close()
    started = set(threading.enumerate()) - threads_before
    assert not [thread for thread in started if thread.name.startswith("staging-decrypt")]
    plain = root / sealed.header.envelope_id / ".plain"
    assert plain.read_bytes() == sealed.source.read_bytes()  # every chunk written before
