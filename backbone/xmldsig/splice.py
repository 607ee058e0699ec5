"""The signed file written from the original's bytes, the signature spliced in (issue 18).

Serialising a large signed tree with libxml2 costs about as much as signing it (≈ 4.5 s per
GiB). The signature covers the document's canonical form, not its bytes, so the signed file
may instead be the original's bytes with the ``ds:Signature`` put where :func:`sign_edxml`
puts it in the tree: in place of the one placeholder ``Signature`` of ``edXMLHeader``, or
just before the header's end tag. Parsed, those bytes give the tree that was signed: the
same parser reads the same bytes around the signature (line ends, character references,
CDATA and the declaration are the original's, read as they were read when signing), and the
signature element is written in exclusive canonical form, which declares the one namespace
it uses and escapes what it holds.

Only where that holds: the original is UTF-8 (no BOM, an XML declaration of UTF-8 or none),
its header has at most one placeholder, and expat, reading the original up to the header's
end tag, finds the header where lxml's tree has it (:func:`find_splice`). The caller checks
the tree (no comments: :func:`sign_edxml` removes them, the bytes would keep them; the same
count of placeholders and children in the header) and falls back to serialising the tree
otherwise, and when the original's bytes read back for the copy are not the ones parsed
(their size and CRC-32, :func:`write_spliced`).
"""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO
from xml.parsers import expat

__all__ = ["XML_DECLARATION", "Splice", "find_splice", "write_spliced"]

_EDXML_NS = "http://www.mic.gov.vn/TBT/QCVN_102_2016"
_DS_NS = "http://www.w3.org/2000/09/xmldsig#"
# expat's names with namespace_separator=" ": "uri localname".
_ROOT, _ENVELOPE, _HEADER = (
    f"{_EDXML_NS} {name}" for name in ("edXML", "edXMLEnvelope", "edXMLHeader")
)
_PLACEHOLDERS = frozenset({f"{_EDXML_NS} Signature", f"{_DS_NS} Signature"})
# The header is near the start (edXMLEnvelope's first part); a document whose header ends
# later than this is signed by serialising its tree.
MAX_HEAD_BYTES = 4 << 20
_FEED = 1 << 16
# An element's name in its start tag, as written (prefix included).
_NAME = re.compile(rb"<([^ \t\r\n/>]+)")
_COPY_BLOCK = 1 << 20
# An XML declaration with its version and encoding (None when not declared), then space.
XML_DECLARATION = re.compile(
    rb"<\?xml\s+version\s*=\s*[\"'](?P<version>1\.[0-9])[\"']"
    rb"(?:\s+encoding\s*=\s*[\"'](?P<encoding>[A-Za-z0-9._-]*)[\"'])?"
    rb"(?:\s+standalone\s*=\s*[\"'](?:yes|no)[\"'])?\s*\?>[ \t\r\n]*"
)


@dataclass(frozen=True, slots=True)
class Splice:
    """Where the signature goes in the original's bytes: ``[start, end)`` is replaced by it
    (the placeholder's bytes, or nothing just before the header's end tag). ``placeholders``
    and ``header_children`` (elements and processing instructions) are what expat saw in the
    header, for the caller to hold to the tree; ``size`` and ``crc32`` are the original's."""

    start: int
    end: int
    placeholders: int
    header_children: int
    size: int
    crc32: int


class _HeaderEndError(Exception):
    """Raised from expat's handlers to end the scan: at the header's end tag (nothing after
    it is read), or at what leaves no place to splice into."""


def find_splice(edxml: bytes) -> Splice | None:
    """Where the signature goes in ``edxml``, or None when its bytes are not a form this
    module splices into (not UTF-8, a BOM, more than one placeholder, the header not found
    within :data:`MAX_HEAD_BYTES`, anything expat does not read as the tree has it)."""
    if not _utf8_without_bom(edxml):
        return None
    scan = _HeaderScan(edxml)
    parser = expat.ParserCreate(namespace_separator=" ")
    parser.StartElementHandler = scan.start
    parser.EndElementHandler = scan.end
    parser.ProcessingInstructionHandler = scan.instruction
    scan.parser = parser
    view = memoryview(edxml)[:MAX_HEAD_BYTES]
    try:
        for offset in range(0, len(view), _FEED):
            parser.Parse(view[offset : offset + _FEED], False)
    except _HeaderEndError:
        pass
    except expat.ExpatError:
        return None
    finally:
        view.release()
    if scan.end_tag is None or scan.refused or scan.placeholders > 1:
        return None  # more than one placeholder: signing removes them all, the rest stay
    if scan.placeholder is None:
        start = end = scan.end_tag
    else:
        start, end = scan.placeholder
    return Splice(start, end, scan.placeholders, scan.children, len(edxml), zlib.crc32(edxml))


def _utf8_without_bom(edxml: bytes) -> bool:
    """UTF-8 by XML's rules, with nothing before the first ``<`` to get wrong: an XML
    declaration of UTF-8 (or of no encoding), or none at all."""
    if not edxml.startswith(b"<") or b"\x00" in edxml[:4]:
        return False  # a BOM, UTF-16 or UTF-32, or leading space (then no declaration)
    if not edxml.startswith(b"<?xml"):
        return True
    declared = XML_DECLARATION.match(edxml)
    if declared is None or declared.group("version") != b"1.0":
        return False
    return (declared.group("encoding") or b"utf-8").lower() == b"utf-8"


class _HeaderScan:
    """expat's events down to the first ``edXMLHeader`` in an ``edXMLEnvelope`` of the root
    (the one lxml's ``find`` takes), its children counted and its placeholder's byte range
    taken, until the header's end tag."""

    def __init__(self, edxml: bytes) -> None:
        self.edxml = edxml
        self.parser: expat.XMLParserType | None = None
        self.path: list[str] = []
        self.in_header = False
        self.header_start: int | None = None
        self.children = 0
        self.placeholders = 0
        self.placeholder_start: int | None = None
        self.placeholder: tuple[int, int] | None = None
        self.end_tag: int | None = None
        self.refused = False

    def _index(self) -> int:
        assert self.parser is not None
        return self.parser.CurrentByteIndex

    def start(self, name: str, _attributes: object) -> None:
        depth = len(self.path)
        self.path.append(name)
        if depth == 0 and name != _ROOT:
            self.refused = True
            raise _HeaderEndError
        if depth == 2 and name == _HEADER and self.path[1] == _ENVELOPE:
            self.in_header = True
            self.header_start = self._index()
        elif depth == 3 and self.in_header:
            self.children += 1
            if name in _PLACEHOLDERS:
                self.placeholders += 1
                self.placeholder_start = self._index()

    def end(self, name: str) -> None:
        depth = len(self.path) - 1
        self.path.pop()
        if depth == 3 and self.in_header and self.placeholder_start is not None:
            start, self.placeholder_start = self.placeholder_start, None
            tag_end = self._element_end(start)
            if tag_end is None:
                self.refused = True
                raise _HeaderEndError
            self.placeholder = self.placeholder or (start, tag_end)
        elif depth == 2 and self.in_header:
            assert self.header_start is not None
            if self._end_tag(self.header_start) is None:
                self.refused = True  # an empty-element header: not an edXML one
            else:
                self.end_tag = self._index()
            raise _HeaderEndError

    def _end_tag(self, start: int) -> int | None:
        """Just after the end tag at this event of the element whose start tag is at
        ``start`` (the same name, as written); None when the element has no end tag there."""
        name = _NAME.match(self.edxml, start)
        if name is None:
            return None
        end_tag = re.compile(rb"</" + re.escape(name.group(1)) + rb"[ \t\r\n]*>")
        found = end_tag.match(self.edxml, self._index())
        return None if found is None else found.end()

    def _element_end(self, start: int) -> int | None:
        """Just after the element that began at ``start`` and ends at this event: its end
        tag, or its empty-element tag (expat's index is then just after that tag, where the
        bytes may be the parent's end tag, of another name)."""
        end_tag = self._end_tag(start)
        if end_tag is not None:
            return end_tag
        index = self._index()
        return index if index > start and self.edxml[index - 2 : index] == b"/>" else None

    def instruction(self, _target: str, _data: str) -> None:
        if len(self.path) == 3 and self.in_header:
            self.children += 1


def write_spliced(target: Path, original: BinaryIO, splice: Splice, signature: bytes) -> bool:
    """Write ``target``: the original's bytes (read from the start of ``original``, a block
    at a time) with ``[splice.start, splice.end)`` replaced by ``signature``. False (and
    ``target`` left for the caller to overwrite) when what is read is not the original
    that was parsed: another size or CRC-32."""
    original.seek(0)
    copy = _Copy(original)
    with target.open("wb") as out:
        if not copy.through(out, splice.start):
            return False
        out.write(signature)
        if not copy.through(None, splice.end - splice.start):
            return False
        copy.through(out, None)
    return copy.size == splice.size and copy.crc == splice.crc32


class _Copy:
    """``original`` read on, its size and CRC-32 kept."""

    def __init__(self, original: BinaryIO) -> None:
        self.original = original
        self.size = 0
        self.crc = 0

    def through(self, out: BinaryIO | None, length: int | None) -> bool:
        """The next ``length`` bytes (None: all the rest) written to ``out`` (None: skipped);
        False if the original ends before."""
        left = length
        while left is None or left > 0:
            block = self.original.read(_COPY_BLOCK if left is None else min(left, _COPY_BLOCK))
            if not block:
                return left is None
            if left is not None:
                left -= len(block)
            self.crc = zlib.crc32(block, self.crc)
            self.size += len(block)
            if out is not None:
                out.write(block)
        return True
