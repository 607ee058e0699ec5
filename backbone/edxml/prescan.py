"""The pre-scan: one streaming pass over untrusted XML that checks :class:`XmlLimits` before
anything builds the whole tree, canonicalises, validates or verifies it.

lxml's pull parser (libxml2's push parser, with the hardened settings) is fed 64 KiB at a
time, and its events are counted as they come; the first breach stops the pass, so its cost
is bounded by the limits, not by the input. Finished elements are cleared as the pass goes,
so it holds at most the open elements and the cleared shells of their children.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Literal

from lxml import etree

from backbone.edxml.hardening import DEFAULT_LIMITS, PARSER_OPTIONS, XmlLimits
from backbone.edxml.issues import line_of, path_of
from backbone.errors import EdxmlError, Reason

__all__ = ["prescan"]

_CHUNK = 64 * 1024
_EVENTS: tuple[Literal["start", "end", "start-ns", "comment", "pi"], ...] = (
    "start",
    "end",
    "start-ns",
    "comment",
    "pi",
)


def prescan(data: bytes, limits: XmlLimits = DEFAULT_LIMITS) -> None:
    """Check ``data`` against ``limits`` in one pass. Raises :class:`EdxmlError`
    (``edxml_too_complex``, or ``edxml_unsafe`` for depth) at the first breach, and lets
    lxml's :class:`~lxml.etree.XMLSyntaxError` through for XML that is not well-formed."""
    parser = etree.XMLPullParser(events=_EVENTS, **PARSER_OPTIONS)
    counter = _Counter(limits)
    for start in range(0, len(data), _CHUNK):
        parser.feed(data[start : start + _CHUNK])
        counter.take(parser.read_events())
    parser.close()
    counter.take(parser.read_events())


class _Counter:
    def __init__(self, limits: XmlLimits) -> None:
        self.limits = limits
        self.nodes = 0
        self.depth = 0
        self.attributes = 0
        self.namespaces = 0
        self.declared = 0  # namespace declarations of the element whose start comes next

    def take(self, events: Iterable[tuple[str, Any]]) -> None:
        for event, item in events:
            if event == "start-ns":
                self.namespaces += 1
                self.declared += 1
            elif event == "start":
                self._start(item)
            elif event == "end":
                self._end(item)
            else:  # a comment or a processing instruction
                self._count_node(item)

    def _start(self, element: etree._Element) -> None:
        self._count_node(element)
        self.depth += 1
        if self.depth > self.limits.max_depth:
            raise EdxmlError(
                f"XML elements are nested deeper than {self.limits.max_depth} levels",
                reason=Reason.EDXML_UNSAFE,
                line=line_of(element),
            )
        name = etree.QName(element).localname
        declared, self.declared = self.declared, 0
        count = len(element.attrib)
        self.attributes += count
        self._within(
            declared,
            "max_namespaces_per_element",
            element,
            f"{name} declares {declared} namespaces",
        )
        self._within(
            self.namespaces, "max_namespaces", element, f"{self.namespaces} namespaces declared"
        )
        self._within(count, "max_attributes_per_element", element, f"{name} has {count} attributes")
        self._within(self.attributes, "max_attributes", element, f"{self.attributes} attributes")
        for key, value in element.attrib.items():
            what = f"attribute {etree.QName(key).localname} of {name} has {len(value)} characters"
            self._within(len(value), "max_attribute_chars", element, what)

    def _end(self, element: etree._Element) -> None:
        # The element's text and its children's tails are complete now: check them, then
        # drop them (keeping the element's own tail for its parent to check).
        self.depth -= 1
        longest = max(len(text or "") for text in (element.text, *(c.tail for c in element)))
        name = etree.QName(element).localname
        self._within(
            longest, "max_text_chars", element, f"a text in {name} has {longest} characters"
        )
        tail = element.tail
        element.clear()
        element.tail = tail

    def _count_node(self, node: etree._Element) -> None:
        self.nodes += 1
        what = f"more than {self.limits.max_nodes} elements, comments and processing instructions"
        self._within(self.nodes, "max_nodes", node, what)

    def _within(self, value: int, limit_name: str, node: etree._Element, what: str) -> None:
        limit: int = getattr(self.limits, limit_name)
        if value > limit:
            raise EdxmlError(
                f"XML is too complex: {what}; the limit is {limit} ({limit_name})",
                reason=Reason.EDXML_TOO_COMPLEX,
                line=line_of(node),
                path=path_of(node) if isinstance(node.tag, str) else None,
            )
