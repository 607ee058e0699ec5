"""The edXML pre-scan: one streaming pass that refuses XML beyond :class:`XmlLimits` before
anything builds, validates, canonicalises or verifies it, at every entry point."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from lxml import etree

from backbone.edxml import XmlLimits, collect_issues, parse_xml, validate
from backbone.edxml.parser import hardened_parser
from backbone.edxml.prescan import KEPT_TREE_BYTES, prescan
from backbone.errors import EdxmlError, Reason
from backbone.organ import OrganCode
from backbone.xmldsig import sign_edxml, verify_edxml
from tests.support import DevPki, document_edxml, make_pki

pytestmark = pytest.mark.clock  # document ids carry the Vietnam date, from backbone.clock

HERE = Path(__file__).resolve().parent
SHARED_EDXML = HERE.parents[1] / "shared" / "interop" / "edxml"
G22, H41 = "000.00.00.G22", "000.00.00.H41"
DEFAULTS = XmlLimits()


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> DevPki:
    return make_pki(tmp_path_factory.mktemp("prescan-pki"))


def refusal(data: bytes, limits: XmlLimits = DEFAULTS) -> EdxmlError:
    with pytest.raises(EdxmlError) as caught:
        parse_xml(data, limits)
    return caught.value


# -- real edXML passes, with room to spare ---------------------------------------------------


def real_edxml(pki: DevPki) -> dict[str, bytes]:
    files = [*SHARED_EDXML.glob("*.edxml"), *(HERE / "edxml_samples").glob("*.edxml")]
    samples = {path.name: path.read_bytes() for path in files}
    # The vendor sample with bytes before its declaration is refused for that, not its size.
    samples = {name: data[data.find(b"<?xml") :] for name, data in samples.items()}
    issued = pki.agency(G22)
    signed = sign_edxml(document_edxml(G22, [H41] * 3, 1), issued.key, issued.certificate)
    return {**samples, "signed document": signed}


def test_real_edxml_passes_limits_a_quarter_of_the_defaults(pki: DevPki) -> None:
    if not SHARED_EDXML.is_dir():
        pytest.skip(f"{SHARED_EDXML} is absent (it is always there in CI)")
    quarter = XmlLimits(**{f.name: getattr(DEFAULTS, f.name) // 4 for f in fields(XmlLimits)})
    samples = real_edxml(pki)
    assert len(samples) >= 9
    for name, data in samples.items():
        prescan(data, quarter)  # raises on a breach
        assert parse_xml(data, quarter) is not None, name


def test_the_tree_a_small_document_is_parsed_into_is_the_hardened_parsers_own(
    pki: DevPki,
) -> None:
    """parse_xml takes the pre-scan's tree instead of parsing again (issue 21): it must be
    the tree libxml2's one-shot parse with the same settings makes, comments, processing
    instructions, line numbers and all."""
    samples = real_edxml(pki)
    samples["comments and PIs"] = (
        b'<?xml version="1.0"?>\n<!-- before --><?pi before?>\n<r xmlns:p="urn:p">\n'
        b'  <p:a b="1">text<!-- inside --><?pi inside?>tail</p:a>\n</r>\n<!-- after -->'
    )
    for name, data in samples.items():
        kept = prescan(data, keep_tree=True)
        assert kept is not None, name
        parsed = etree.fromstring(data, hardened_parser())
        assert etree.tostring(kept.getroottree()) == etree.tostring(parsed.getroottree()), name
        assert [e.sourceline for e in kept.iter()] == [e.sourceline for e in parsed.iter()]
        assert etree.tostring(parse_xml(data).getroottree()) == etree.tostring(parsed.getroottree())


def test_a_document_over_the_kept_size_is_counted_without_its_tree_and_parsed_after() -> None:
    text = "x" * (KEPT_TREE_BYTES + 1)
    data = f"<r><a>{text}</a></r>".encode()
    assert prescan(data, keep_tree=True) is None
    assert parse_xml(data)[0].text == text


# -- each limit, refused with its reason and a message naming it -----------------------------


def attributes(count: int, start: int = 0) -> str:
    return " ".join(f'a{i}="x"' for i in range(start, start + count))


def namespaces(count: int, start: int = 0) -> str:
    return " ".join(f'xmlns:n{i}="urn:n{i}"' for i in range(start, start + count))


BREACHES = [
    ("max_nodes", XmlLimits(max_nodes=10), "<r>" + "<a/>" * 10 + "</r>", "more than 10 elements"),
    ("max_nodes", XmlLimits(max_nodes=10), "<r>" + "<!---->" * 10 + "</r>", "comments"),
    ("max_nodes", XmlLimits(max_nodes=10), "<r>" + "<?p?>" * 10 + "</r>", "processing"),
    ("max_attributes_per_element", XmlLimits(max_attributes_per_element=3),
     f"<r><s {attributes(4)}/></r>", "s has 4 attributes"),
    ("max_attributes", XmlLimits(max_attributes=5),
     f"<r {attributes(3)}><s {attributes(3)}/></r>", "6 attributes in all"),
    ("max_namespaces_per_element", XmlLimits(max_namespaces_per_element=2),
     f"<r {namespaces(3)}/>", "r declares 3 namespaces"),
    ("max_namespaces", XmlLimits(max_namespaces=4),
     f"<r {namespaces(2)}><s {namespaces(2, 2)}><t {namespaces(1, 4)}/></s></r>",
     "5 namespaces declared"),
    ("max_attribute_chars", XmlLimits(max_attribute_chars=8),
     '<r><s a="123456789"/></r>', "an attribute of s has 9 characters"),
    ("max_text_chars", XmlLimits(max_text_chars=8),
     "<r><s>123456789</s></r>", "a text in s has 9"),
    ("max_text_chars", XmlLimits(max_text_chars=8),
     "<r><s/>123456789</r>", "a text in r has 9"),  # a tail is text too
]  # fmt: skip


@pytest.mark.parametrize(("limit", "limits", "xml", "what"), BREACHES)
def test_a_breach_is_too_complex_naming_the_limit_and_the_value(
    limit: str, limits: XmlLimits, xml: str, what: str
) -> None:
    error = refusal(xml.encode(), limits)
    assert error.reason is Reason.EDXML_TOO_COMPLEX
    assert what in error.message
    assert f"the limit is {getattr(limits, limit)} ({limit})" in error.message
    assert error.line == 1


def test_at_each_limit_exactly_the_xml_is_accepted() -> None:
    for limit, limits, xml, _ in BREACHES:
        at_limit = XmlLimits(**{limit: getattr(limits, limit) + 1})
        assert parse_xml(xml.encode(), at_limit) is not None, limit


def test_the_breach_reports_its_line_and_path() -> None:
    error = refusal(f"<r>\n<s>\n<t {attributes(40)}/></s></r>".encode())
    assert error.line == 3
    assert error.path == "/r/s/t"


def test_nesting_deeper_than_the_limit_stays_unsafe() -> None:
    error = refusal(b"<a>" * 65 + b"</a>" * 65)
    assert error.reason is Reason.EDXML_UNSAFE
    assert "64 levels" in error.message


def test_the_pass_stops_at_the_breach_without_reading_the_rest() -> None:
    # Not well-formed after a million elements: the pre-scan never gets there.
    data = b"<r>" + b"<a/>" * 1_000_000 + b"<unclosed>"
    assert refusal(data).reason is Reason.EDXML_TOO_COMPLEX


def test_a_large_attachment_text_is_bounded_by_the_document_size_only() -> None:
    text = b"QUFB" * 4_000_000  # 16 MB of base64, as a scanned attachment
    assert parse_xml(b"<r><Attachment>" + text + b"</Attachment></r>").tag == "r"


# -- every entry point uses it ---------------------------------------------------------------


@pytest.fixture(scope="module")
def too_complex(pki: DevPki) -> bytes:
    """A signed genuine document with 1,000 attributes added to its body afterwards."""
    issued = pki.agency(G22)
    signed = sign_edxml(document_edxml(G22, [H41], 2), issued.key, issued.certificate)
    body = b"<edXML:edXMLBody>"
    return signed.replace(body, f"<edXML:edXMLBody {attributes(1000)}>".encode())


def test_validation_refuses_it(too_complex: bytes) -> None:
    with pytest.raises(EdxmlError) as caught:
        validate(too_complex)
    assert caught.value.reason is Reason.EDXML_TOO_COMPLEX


def test_edxml_check_reports_it(too_complex: bytes) -> None:
    [issue] = collect_issues(too_complex)
    assert "max_attributes_per_element" in issue.message


def test_signing_refuses_it(pki: DevPki, too_complex: bytes) -> None:
    issued = pki.agency(G22)
    with pytest.raises(EdxmlError) as caught:
        sign_edxml(too_complex, issued.key, issued.certificate)
    assert caught.value.reason is Reason.EDXML_TOO_COMPLEX


def test_verifying_refuses_it_before_any_signature_work(pki: DevPki, too_complex: bytes) -> None:
    with pytest.raises(EdxmlError) as caught:
        verify_edxml(too_complex, pki.validator(), OrganCode.parse(G22))
    assert caught.value.reason is Reason.EDXML_TOO_COMPLEX


# -- property: random nested XML passes exactly when it is within the limits -----------------


@dataclass
class Node:
    """An element (or, with ``comment``, a comment) of a generated document."""

    tag: str
    attributes: dict[str, str] = field(default_factory=dict)
    namespaces: int = 0
    text: str = ""
    children: list[Node] = field(default_factory=list)
    tail: str = ""
    comment: bool = False

    def xml(self) -> str:
        if self.comment:
            return f"<!--{self.text}-->{self.tail}"
        declared = "".join(f' xmlns:p{i}="urn:{self.tag}{i}"' for i in range(self.namespaces))
        attrs = "".join(f' {key}="{value}"' for key, value in self.attributes.items())
        inner = self.text + "".join(child.xml() for child in self.children)
        return f"<{self.tag}{declared}{attrs}>{inner}</{self.tag}>{self.tail}"

    def walk(self, depth: int = 1) -> list[tuple[Node, int]]:
        return [(self, depth), *(n for child in self.children for n in child.walk(depth + 1))]


texts = st.text(alphabet="ab \u1ea1", max_size=12)
leaves = st.builds(
    Node,
    tag=st.just("c"),
    text=st.text(alphabet="x-", max_size=5).filter(
        lambda text: "--" not in text and not text.endswith("-")
    ),
    tail=texts,
    comment=st.just(True),
)
elements = st.recursive(
    st.builds(Node, tag=st.sampled_from(["a", "b"]), text=texts, tail=texts),
    lambda children: st.builds(
        Node,
        tag=st.sampled_from(["a", "b", "edXML"]),
        attributes=st.dictionaries(st.sampled_from([f"k{i}" for i in range(8)]),
                                   st.text(alphabet="v", max_size=10), max_size=8),
        namespaces=st.integers(0, 4),
        text=texts,
        children=st.lists(st.one_of(children, leaves), max_size=6),
        tail=texts,
    ),
    max_leaves=60,
)  # fmt: skip


def measure(root: Node) -> dict[str, int]:
    """What each limit of :class:`XmlLimits` counts, counted on the model."""
    nodes = root.walk()
    elements = [(node, depth) for node, depth in nodes if not node.comment]
    texts = [n.text for n, _ in elements] + [n.tail for n, _ in nodes if n is not root]
    values = [value for n, _ in elements for value in n.attributes.values()]
    return {
        "max_depth": max(depth for _, depth in elements),
        "max_nodes": len(nodes),
        "max_attributes": sum(len(n.attributes) for n, _ in elements),
        "max_attributes_per_element": max(len(n.attributes) for n, _ in elements),
        "max_namespaces": sum(n.namespaces for n, _ in elements),
        "max_namespaces_per_element": max(n.namespaces for n, _ in elements),
        "max_attribute_chars": max(map(len, values), default=0),
        "max_text_chars": max(map(len, texts)),
    }


@st.composite
def documents_and_limits(draw: st.DrawFn) -> tuple[Node, XmlLimits]:
    """A random document, and limits around what it needs: each one just under, at or
    just over its count, so that single breaches and exact fits are common."""
    root = draw(elements)
    root.tail = ""  # nothing but whitespace may follow the root element
    needs = measure(root)
    offsets = st.sampled_from([-1, 0, 0, 1, 5])
    limits = {name: max(0, count + draw(offsets)) for name, count in needs.items()}
    limits["max_depth"] = max(1, limits["max_depth"])
    return root, XmlLimits(**limits)


def outcome(data: bytes, limits: XmlLimits) -> Reason | None:
    """Why ``parse_xml`` refuses ``data``; None when it accepts it. Any other exception
    than :class:`EdxmlError` escapes and fails the test."""
    try:
        parse_xml(data, limits)
    except EdxmlError as error:
        return error.reason
    return None


@settings(max_examples=500, deadline=None)
@given(documents_and_limits())
def test_random_nested_xml_passes_exactly_when_within_the_limits(
    case: tuple[Node, XmlLimits],
) -> None:
    root, limits = case
    needs = measure(root)
    shallow_enough = needs["max_depth"] <= limits.max_depth
    small_enough = all(count <= getattr(limits, name) for name, count in needs.items())
    expected = {
        (True, True): {None},
        (True, False): {Reason.EDXML_TOO_COMPLEX},
        (False, True): {Reason.EDXML_UNSAFE},
        (False, False): {Reason.EDXML_TOO_COMPLEX, Reason.EDXML_UNSAFE},
    }[shallow_enough, small_enough]
    assert outcome(root.xml().encode(), limits) in expected


@settings(max_examples=300, deadline=None)
@given(documents_and_limits(), st.binary(max_size=8), st.integers(min_value=0))
def test_random_bytes_in_random_xml_raise_only_documented_reasons(
    case: tuple[Node, XmlLimits], junk: bytes, where: int
) -> None:
    root, limits = case
    data = root.xml().encode()
    position = where % (len(data) + 1)
    assert outcome(data[:position] + junk + data[position:], limits) in {
        None,
        Reason.EDXML_NOT_WELL_FORMED,
        Reason.EDXML_TOO_COMPLEX,
        Reason.EDXML_UNSAFE,
        Reason.EDXML_TOO_LARGE,
    }
