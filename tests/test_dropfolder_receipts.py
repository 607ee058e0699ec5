"""The drop folder's receipt index (adapters/dropfolder/receipts.py): events find their
receipt among thousands without re-reading the ones already known."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from adapters.dropfolder import receipts
from adapters.dropfolder.receipts import ReceiptIndex


def _write(path: Path, envelope_id: str, document_id: str = "doc", **extra: object) -> dict:
    record = {"envelope_id": envelope_id, "document_id": document_id, **extra}
    scratch = path.with_name(".scratch")
    scratch.write_text(json.dumps(record))
    os.replace(scratch, path)  # as the adapter writes: an atomic replace, a new inode
    return record


@pytest.fixture
def folders(tmp_path: Path) -> tuple[Path, Path]:
    sent, failed = tmp_path / "sent", tmp_path / "failed"
    sent.mkdir()
    failed.mkdir()
    return sent, failed


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    seen: list[Path] = []
    real = receipts.read_json

    def counting(path: Path) -> dict | None:
        seen.append(path)
        return real(path)

    monkeypatch.setattr(receipts, "read_json", counting)
    return seen


def test_a_receipt_the_sender_noted_is_found_without_listing_the_folder(
    folders: tuple[Path, Path], reads: list[Path]
) -> None:
    sent, _ = folders
    for number in range(200):
        _write(sent / f"old-{number}.edxml.receipt.json", f"e{number}")
    index = ReceiptIndex()
    receipt = sent / "x.edxml.receipt.json"
    index.note(receipt, _write(receipt, "new"))

    assert index.by_envelope(folders, "new") == (receipt, json.loads(receipt.read_text()))
    assert reads == [receipt]  # its own record only: none of the 200 others


def test_receipts_written_elsewhere_are_read_once_each_however_many_events_come(
    folders: tuple[Path, Path], reads: list[Path]
) -> None:
    sent, _ = folders
    for number in range(50):
        _write(sent / f"d{number}.edxml.receipt.json", f"e{number}")
    index = ReceiptIndex()
    for number in range(50):
        found = index.by_envelope(folders, f"e{number}")
        assert found is not None
        assert found[0].name == f"d{number}.edxml.receipt.json"
    # One listing read the 50 once; each later lookup reads just the receipt it returns.
    assert len(reads) == 50 + 50
    assert index.by_envelope(folders, "unknown") is None
    assert len(reads) == 100


def test_a_receipt_moved_to_failed_or_replaced_or_deleted_is_followed(
    folders: tuple[Path, Path],
) -> None:
    sent, failed = folders
    index = ReceiptIndex()
    receipt = sent / "x.edxml.receipt.json"
    index.note(receipt, _write(receipt, "e1"))

    _write(receipt, "e1", router_events=[{"type": "routed"}])  # updated in place
    found = index.by_envelope(folders, "e1")
    assert found is not None
    assert found[1]["router_events"] == [{"type": "routed"}]

    moved = failed / "x.edxml.receipt.json"
    os.replace(receipt, moved)
    assert index.by_envelope(folders, "e1") == (moved, json.loads(moved.read_text()))

    _write(moved, "e2")  # the name reused by another envelope
    assert index.by_envelope(folders, "e1") is None
    assert index.by_envelope(folders, "e2") is not None

    moved.unlink()
    assert index.by_envelope(folders, "e2") is None


def test_receipts_of_a_document_id_are_all_found_in_both_folders(
    folders: tuple[Path, Path],
) -> None:
    sent, failed = folders
    _write(sent / "a.edxml.receipt.json", "e1", document_id="D")
    _write(failed / "b.edxml.receipt.json", "e2", document_id="D")
    _write(sent / "c.edxml.receipt.json", "e3", document_id="other")
    (sent / "a.edxml").write_text("not a receipt")
    found = ReceiptIndex().by_document(folders, "D")
    assert sorted(path.name for path in found) == ["a.edxml.receipt.json", "b.edxml.receipt.json"]
