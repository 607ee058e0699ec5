"""How often each child may occur in the groups whose children come in any order.

QCVN 102 fixes which elements a group holds and how often, not their order (see the note
on child order in schemas/edxml/common.xsd). XSD 1.0's ``xs:all`` checks that for children
that occur at most once; a group with a child that repeats (``To``, ``ResponseFor``,
``TraceHeader``) or comes in two spellings (``Signature``) cannot be an ``xs:all``, so the
schema makes it an unbounded ``xs:choice``, which checks names and types in any order but
not counts. This checks the counts, and reports in libxml2's words, on the element at
fault: the group when a child is missing, each occurrence past the allowed number.
"""

from __future__ import annotations

from dataclasses import dataclass

from lxml import etree

from backbone.edxml.issues import Issue, line_of, path_of
from backbone.edxml.models import Kind
from backbone.edxml.names import q, qpath

__all__ = ["GROUPS", "Occurs", "occurrence_issues"]

_DS_SIGNATURE = "{http://www.w3.org/2000/09/xmldsig#}Signature"


@dataclass(frozen=True, slots=True)
class Occurs:
    """One child of a group: its name, the tags it may be written with, and its bounds
    (``most`` is ``None`` when it may repeat without limit)."""

    name: str
    least: int
    most: int | None
    tags: frozenset[str] = frozenset()

    def matches(self, tag: str) -> bool:
        return tag in self.tags if self.tags else tag == q(self.name)


def _once(name: str) -> Occurs:
    return Occurs(name, 1, 1)


def _optional(name: str) -> Occurs:
    return Occurs(name, 0, 1)


# The edXML placeholder or an XML-DSig signature: one of them, once at most.
_SIGNATURE = Occurs("Signature", 0, 1, frozenset({q("Signature"), _DS_SIGNATURE}))
_HEADER = ("edXMLEnvelope", "edXMLHeader")

# Per kind: the path of each such group from the root, and its children. The schema's
# xs:choice for that group lists the same children (tests/test_edxml_element_order.py).
GROUPS: dict[Kind, dict[tuple[str, ...], tuple[Occurs, ...]]] = {
    Kind.DOCUMENT: {
        _HEADER: (_once("MessageHeader"), _once("TraceHeaderList"), _SIGNATURE),
        (*_HEADER, "MessageHeader"): (
            _once("From"),
            Occurs("To", 1, None),
            _once("DocumentId"),
            _once("Code"),
            _once("PromulgationInfo"),
            _once("DocumentType"),
            _once("Subject"),
            _optional("Content"),
            _optional("SignerInfo"),
            _optional("DueDate"),
            _optional("OtherInfo"),
            Occurs("ResponseFor", 0, None),
            _optional("SteeringType"),
            _optional("ToPlaces"),
        ),
        (*_HEADER, "TraceHeaderList"): (Occurs("TraceHeader", 0, None), _once("Bussiness")),
    },
    Kind.STATUS: {
        _HEADER: (_once("MessageHeader"), _SIGNATURE),
    },
}


# GROUPS as walked per document: each group's ElementPath, and each child with the tags it
# may be written with (worked out once, not per document).
_PLANS: dict[Kind, tuple[tuple[str, tuple[tuple[Occurs, tuple[str, ...]], ...]], ...]] = {
    kind: tuple(
        (qpath(*path), tuple((child, tuple(child.tags or {q(child.name)})) for child in children))
        for path, children in groups.items()
    )
    for kind, groups in GROUPS.items()
}


def occurrence_issues(root: etree._Element, kind: Kind) -> list[Issue]:
    """Every child of an any-order group that is missing or occurs too often."""
    issues: list[Issue] = []
    for path, children in _PLANS[kind]:
        for group in root.findall(path):
            issues.extend(_group_issues(group, children))
    return issues


def _group_issues(
    group: etree._Element, children: tuple[tuple[Occurs, tuple[str, ...]], ...]
) -> list[Issue]:
    counts: dict[object, int] = {}  # per tag, in one pass (a comment's tag is a function)
    for element in group:
        counts[element.tag] = counts.get(element.tag, 0) + 1
    issues: list[Issue] = []
    missing: list[str] = []
    for child, tags in children:
        count = sum(counts.get(tag, 0) for tag in tags) if len(tags) > 1 else counts.get(tags[0], 0)
        if count < child.least:
            missing.append(child.name)
        if child.most is not None and count > child.most:
            found = [element for element in group if element.tag in tags]  # document order
            issues.extend(
                Issue(
                    f"Element '{child.name}': This element is not expected: "
                    f"{etree.QName(group).localname} holds at most {child.most} {child.name}.",
                    line_of(extra),
                    path_of(extra),
                )
                for extra in found[child.most :]
            )
    if missing:
        issues.insert(
            0,
            Issue(
                f"Element '{etree.QName(group).localname}': Missing child element(s). "
                f"Expected is ( {', '.join(missing)} ).",
                line_of(group),
                path_of(group),
                secondary=True,
            ),
        )
    return issues
