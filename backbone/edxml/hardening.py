"""What untrusted XML may be: libxml2's settings for every parse, and the pre-scan's limits.

The limits bound what one document can cost before anything canonicalises, validates or
verifies it (:mod:`backbone.edxml.prescan` checks them in one streaming pass): the tree
lxml builds holds at most ``max_nodes`` nodes and ``max_attributes`` attributes, and every
later step (schema validation, reading, XML-DSig canonicalisation and digests) is linear
in that tree. Real edXML is far inside them: the vendor samples in ``interop/edxml`` have
at most 118 nodes, 2 attributes on an element, 3 namespace declarations and nesting 8
deep; a document to 1,000 agencies has about 11,000 nodes. Attachments are base64 text,
so one text node may be as large as the document itself.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Final, TypedDict

__all__ = [
    "DEFAULT_LIMITS",
    "DEFAULT_MAX_BYTES",
    "DEFAULT_MAX_DEPTH",
    "LIBXML2_MAX_TEXT_CHARS",
    "PARSER_OPTIONS",
    "XmlLimits",
]

DEFAULT_MAX_BYTES: Final = 64 * 1024 * 1024
DEFAULT_MAX_DEPTH: Final = 64
# libxml2's own cap on one text node even with huge_tree (XML_MAX_HUGE_LENGTH): an
# attachment's base64 beyond it (about 715 MiB of file) cannot be parsed at all.
LIBXML2_MAX_TEXT_CHARS: Final = 1_000_000_000


class ParserOptions(TypedDict):
    """lxml's ``XMLParser`` keyword arguments that the hardening sets."""

    resolve_entities: bool
    no_network: bool
    load_dtd: bool
    dtd_validation: bool
    huge_tree: bool
    remove_comments: bool
    remove_pis: bool


# Every parse of untrusted XML uses these. No DTD is loaded, no entity resolved, nothing
# fetched. huge_tree lifts libxml2's 10 MB cap on one text node, which would refuse a real
# scanned PDF attachment: safe here because the input size is bounded first, DTDs (and so
# entities) are refused, and the pre-scan bounds everything else.
PARSER_OPTIONS: Final[ParserOptions] = {
    "resolve_entities": False,
    "no_network": True,
    "load_dtd": False,
    "dtd_validation": False,
    "huge_tree": True,
    "remove_comments": False,
    "remove_pis": False,
}


@dataclass(frozen=True, slots=True)
class XmlLimits:
    """Bounds on one XML document. A breach is refused as ``edxml_too_large`` (size),
    ``edxml_unsafe`` (depth, as libxml2's own depth limit is) or ``edxml_too_complex``
    (everything else), with a message naming the limit and the value found."""

    max_bytes: int = DEFAULT_MAX_BYTES  # the whole input
    max_depth: int = DEFAULT_MAX_DEPTH  # element nesting, the root at depth 1
    max_nodes: int = 20_000  # elements, comments and processing instructions
    max_attributes: int = 20_000  # in the whole document
    max_attributes_per_element: int = 32
    max_namespaces: int = 256  # namespace declarations in the whole document
    max_namespaces_per_element: int = 16
    max_attribute_chars: int = 64 * 1024  # one attribute value
    # One run of character data: base64 attachments are legitimately as large as the
    # document, so this is the document's own bound, not a small cap.
    max_text_chars: int = DEFAULT_MAX_BYTES

    def admitting(self, document_bytes: int) -> XmlLimits:
        """These limits for a document of up to ``document_bytes`` (a chunked one, which
        ``max_document_bytes`` admits): only the size bounds grow, the input and its one
        text run (a base64 attachment, up to libxml2's own cap); depth, nodes, attributes
        and namespaces stay, and the parser still loads no DTD and resolves no entity
        (``PARSER_OPTIONS``)."""
        if document_bytes <= self.max_bytes:
            return self
        return dataclasses.replace(
            self,
            max_bytes=document_bytes,
            max_text_chars=max(self.max_text_chars, min(document_bytes, LIBXML2_MAX_TEXT_CHARS)),
        )


DEFAULT_LIMITS: Final = XmlLimits()
