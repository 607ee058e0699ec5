"""Parsing hostile edXML leaves nothing behind: lxml interns every name and namespace URI
in a per-thread dictionary that is never emptied, so documents each bringing new ones grew a
long-lived process for good (issue 19, found by fuzzing: 1.5 GB after 26,000 inputs)."""

from __future__ import annotations

import contextlib
import gc
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from backbone.edxml import examine
from backbone.edxml.parser import parse_xml
from backbone.errors import EdxmlError

DOCUMENTS = 60
URI_BYTES = 400_000  # each document's namespace URI: 24 MB of new names in all


def _resident_bytes() -> int:
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE")


def _with_new_names(number: int) -> bytes:
    uri = f"urn:{number:06d}:".encode() + os.urandom(URI_BYTES // 2).hex().encode()
    name = f"n{number:06d}".encode() + b"x" * 2_000
    return b'<edXML xmlns="' + uri + b'"><' + name + b' a="1"/></edXML>'


@pytest.mark.skipif(not Path("/proc/self/statm").exists(), reason="needs Linux /proc")
@pytest.mark.parametrize("reader", [parse_xml, examine], ids=["parse_xml", "examine"])
def test_documents_with_new_names_do_not_grow_the_process(
    reader: Callable[[bytes], object],
) -> None:
    def read(data: bytes) -> None:
        with contextlib.suppress(EdxmlError):
            reader(data)

    read(_with_new_names(-1))  # schemas, parser and caches loaded once
    gc.collect()
    before = _resident_bytes()
    for number in range(DOCUMENTS):
        read(_with_new_names(number))
    gc.collect()
    grown = _resident_bytes() - before
    # Kept, the URIs alone would be DOCUMENTS × URI_BYTES = 24 MB.
    assert grown < DOCUMENTS * URI_BYTES // 4, f"grew by {grown / 1e6:.1f} MB"
