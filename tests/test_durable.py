"""The one atomic write (backbone.durable): the data fsynced before the rename that
publishes it, the directory fsynced after it only when asked, the mode ``open`` gives, and
nothing left behind when a write fails; and the one write-all loop, whole however short
each write is."""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from pathlib import Path

import pytest

from backbone.durable import write_all, write_atomically


def _record_syncs(monkeypatch: pytest.MonkeyPatch, target: Path) -> list[str]:
    """What each fsync and rename saw, in order: ``file`` (a regular file, the target not
    yet replaced), ``rename``, ``directory``."""
    steps: list[str] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd: int) -> None:
        kind = "directory" if stat.S_ISDIR(os.fstat(fd).st_mode) else "file"
        steps.append(kind)
        real_fsync(fd)

    def replace(source: str | Path, destination: str | Path) -> None:
        steps.append("rename")
        real_replace(source, destination)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    return steps


def test_the_data_is_fsynced_before_the_rename_and_the_directory_after_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "receipt.json"
    target.write_bytes(b"old")
    steps = _record_syncs(monkeypatch, target)

    write_atomically(target, b"new", sync_directory=True)

    assert steps == ["file", "rename", "directory"]
    assert target.read_bytes() == b"new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["receipt.json"]


def test_the_directory_is_not_fsynced_unless_asked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "3.chunk"
    steps = _record_syncs(monkeypatch, target)

    write_atomically(target, b"chunk", sync_directory=False)

    assert steps == ["file", "rename"]
    assert target.read_bytes() == b"chunk"


def test_the_temporary_file_is_the_one_given_or_the_dot_name_beside_the_target(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    renamed: list[tuple[str, str]] = []
    real_replace = os.replace

    def replace(source: str | Path, destination: str | Path) -> None:
        renamed.append((Path(source).name, Path(destination).name))
        real_replace(source, destination)

    monkeypatch.setattr(os, "replace", replace)
    scratch = tmp_path / ".scratch"
    scratch.mkdir()

    write_atomically(tmp_path / "a.edxml", b"a", sync_directory=False)
    write_atomically(tmp_path / "b.edxml", b"b", temporary=scratch / "b.tmp", sync_directory=True)

    assert renamed == [(".a.edxml", "a.edxml"), ("b.tmp", "b.edxml")]
    assert list(scratch.iterdir()) == []


def test_the_file_gets_the_mode_open_gives_it_under_the_umask(tmp_path: Path) -> None:
    previous = os.umask(0o027)
    try:
        write_atomically(tmp_path / "written", b"x", sync_directory=True)
        with (tmp_path / "opened").open("wb"):
            pass
    finally:
        os.umask(previous)

    mode = stat.S_IMODE((tmp_path / "written").stat().st_mode)
    assert mode == stat.S_IMODE((tmp_path / "opened").stat().st_mode) == 0o640


def test_a_failed_rename_leaves_the_target_as_it_was_and_no_temporary_file(
    tmp_path: Path,
) -> None:
    target = tmp_path / "directory.yaml"
    target.mkdir()  # a non-empty directory cannot be replaced by a file
    (target / "keep").write_bytes(b"kept")

    with pytest.raises(IsADirectoryError):
        write_atomically(target, b"new", sync_directory=True)

    assert (target / "keep").read_bytes() == b"kept"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["directory.yaml"]


def _short_writes(monkeypatch: pytest.MonkeyPatch, most: int) -> list[int]:
    """``os.write`` and ``os.pwrite`` writing at most ``most`` bytes a call; the sizes
    each call wrote, in order."""
    sizes: list[int] = []

    def shortened(real: Callable[..., int]) -> Callable[..., int]:
        def call(fd: int, data: bytes | memoryview, *offset: int) -> int:
            written = real(fd, data[:most], *offset)
            sizes.append(written)
            return written

        return call

    monkeypatch.setattr(os, "write", shortened(os.write))
    monkeypatch.setattr(os, "pwrite", shortened(os.pwrite))
    return sizes


def test_write_all_writes_every_byte_when_each_write_takes_only_a_few(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "chunk-000000.msg"
    data = bytes(range(256)) * 4
    sizes = _short_writes(monkeypatch, 7)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        write_all(fd, b"head:")
        write_all(fd, data)
    finally:
        os.close(fd)

    assert path.read_bytes() == b"head:" + data
    assert len(sizes) == 1 + -(-len(data) // 7)


def test_write_all_at_an_offset_writes_every_byte_there_and_leaves_the_position(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / ".plain"
    path.write_bytes(b"." * 40)
    sizes = _short_writes(monkeypatch, 3)
    fd = os.open(path, os.O_RDWR)
    try:
        write_all(fd, memoryview(b"the second chunk"), 20)
        write_all(fd, bytearray(b"first"), 0)
        position = os.lseek(fd, 0, os.SEEK_CUR)
    finally:
        os.close(fd)

    assert path.read_bytes() == b"first" + b"." * 15 + b"the second chunk" + b"." * 4
    assert position == 0
    assert sizes == [3, 3, 3, 3, 3, 1, 3, 2]
