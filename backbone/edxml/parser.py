"""Hardened XML parsing: the only way untrusted edXML (or any XML) enters the backbone.

No DTD is ever legitimate in edXML, so any DOCTYPE is refused outright rather than merely
left unexpanded: that closes entity expansion (billion laughs), external entities (XXE) and
network fetches in one rule. The size is bounded before lxml runs, and everything else
(nodes, attributes, namespaces, depth, text) by the pre-scan (:mod:`backbone.edxml.prescan`)
before the tree is built.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from lxml import etree

from backbone.edxml.hardening import (
    DEFAULT_LIMITS,
    DEFAULT_MAX_BYTES,
    DEFAULT_MAX_DEPTH,
    LIBXML2_MAX_TEXT_CHARS,
    PARSER_OPTIONS,
    XmlLimits,
)
from backbone.edxml.prescan import prescan
from backbone.errors import EdxmlError, Reason

__all__ = [
    "DEFAULT_MAX_BYTES",
    "DEFAULT_MAX_DEPTH",
    "XmlLimits",
    "hardened_parser",
    "parse_xml",
]

# The prolog may hold a BOM, an XML declaration, whitespace, comments and processing
# instructions; a DOCTYPE can only appear there, before the root element.
_PROLOG_ITEM = re.compile(rb"\s+|<\?.*?\?>|<!--.*?-->", re.DOTALL)
_BOM = b"\xef\xbb\xbf"
_RESOURCE_LIMIT = etree.ErrorTypes.ERR_RESOURCE_LIMIT

# One parser per thread: lxml lets only one thread at a time use a parser instance, and
# parses with the GIL released, so threads that share nothing parse in parallel.
_local = threading.local()


def parse_xml(data: bytes, limits: XmlLimits = DEFAULT_LIMITS) -> etree._Element:
    """Parse untrusted XML and return its root element, or raise :class:`EdxmlError`.

    Reasons: ``EDXML_TOO_LARGE`` (more than ``limits.max_bytes``), ``EDXML_UNSAFE`` (a
    DOCTYPE, or elements nested deeper than ``limits.max_depth`` with the root at depth 1),
    ``EDXML_TOO_COMPLEX`` (another of the pre-scan's limits) and ``EDXML_NOT_WELL_FORMED``
    (syntax or encoding errors, with lxml's line number).
    """
    if len(data) > limits.max_bytes:
        raise EdxmlError(
            f"XML input is {len(data)} bytes; the limit is {limits.max_bytes} bytes",
            reason=Reason.EDXML_TOO_LARGE,
        )
    _refuse_doctype_in_prolog(data)
    root = _with_own_dictionary(_parse, data, limits)
    # Second line of defence for encodings the byte-level prolog scan cannot read (UTF-16).
    if root.getroottree().docinfo.internalDTD is not None:
        raise _doctype_error()
    return root


def _parse(data: bytes, limits: XmlLimits) -> etree._Element:
    try:
        # Bounds the cost of everything after it; a small document's tree is the pass's own.
        root = prescan(data, limits, keep_tree=True)
        return etree.fromstring(data, hardened_parser()) if root is None else root
    except etree.XMLSyntaxError as exc:
        raise _junk_before_declaration(data) or _syntax_error(
            _full_parse_error(data, exc)
        ) from None


# Input one parse thread takes before it is replaced (see _with_own_dictionary): its name
# dictionary holds at most a few times this, and a 4 KiB document pays a 128th of a
# thread's start (a fresh thread for every parse cost ~0.3 ms of CPU, more than the parse).
PARSE_THREAD_BYTES = 2**19


class _ParseThread:
    """A thread that parses for one calling thread, until it has taken its share of input."""

    def __init__(self) -> None:
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="edxml-parse")
        self.taken = 0


def _with_own_dictionary(
    parse: Callable[[bytes, XmlLimits], etree._Element], data: bytes, limits: XmlLimits
) -> etree._Element:
    """``parse(data, limits)`` in a parse thread of the calling thread's own.

    lxml interns every element and attribute name and namespace URI it parses in a string
    dictionary per thread that is never emptied: in a long-lived thread, each hostile
    document with names or a namespace URI never seen before (one URI may be megabytes)
    grew the process for good; 1.5 GB after 26,000 fuzzed inputs (issue 19, fuzzing).
    So the parse runs in a thread that is replaced once it has taken ``PARSE_THREAD_BYTES``
    of input: the old thread ends, and its dictionary is freed with the last document that
    uses it."""
    worker: _ParseThread | None = getattr(_local, "parse_thread", None)
    if worker is None or worker.taken >= PARSE_THREAD_BYTES:
        if worker is not None:
            worker.executor.shutdown(wait=False)
        worker = _local.parse_thread = _ParseThread()
    worker.taken += len(data)
    return worker.executor.submit(parse, data, limits).result()


def hardened_parser() -> etree.XMLParser:
    """This thread's lxml parser with the hardened settings (for libraries that re-parse)."""
    parser: etree.XMLParser | None = getattr(_local, "parser", None)
    if parser is None:
        parser = etree.XMLParser(**PARSER_OPTIONS)
        _local.parser = parser
    return parser


def _full_parse_error(data: bytes, scan_error: etree.XMLSyntaxError) -> etree.XMLSyntaxError:
    """The error of a whole-document parse, whose messages are more precise than the
    streaming pre-scan's ("Entity 'x' not defined" where the pre-scan says "no element
    found"). Bounded: the pre-scan found the input within its limits up to its error, and
    the whole-document parse stops at its first error, which is never later."""
    try:
        etree.fromstring(data, hardened_parser())
    except etree.XMLSyntaxError as exc:
        return exc
    return scan_error


def _syntax_error(exc: etree.XMLSyntaxError) -> EdxmlError:
    line = exc.lineno or None
    code: int = getattr(exc, "code", 0)  # lxml-stubs omit ParseError.code
    if code != _RESOURCE_LIMIT:
        return EdxmlError(
            f"XML is not well-formed: {exc.msg}", reason=Reason.EDXML_NOT_WELL_FORMED, line=line
        )
    # libxml2's own remaining limits (nesting depth, among others): depth is an attack.
    reason = Reason.EDXML_UNSAFE if "depth" in exc.msg else Reason.EDXML_TOO_LARGE
    if "Text node too long" in exc.msg:  # beyond what huge_tree lifts: say what to do
        return EdxmlError(
            f"XML has a text (an attachment's base64) longer than libxml2's limit of "
            f"{LIBXML2_MAX_TEXT_CHARS:,} characters, about 715 MiB of attached file: split "
            "the attachment into several",
            reason=reason,
            line=line,
        )
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
