"""The pre-scan: one streaming pass over untrusted XML that checks :class:`XmlLimits` before
anything builds the whole tree, canonicalises, validates or verifies it.

lxml's pull parser (libxml2's push parser, with the hardened settings) is fed 8 KiB at a
time, and its events are counted as they come; the first breach stops the pass, so its cost
is bounded by the limits, not by the input. Finished elements are cleared as the pass goes,
so it holds at most the open elements and the cleared shells of their children — except for
an input of at most :data:`KEPT_TREE_BYTES` whose tree the caller asked for: that tree is
the document's, kept whole and handed back, so the same bytes are not parsed twice (issue
21); its memory is bounded by that size.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Literal

from lxml import etree

from backbone.edxml.hardening import DEFAULT_LIMITS, PARSER_OPTIONS, XmlLimits
from backbone.edxml.issues import line_of, path_of
from backbone.errors import EdxmlError, Reason

__all__ = ["KEPT_TREE_BYTES", "prescan"]

# Small enough that a breach stops the pass soon after it (a chunk of empty elements is 2,000
# events), large enough that feeding costs nothing next to parsing.
_CHUNK = 8 * 1024
_EVENTS: tuple[Literal["start", "end", "start-ns", "comment", "pi"], ...] = (
    "start",
    "end",
    "start-ns",
    "comment",
    "pi",
)


# Up to this size the pass keeps the tree it builds when asked (see the module docstring):
# a small document's second parse cost about as much as the pass's own counting.
KEPT_TREE_BYTES = 1024 * 1024


def prescan(
    data: bytes, limits: XmlLimits = DEFAULT_LIMITS, *, keep_tree: bool = False
) -> etree._Element | None:
    """Check ``data`` against ``limits`` in one pass. Raises :class:`EdxmlError`
    (``edxml_too_complex``, or ``edxml_unsafe`` for depth) at the first breach, and lets
    lxml's :class:`~lxml.etree.XMLSyntaxError` through for XML that is not well-formed.

    With ``keep_tree``, returns the root of the tree the pass built (the hardened parser's,
    as ``etree.fromstring`` would make it) when ``data`` is at most :data:`KEPT_TREE_BYTES`;
    otherwise None, and the caller parses."""
    keep = keep_tree and len(data) <= KEPT_TREE_BYTES
    parser = etree.XMLPullParser(events=_EVENTS, **PARSER_OPTIONS)
    counter = _Counter(limits, clear=not keep)
    for start in range(0, len(data), _CHUNK):
        parser.feed(data[start : start + _CHUNK])
        counter.take(parser.read_events())
    root: etree._Element = parser.close()
    counter.take(parser.read_events())
    return root if keep else None


class _Counter:
    """The counts so far. The common path is a few integer comparisons per event; messages
    are only built for a breach."""

    def __init__(self, limits: XmlLimits, *, clear: bool = True) -> None:
        self.limits = limits
        self.clear = clear  # drop finished elements (not when the caller keeps the tree)
        self.nodes = 0
        self.depth = 0
        self.attributes = 0
        self.namespaces = 0
        self.declared = 0  # namespace declarations of the element whose start comes next

    def take(self, events: Iterable[tuple[str, Any]]) -> None:
        for event, item in events:
            if event == "start":
                self._start(item)
            elif event == "end":
                self._end(item)
            elif event == "start-ns":
                self.namespaces += 1
                self.declared += 1
            else:  # a comment or a processing instruction
                self.nodes += 1
                if self.nodes > self.limits.max_nodes:
                    self._breach(item, self.nodes, "max_nodes", _NODES)

    def _start(self, element: etree._Element) -> None:
        limits = self.limits
        self.nodes += 1
        self.depth += 1
        declared, self.declared = self.declared, 0
        attrib = element.attrib
        attributes = len(attrib)
        self.attributes += attributes
        if self.depth > limits.max_depth:
            raise EdxmlError(
                f"XML elements are nested deeper than {limits.max_depth} levels",
                reason=Reason.EDXML_UNSAFE,
                line=line_of(element),
            )
        if self.nodes > limits.max_nodes:
            self._breach(element, self.nodes, "max_nodes", _NODES)
        if declared:  # most elements declare no namespace
            if declared > limits.max_namespaces_per_element:
                self._breach(
                    element,
                    declared,
                    "max_namespaces_per_element",
                    "{name} declares {n} namespaces",
                )
            if self.namespaces > limits.max_namespaces:
                self._breach(element, self.namespaces, "max_namespaces", "{n} namespaces declared")
        if not attributes:  # most elements have no attribute: nothing more to count
            return
        if attributes > limits.max_attributes_per_element:
            self._breach(
                element, attributes, "max_attributes_per_element", "{name} has {n} attributes"
            )
        if self.attributes > limits.max_attributes:
            self._breach(element, self.attributes, "max_attributes", "{n} attributes in all")
        for value in attrib.values():
            if len(value) > limits.max_attribute_chars:
                what = "an attribute of {name} has {n} characters"
                self._breach(element, len(value), "max_attribute_chars", what)

    def _end(self, element: etree._Element) -> None:
        # The element's text and its children's tails are complete now: check them, then
        # drop them (keeping the element's own tail for its parent to check).
        self.depth -= 1
        limit = self.limits.max_text_chars
        text = element.text
        if text is not None and len(text) > limit:
            self._breach(element, len(text), "max_text_chars", "a text in {name} has {n}")
        for child in element:
            tail = child.tail
            if tail is not None and len(tail) > limit:
                self._breach(element, len(tail), "max_text_chars", "a text in {name} has {n}")
        # keep_tail: the tail may still be growing. libxml2 appends the characters of a
        # chunk to the text node it last made; freeing that node (clear() without
        # keep_tail, then setting .tail again) let the next feed write into freed memory
        # and corrupt the heap (issue 19, fuzzing: tests/fuzz/regressions/edxml/).
        if self.clear:
            element.clear(keep_tail=True)  # type: ignore[call-arg]  # lxml-stubs lack keep_tail

    def _breach(self, node: etree._Element, value: int, limit_name: str, what: str) -> None:
        is_element = isinstance(node.tag, str)
        name = etree.QName(node).localname if is_element else "a comment"
        limit = getattr(self.limits, limit_name)
        raise EdxmlError(
            f"XML is too complex: {what.format(name=name, n=value, limit=limit)}; the limit is "
            f"{limit} ({limit_name})",
            reason=Reason.EDXML_TOO_COMPLEX,
            line=line_of(node),
            path=path_of(node) if is_element else None,
        )


_NODES = "more than {limit} elements, comments and processing instructions"
