"""Hardened XML parsing: the only way untrusted edXML (or any XML) enters the backbone.

No DTD is ever legitimate in edXML, so any DOCTYPE is refused outright rather than merely
left unexpanded: that closes entity expansion (billion laughs), external entities (XXE) and
network fetches in one rule. Size and nesting depth are bounded before and after lxml runs.
"""

from __future__ import annotations

import re
import threading
from functools import lru_cache

from lxml import etree

from backbone.edxml.issues import line_of
from backbone.errors import EdxmlError, Reason

__all__ = ["DEFAULT_MAX_BYTES", "DEFAULT_MAX_DEPTH", "hardened_parser", "parse_xml"]

DEFAULT_MAX_BYTES = 64 * 1024 * 1024
DEFAULT_MAX_DEPTH = 64

# The prolog may hold a BOM, an XML declaration, whitespace, comments and processing
# instructions; a DOCTYPE can only appear there, before the root element.
_PROLOG_ITEM = re.compile(rb"\s+|<\?.*?\?>|<!--.*?-->", re.DOTALL)
_BOM = b"\xef\xbb\xbf"
_RESOURCE_LIMIT = etree.ErrorTypes.ERR_RESOURCE_LIMIT

# One parser per thread: lxml lets only one thread at a time use a parser instance, and
# parses with the GIL released, so threads that share nothing parse in parallel.
_local = threading.local()


def parse_xml(
    data: bytes,
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_depth: int = DEFAULT_MAX_DEPTH,
) -> etree._Element:
    """Parse untrusted XML and return its root element, or raise :class:`EdxmlError`.

    Reasons: ``EDXML_TOO_LARGE`` (more than ``max_bytes``), ``EDXML_UNSAFE`` (a DOCTYPE, or
    elements nested deeper than ``max_depth`` with the root at depth 1) and
    ``EDXML_NOT_WELL_FORMED`` (syntax or encoding errors, with lxml's line number).
    """
    if len(data) > max_bytes:
        raise EdxmlError(
            f"XML input is {len(data)} bytes; the limit is {max_bytes} bytes",
            reason=Reason.EDXML_TOO_LARGE,
        )
    _refuse_doctype_in_prolog(data)
    try:
        root = etree.fromstring(data, hardened_parser())
    except etree.XMLSyntaxError as exc:
        raise _junk_before_declaration(data) or _syntax_error(exc) from None
    # Second line of defence for encodings the byte-level prolog scan cannot read (UTF-16).
    if root.getroottree().docinfo.internalDTD is not None:
        raise _doctype_error()
    too_deep = _too_deep(max_depth)(root)
    if isinstance(too_deep, list) and too_deep:
        first = too_deep[0]
        raise EdxmlError(
            f"XML elements are nested deeper than {max_depth} levels",
            reason=Reason.EDXML_UNSAFE,
            line=line_of(first) if isinstance(first, etree._Element) else None,
        )
    return root


def hardened_parser() -> etree.XMLParser:
    """This thread's lxml parser with the hardened settings (for libraries that re-parse)."""
    parser: etree.XMLParser | None = getattr(_local, "parser", None)
    if parser is None:
        # huge_tree lifts libxml2's 10 MB cap on one text node, which would refuse a real
        # scanned PDF attachment. Safe here: the input size is bounded above, DTDs (and so
        # entities) are refused, and libxml2 still caps nesting depth.
        parser = etree.XMLParser(
            resolve_entities=False,
            no_network=True,
            load_dtd=False,
            dtd_validation=False,
            huge_tree=True,
            remove_comments=False,
            remove_pis=False,
        )
        _local.parser = parser
    return parser


def _syntax_error(exc: etree.XMLSyntaxError) -> EdxmlError:
    line = exc.lineno or None
    code: int = getattr(exc, "code", 0)  # lxml-stubs omit ParseError.code
    if code != _RESOURCE_LIMIT:
        return EdxmlError(
            f"XML is not well-formed: {exc.msg}", reason=Reason.EDXML_NOT_WELL_FORMED, line=line
        )
    # libxml2's own remaining limits (nesting depth, among others): depth is an attack.
    reason = Reason.EDXML_UNSAFE if "depth" in exc.msg else Reason.EDXML_TOO_LARGE
    return EdxmlError(f"XML exceeds a parser limit: {exc.msg}", reason=reason, line=line)


def _junk_before_declaration(data: bytes) -> EdxmlError | None:
    """Some software writes bytes (a length, a stray BOM copy) before ``<?xml``: say so."""
    declaration = data.find(b"<?xml", 0, 1024)
    start = len(_BOM) if data.startswith(_BOM) else 0
    if declaration <= start or data[start:declaration].strip() == b"":
        return None
    junk = data[start:declaration]
    return EdxmlError(
        f"{len(junk)} byte(s) {junk[:16]!r} before the XML declaration; an edXML file must "
        "start with '<?xml' (or an optional UTF-8 byte order mark)",
        reason=Reason.EDXML_NOT_WELL_FORMED,
        line=1,
    )


def _refuse_doctype_in_prolog(data: bytes) -> None:
    position = len(_BOM) if data.startswith(_BOM) else 0
    while match := _PROLOG_ITEM.match(data, position):
        position = match.end()
    if data.startswith(b"<!DOCTYPE", position):
        raise _doctype_error(line=data.count(b"\n", 0, position) + 1)


def _doctype_error(line: int | None = None) -> EdxmlError:
    return EdxmlError(
        "XML carries a DOCTYPE declaration; DTDs and entity declarations are never "
        "allowed in edXML",
        reason=Reason.EDXML_UNSAFE,
        line=line,
    )


@lru_cache(maxsize=8)
def _too_deep(max_depth: int) -> etree.XPath:
    # The first element at depth max_depth + 1, if any; evaluated in C by libxml2.
    return etree.XPath("(/*" + "/*" * max_depth + ")[1]")
