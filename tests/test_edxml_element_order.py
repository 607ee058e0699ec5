"""Header children in any order: real documents reordered are accepted and read the same;
what is really broken (a required child missing, a once-only child repeated, an unknown
child, a wrong value) is still refused, with the line and path of the element at fault.

The real documents are the third-party samples, read in place, and the hand-made fixtures.
Reordering breaks an XML signature, so these documents are only validated, never verified.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Callable
from copy import deepcopy
from pathlib import Path

import pytest
from _pytest.mark import ParameterSet
from lxml import etree

from backbone.edxml import EdxmlDocument, build, collect_issues, examine, parse_xml, validate
from backbone.edxml.issues import line_of, path_of
from backbone.edxml.models import Kind
from backbone.edxml.names import q, qpath
from backbone.edxml.occurrences import GROUPS
from backbone.edxml.validate import schema_dir
from backbone.errors import Reason

SAMPLES = Path(__file__).parent / "edxml_samples"
XS = "{http://www.w3.org/2001/XMLSchema}"
DS = "{http://www.w3.org/2000/09/xmldsig#}"
HEADER = ("edXMLEnvelope", "edXMLHeader")
MESSAGE_HEADER = (*HEADER, "MessageHeader")

# Valid documents: (where, file name). "shared" is ../shared/interop/edxml, read in place.
VALID = [
    ("shared", "edoc_revocation.edxml"),
    ("shared", "status_inbox__01.edxml"),
    ("shared", "status_rejection_02.edxml"),
    ("shared", "status_acceptance_03.edxml"),
    ("shared", "status_finish_06.edxml"),
    ("samples", "document.edxml"),
    ("samples", "status.edxml"),
]

# The status MessageHeader is an xs:all (no child repeats), so the schema counts its
# children itself; this restates QCVN 102's counts for it (least, most).
STATUS_MESSAGE_HEADER = {
    "From": (1, 1),
    "ResponseFor": (1, 1),
    "StaffInfo": (0, 1),
    "StatusCode": (1, 1),
    "Description": (0, 1),
    "Timestamp": (1, 1),
}

Order = Callable[[list[etree._Element]], list[etree._Element]]


def _shuffled(seed: int) -> Order:
    return lambda children: random.Random(seed).sample(children, len(children))


ORDERS: dict[str, Order] = {
    "reversed": lambda children: children[::-1],
    "rotated": lambda children: children[1:] + children[:1],
    "half-rotated": lambda children: (
        children[len(children) // 2 :] + children[: len(children) // 2]
    ),
    **{f"shuffled-{seed}": _shuffled(seed) for seed in (1, 2, 3)},
}


def load(where: str, name: str, request: pytest.FixtureRequest) -> bytes:
    if where == "samples":
        return (SAMPLES / name).read_bytes()
    folder: Path = request.getfixturevalue("shared_edxml")
    return (folder / name).read_bytes()


def serialize(root: etree._Element) -> bytes:
    return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8"))


def names(element: etree._Element) -> list[str]:
    return [etree.QName(child).localname for child in element if isinstance(child.tag, str)]


def in_signature(element: etree._Element) -> bool:
    return any(etree.QName(a).localname == "Signature" for a in element.iterancestors())


def reorder(data: bytes, order: Order) -> bytes:
    """Every group under edXMLHeader (the signature's inside aside) in ``order``, same-named
    siblings kept in their relative order: recipients and hops are read in document order."""
    root = parse_xml(data)
    header = root.find(qpath(*HEADER))
    assert header is not None
    groups = [element for element in header.iter() if not in_signature(element)]
    for group in groups:
        children = list(group)
        if len(children) < 2 or etree.QName(group).localname == "Signature":
            continue
        same_names = {child.tag: deque[etree._Element]() for child in children}
        for child in children:
            same_names[child.tag].append(child)
        for child in order(children):
            group.append(same_names[child.tag].popleft())  # append moves it to the end
    return serialize(root)


def message_header_order(data: bytes) -> list[str]:
    header = etree.fromstring(data).find(qpath(*MESSAGE_HEADER))
    assert header is not None
    return names(header)


# --- any order is accepted ---------------------------------------------------------------


@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize(("where", "name"), VALID)
def test_a_valid_document_reordered_is_accepted_and_reads_the_same(
    where: str, name: str, order: str, request: pytest.FixtureRequest
) -> None:
    original = load(where, name, request)
    reordered = reorder(original, ORDERS[order])
    assert message_header_order(reordered) != message_header_order(original)
    assert collect_issues(reordered) == []
    assert validate(reordered) == validate(original)


@pytest.mark.parametrize("order", ORDERS)
def test_the_shared_new_document_reordered_keeps_the_same_complaints(
    shared_edxml: Path, order: str
) -> None:
    """edoc_new.edxml is refused at line 1 for the bytes before its XML declaration; without
    them its real faults (a 3-part organ code, another organ's DocumentId, a DueDate before
    the document) are the same, in the same elements, whatever the order."""
    data = (shared_edxml / "edoc_new.edxml").read_bytes()
    assert data.startswith(b"1212<?xml")
    original = data[len(b"1212") :]
    reordered = reorder(original, ORDERS[order])

    def complaints(edxml: bytes) -> set[tuple[str, str | None]]:
        return {(issue.message, issue.path) for issue in collect_issues(edxml)}

    assert len(complaints(original)) == 3
    assert complaints(reordered) == complaints(original)


@pytest.mark.parametrize(("where", "name"), VALID)
def test_the_builder_writes_the_vendor_sample_order_whatever_it_read(
    where: str, name: str, request: pytest.FixtureRequest
) -> None:
    original = load(where, name, request)
    reordered = reorder(original, ORDERS["reversed"])
    built = build(validate(reordered))
    assert built == build(validate(original))
    written = message_header_order(built)
    if isinstance(validate(original), EdxmlDocument):
        canonical = [child.name for child in GROUPS[Kind.DOCUMENT][MESSAGE_HEADER]]
    else:
        canonical = list(STATUS_MESSAGE_HEADER)
    assert written == sorted(written, key=canonical.index)


# --- what is really broken is still refused ----------------------------------------------


def counts(kind: Kind) -> list[tuple[tuple[str, ...], str, int, int | None]]:
    """(group path, child, least, most) for every counted child of a kind's header."""
    found = [
        (path, child.name, child.least, child.most)
        for path, children in GROUPS[kind].items()
        for child in children
    ]
    if kind is Kind.STATUS:
        found += [
            (MESSAGE_HEADER, child, least, most)
            for child, (least, most) in STATUS_MESSAGE_HEADER.items()
        ]
    return found


def child_tags(child: str) -> set[str]:
    return {q("Signature"), f"{DS}Signature"} if child == "Signature" else {q(child)}


def broken_cases(kind: Kind, what: str) -> list[ParameterSet]:
    sources = [source for source in VALID if ("edoc" in source[1]) == (kind is Kind.DOCUMENT)]
    sources = [source for source in sources if source[0] == "shared"] or sources
    return [
        pytest.param(where, name, path, child, id=f"{name}-{path[-1]}-{child}")
        for where, name in [*sources, ("samples", f"{kind.value}.edxml")]
        for path, child, least, most in counts(kind)
        if (what == "required" and least >= 1) or (what == "once" and most == 1)
    ]


def locate(data: bytes, path: tuple[str, ...]) -> etree._Element:
    group = etree.fromstring(data).find(qpath(*path))
    assert group is not None
    return group


@pytest.mark.parametrize(
    ("where", "name", "path", "child"),
    broken_cases(Kind.DOCUMENT, "required") + broken_cases(Kind.STATUS, "required"),
)
def test_a_required_child_missing_is_refused_on_its_group(
    where: str, name: str, path: tuple[str, ...], child: str, request: pytest.FixtureRequest
) -> None:
    root = parse_xml(reorder(load(where, name, request), ORDERS["reversed"]))
    group = root.find(qpath(*path))
    assert group is not None
    removed = [element for element in group if element.tag in child_tags(child)]
    assert removed, f"{name} has no {child} to remove"
    for element in removed:
        group.remove(element)
    data = serialize(root)
    expected = locate(data, path)
    issues = collect_issues(data)
    assert [
        issue
        for issue in issues
        if "Missing child element(s)" in issue.message
        and child in issue.message
        and issue.path == path_of(expected)
        and issue.line is not None
        and issue.line == line_of(expected)
    ], issues
    assert examine(data).reason is Reason.EDXML_INVALID


@pytest.mark.parametrize(
    ("where", "name", "path", "child"),
    broken_cases(Kind.DOCUMENT, "once") + broken_cases(Kind.STATUS, "once"),
)
def test_a_once_only_child_repeated_is_refused_at_the_repeat(
    where: str, name: str, path: tuple[str, ...], child: str, request: pytest.FixtureRequest
) -> None:
    root = parse_xml(reorder(load(where, name, request), ORDERS["reversed"]))
    group = root.find(qpath(*path))
    assert group is not None
    present = [element for element in group if element.tag in child_tags(child)]
    if not present:  # an optional child this document lacks: an empty one will do
        present = [etree.SubElement(group, q(child))]
    copy = deepcopy(present[0])
    copy.tail = group.text
    group.insert(0, copy)  # the copy comes first, so the original is the repeat
    data = serialize(root)
    repeat = [element for element in locate(data, path) if element.tag in child_tags(child)][1]
    issues = collect_issues(data)
    assert [
        issue
        for issue in issues
        if f"Element '{child}': This element is not expected" in issue.message
        and issue.path == path_of(repeat)
        and issue.line is not None
        and issue.line == line_of(repeat)
    ], issues
    assert examine(data).reason is Reason.EDXML_INVALID


def test_a_placeholder_and_an_xmldsig_signature_together_are_refused(
    shared_edxml: Path,
) -> None:
    data = reorder((shared_edxml / "edoc_revocation.edxml").read_bytes(), ORDERS["reversed"])
    header_open = data.index(b"<edXML:edXMLHeader>") + len(b"<edXML:edXMLHeader>")
    data = (
        data[:header_open]
        + b'<ds:Signature xmlns:ds="http://www.w3.org/2000/09/xmldsig#"/>'
        + data[header_open:]
    )
    issues = collect_issues(data)
    placeholder = locate(data, HEADER).find(q("Signature"))
    assert placeholder is not None
    assert line_of(placeholder) is not None
    assert [(issue.path, issue.line) for issue in issues] == [
        (path_of(placeholder), line_of(placeholder))
    ]
    assert "holds at most 1 Signature" in issues[0].message


@pytest.mark.parametrize(("where", "name"), VALID)
def test_an_unknown_child_is_refused_in_any_order(
    where: str, name: str, request: pytest.FixtureRequest
) -> None:
    root = parse_xml(reorder(load(where, name, request), ORDERS["shuffled-1"]))
    header = root.find(qpath(*MESSAGE_HEADER))
    assert header is not None
    header.insert(len(header) // 2, etree.Element(q("Priority")))  # belongs in OtherInfo
    data = serialize(root)
    issues = collect_issues(data)
    assert len(issues) == 1, issues
    assert issues[0].message.startswith("Element 'Priority': This element is not expected.")
    assert issues[0].path == "/edXML/edXMLEnvelope/edXMLHeader/MessageHeader/Priority"


@pytest.mark.parametrize(
    ("where", "name", "element", "value"),
    [
        ("shared", "edoc_revocation.edxml", "PromulgationDate", "30/09/2015"),
        ("shared", "edoc_revocation.edxml", "BussinessDocType", "7"),
        ("shared", "status_finish_06.edxml", "StatusCode", "07"),
        ("shared", "status_finish_06.edxml", "Timestamp", "2015/09/20"),
    ],
)
def test_a_wrong_value_is_refused_in_any_order(
    where: str, name: str, element: str, value: str, request: pytest.FixtureRequest
) -> None:
    root = parse_xml(reorder(load(where, name, request), ORDERS["shuffled-2"]))
    target = root.find(f".//{q(element)}")
    assert target is not None
    target.text = value
    data = serialize(root)
    issues = collect_issues(data)
    assert len(issues) == 1, issues
    assert f"'{value}'" in issues[0].message
    found = etree.fromstring(data).find(f".//{q(element)}")
    assert found is not None
    assert issues[0].line is not None
    assert (issues[0].path, issues[0].line) == (path_of(found), line_of(found))


# --- the schemas and the counts agree ----------------------------------------------------

# The complex type of each counted group, per kind.
GROUP_TYPES: dict[Kind, dict[tuple[str, ...], str]] = {
    Kind.DOCUMENT: {
        HEADER: "DocumentHeader",
        MESSAGE_HEADER: "DocumentMessageHeader",
        (*HEADER, "TraceHeaderList"): "TraceHeaderList",
    },
    Kind.STATUS: {HEADER: "StatusHeader"},
}


def choice_children(kind: Kind) -> dict[str, set[str]]:
    """Each complex type whose content is an unbounded xs:choice, with the child names it
    takes (a group reference stands for the elements in it, by local name)."""
    trees = [etree.parse(str(schema_dir() / f"{kind.value}.xsd"))]
    trees.append(etree.parse(str(schema_dir() / "common.xsd")))
    groups = {group.get("name"): group for tree in trees for group in tree.iter(f"{XS}group")}
    found: dict[str, set[str]] = {}
    for tree in trees:
        for choice in tree.iter(f"{XS}choice"):
            parent = choice.getparent()
            if choice.get("maxOccurs") != "unbounded" or parent is None:
                continue
            taken: set[str] = set()
            for particle in choice:
                if particle.tag == f"{XS}group":
                    reference = groups[(particle.get("ref") or "").split(":")[-1]]
                    particle = reference.find(f"{XS}choice")
                    assert particle is not None
                    taken |= {
                        (e.get("name") or e.get("ref") or "").split(":")[-1] for e in particle
                    }
                elif particle.tag == f"{XS}element":
                    taken.add(particle.get("name") or "")
            found[parent.get("name") or ""] = taken
    return found


@pytest.mark.parametrize("kind", list(Kind))
def test_every_unbounded_choice_in_the_schemas_has_its_counts(kind: Kind) -> None:
    choices = choice_children(kind)
    assert set(choices) == set(GROUP_TYPES[kind].values())
    for path, type_name in GROUP_TYPES[kind].items():
        assert choices[type_name] == {child.name for child in GROUPS[kind][path]}


def test_only_the_frame_and_one_element_lists_keep_an_xs_sequence() -> None:
    """The audit's result: an xs:sequence of several elements fixes an order, and only the
    message frame has one."""
    ordered = set()
    for path in schema_dir().glob("*.xsd"):
        for sequence in etree.parse(str(path)).iter(f"{XS}sequence"):
            if len(sequence.findall(f"{XS}element")) > 1 or sequence.find(f"{XS}group") is not None:
                owner = next(a for a in sequence.iterancestors() if a.get("name"))
                ordered.add(f"{path.name}:{owner.get('name')}")
    assert ordered == {"document.xsd:edXML", "document.xsd:DocumentEnvelope"}
