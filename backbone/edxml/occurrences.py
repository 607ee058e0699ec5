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


def occurrence_issues(root: etree._Element, kind: Kind) -> list[Issue]:
    """Every child of an any-order group that is missing or occurs too often."""
    issues: list[Issue] = []
    for path, children in GROUPS[kind].items():
        for group in root.findall(qpath(*path)):
            issues.extend(_group_issues(group, children))
    return issues


def _group_issues(group: etree._Element, children: tuple[Occurs, ...]) -> list[Issue]:
    issues: list[Issue] = []
    group_name = etree.QName(group).localname
    elements = [child for child in group if isinstance(child.tag, str)]  # not comments
    by_tag: dict[str, list[etree._Element]] = {}  # one pass, not one per expected child
    for element in elements:
        by_tag.setdefault(element.tag, []).append(element)
    missing: list[str] = []
    for child in children:
        found = (
            [element for element in elements if element.tag in child.tags]  # document order
            if child.tags
            else by_tag.get(q(child.name), [])
        )
        if len(found) < child.least:
            missing.append(child.name)
        if child.most is not None:
            issues.extend(
                Issue(
                    f"Element '{child.name}': This element is not expected: {group_name} "
                    f"holds at most {child.most} {child.name}.",
                    line_of(extra),
                    path_of(extra),
                )
                for extra in found[child.most :]
            )
    if missing:
        issues.insert(
            0,
            Issue(
                f"Element '{group_name}': Missing child element(s). "
                f"Expected is ( {', '.join(missing)} ).",
                line_of(group),
                path_of(group),
                secondary=True,
            ),
        )
    return issues
