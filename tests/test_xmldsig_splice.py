"""The large sender's signed file written from the original's bytes with the signature
spliced in (backbone/xmldsig/splice.py): it verifies, it is canonically the file the
serialised tree gives, and where the bytes are no form to splice into, the tree is
serialised as before."""

from __future__ import annotations

import io
import random
import re
from pathlib import Path

import pytest
from lxml import etree

from backbone.edxml import parse_xml
from backbone.edxml.models import Attachment
from backbone.errors import EdxmlError, XmlSignatureError
from backbone.organ import OrganCode
from backbone.xmldsig import DS_NS, EDXML_NS, verify_edxml
from backbone.xmldsig.document import Framing, sign_edxml_into
from backbone.xmldsig.splice import find_splice
from testkit import document_edxml
from tests.support import DevPki, make_pki

G22, H41 = "000.00.00.G22", "000.00.00.H41"
SAMPLES = Path(__file__).parent / "edxml_samples"

HEADER = """<edXML:MessageHeader>
        <edXML:From><edXML:OrganId>000.00.00.G22</edXML:OrganId></edXML:From>
        <edXML:To><edXML:OrganId>000.00.00.H41</edXML:OrganId></edXML:To>
        <edXML:DocumentId>000.00.00.G22,2024/05/02,12/VPCP-TTĐT</edXML:DocumentId>
        <edXML:Subject>V/v kết nối &amp; liên thông</edXML:Subject>
      </edXML:MessageHeader>"""


def _edxml(
    declaration: str = '<?xml version="1.0" encoding="UTF-8"?>\n', placeholder: str = ""
) -> str:
    return f"""{declaration}<edXML xmlns="{EDXML_NS}" xmlns:x="urn:other">
  <edXML:edXMLEnvelope xmlns:edXML="{EDXML_NS}">
    <edXML:edXMLHeader>
      {HEADER}{placeholder}
    </edXML:edXMLHeader>
    <edXML:edXMLBody><![CDATA[a </edXML:edXMLHeader> in CDATA]]><x:y  a = 'q>"' /></edXML:edXMLBody>
  </edXML:edXMLEnvelope>
  <AttachmentEncoded><Attachment>cid:1 &#13; &#x1F600;</Attachment></AttachmentEncoded>
</edXML>
"""


PLACEHOLDER = "<Signature><SignatureValue>old</SignatureValue></Signature>"
EMPTY_PLACEHOLDER = f'<ds:Signature xmlns:ds="{DS_NS}" Id="a>b"/>'


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> DevPki:
    return make_pki(tmp_path_factory.mktemp("pki"))


def _signed(
    pki: DevPki,
    edxml: bytes,
    tmp_path: Path,
    *,
    splice: bool,
    signer: str = G22,
    read_again: bytes | None = None,
) -> tuple[bytes, bool]:
    """``edxml`` signed into a file as the large sender signs it (spliced or not), its
    original's bytes read again from ``read_again`` (by default: ``edxml``); the file, and
    whether it was spliced."""
    issued = pki.agency(signer)
    target = tmp_path / ("spliced.xml" if splice else "serialised.xml")
    spliced = sign_edxml_into(
        target,
        Framing.of(edxml, splice=splice),
        parse_xml(edxml),
        issued.key,
        issued.certificate,
        io.BytesIO(edxml if read_again is None else read_again),
    )
    return target.read_bytes(), spliced


def _canonical(edxml: bytes) -> bytes:
    return bytes(etree.tostring(parse_xml(edxml).getroottree(), method="c14n"))


def _verify(pki: DevPki, edxml: bytes, signer: str = G22) -> bytes | None:
    return verify_edxml(edxml, pki.validator(), OrganCode.parse(signer)).signed_data


def _spliced_matches_serialised(
    pki: DevPki, edxml: bytes, tmp_path: Path, signer: str = G22
) -> bytes:
    spliced, was_spliced = _signed(pki, edxml, tmp_path, splice=True, signer=signer)
    serialised, was_not = _signed(pki, edxml, tmp_path, splice=False, signer=signer)
    assert (was_spliced, was_not) == (True, False)
    assert spliced != serialised  # the original's bytes, not libxml2's writing of the tree
    assert _canonical(spliced) == _canonical(serialised)
    assert _verify(pki, spliced, signer) == _verify(pki, serialised, signer)
    return spliced


ADJACENT = "<Signature/></edXML:edXMLHeader>"  # the placeholder's end is the header's
NESTED = "<Signature><x:y/></Signature>"  # its last child ends with "/>" as the empty one


@pytest.mark.parametrize(
    ("edxml", "placeholder"),
    [
        (_edxml(), ""),
        (_edxml(placeholder=f"\n      {PLACEHOLDER}\n"), PLACEHOLDER),
        (_edxml(placeholder=f"\n      {EMPTY_PLACEHOLDER}"), EMPTY_PLACEHOLDER),
        (_edxml().replace("\n    </edXML:edXMLHeader>", ADJACENT), "<Signature/>"),
        (_edxml(placeholder=NESTED), NESTED),
        (_edxml(declaration=""), ""),
        (
            _edxml(
                declaration="<?xml version='1.0' encoding='utf-8' standalone='yes'?>\r\n<?pi x?>\n"
            ),
            "",
        ),
        (_edxml().replace("\n", "\r\n"), ""),
    ],
    ids=[
        "declared",
        "placeholder",
        "empty-placeholder",
        "placeholder-before-header-end",
        "placeholder-ending-in-an-empty-child",
        "no-declaration",
        "pi-crlf-prolog",
        "crlf",
    ],
)
def test_the_spliced_signed_file_verifies_and_is_canonically_the_serialised_one(
    pki: DevPki, tmp_path: Path, edxml: str, placeholder: str
) -> None:
    spliced = _spliced_matches_serialised(pki, edxml.encode(), tmp_path)
    # Everything around the signature is the original's bytes, as written.
    start = spliced.index(f'<ds:Signature xmlns:ds="{DS_NS}">'.encode())
    end = spliced.index(b"</ds:Signature>") + len(b"</ds:Signature>")
    assert spliced[:start] + placeholder.encode() + spliced[end:] == edxml.encode()


def test_a_crlf_original_keeps_crlf_line_ends_in_the_spliced_signature(
    pki: DevPki, tmp_path: Path
) -> None:
    spliced = _spliced_matches_serialised(pki, _edxml().replace("\n", "\r\n").encode(), tmp_path)
    assert spliced.count(b"\n") == spliced.count(b"\r\n")


@pytest.mark.parametrize(
    ("ending", "crlf"),
    [
        ("\n", False),
        ("\r\n", True),
        ("\r", False),  # a CR alone is no CRLF line end
        (" \t\n" * 3000, False),  # more space after the root than the first window holds
        ("\r\n" * 70000, True),
    ],
)
def test_the_framing_keeps_the_space_after_the_root_as_written_and_knows_crlf_files(
    ending: str, crlf: bool
) -> None:
    edxml = _edxml().rstrip("\n").replace("\n", "\r\n" if crlf else "\n") + ending
    framing = Framing.of(edxml.encode())
    assert (framing.epilog, framing.crlf) == (ending.encode(), crlf)


@pytest.mark.parametrize(
    ("name", "signer"),
    [
        ("edoc_revocation.edxml", G22),
        ("status_inbox__01.edxml", H41),
        ("status_finish_06.edxml", H41),
    ],
)
def test_a_vendors_file_spliced_verifies_and_is_canonically_the_serialised_one(
    pki: DevPki, shared_edxml: Path, tmp_path: Path, name: str, signer: str
) -> None:
    _spliced_matches_serialised(pki, (shared_edxml / name).read_bytes(), tmp_path, signer)


def test_a_vendors_file_with_junk_before_its_declaration_is_refused_as_before(
    shared_edxml: Path,
) -> None:
    edxml = (shared_edxml / "edoc_new.edxml").read_bytes()
    assert find_splice(edxml) is None
    with pytest.raises(EdxmlError):
        parse_xml(edxml)


@pytest.mark.parametrize(
    "edxml",
    [
        _edxml(declaration='<?xml version="1.0" encoding="ISO-8859-1"?>\n')
        .replace("&amp;", "caf\xe9")
        .encode("latin-1", "xmlcharrefreplace"),
        _edxml(declaration='<?xml version="1.0" encoding="UTF-16"?>\n').encode("utf-16"),
        b"\xef\xbb\xbf" + _edxml().encode(),
        _edxml(placeholder=PLACEHOLDER + PLACEHOLDER).encode(),
        _edxml(placeholder="<!-- a comment -->").encode(),
        _edxml().replace("</edXML>", "</edXML><!-- after -->").encode(),
    ],
    ids=[
        "latin-1",
        "utf-16",
        "utf-8-bom",
        "two-placeholders",
        "comment-in-header",
        "comment-after",
    ],
)
def test_bytes_that_are_no_form_to_splice_into_fall_back_to_the_serialised_tree(
    pki: DevPki, tmp_path: Path, edxml: bytes
) -> None:
    signed, spliced = _signed(pki, edxml, tmp_path, splice=True)
    serialised, _ = _signed(pki, edxml, tmp_path, splice=False)
    assert spliced is False
    assert signed == serialised
    _verify(pki, signed)


def test_an_original_changed_after_it_was_parsed_falls_back_to_the_serialised_tree(
    pki: DevPki, tmp_path: Path
) -> None:
    edxml = _edxml().encode()
    changed = edxml.replace(b"in CDATA", b"in cdata")
    signed, spliced = _signed(pki, edxml, tmp_path, splice=True, read_again=changed)
    assert spliced is False
    assert b"in CDATA" in signed
    _verify(pki, signed)


def test_a_spliced_file_with_its_content_or_signature_tampered_with_is_refused(
    pki: DevPki, tmp_path: Path
) -> None:
    spliced, was_spliced = _signed(pki, _edxml().encode(), tmp_path, splice=True)
    assert was_spliced
    for tampered in (
        spliced.replace(b"&#13;", b"&#10;"),  # the attachment's text
        spliced.replace(b"Subject>V/v", b"Subject>V/V"),  # the header
        spliced.replace(b"in CDATA", b"in CDATB"),
    ):
        with pytest.raises(XmlSignatureError):
            _verify(pki, tampered)
    # The signature moved out of the header, into the body.
    start = spliced.index(b"<ds:Signature")
    end = spliced.index(b"</ds:Signature>") + len(b"</ds:Signature>")
    moved = spliced[:start] + spliced[end:]
    at = moved.index(b"</edXML:edXMLBody>")
    with pytest.raises(XmlSignatureError):
        _verify(pki, moved[:at] + spliced[start:end] + moved[at:])


def test_a_large_document_spliced_verifies(pki: DevPki, tmp_path: Path) -> None:
    attachment = Attachment(
        content_id="cid:1", content=bytes(range(256)) * 8192, attachment_name="a.pdf"
    )
    edxml = document_edxml(G22, [H41], 21, content="Nội dung", attachments=[attachment])
    _spliced_matches_serialised(pki, edxml, tmp_path)


# What the differential test below inserts after a random '>' of a file's first 20,000 bytes.
INSERTS = (
    b"<?pi x?>",
    b"<Signature/>",
    f'<Signature xmlns="{EDXML_NS}"><a/></Signature>'.encode(),
    EMPTY_PLACEHOLDER.encode(),
    b"<![CDATA[</edXML:edXMLHeader>]]>",
    b"&#13;",
    b" \r\n ",
    b"<!-- c -->",
    f'<edXML:Signature xmlns:edXML="{EDXML_NS}" a="/>"></edXML:Signature>'.encode(),
)


def test_mutated_vendors_files_spliced_or_not_are_the_same_signed_document(
    pki: DevPki, shared_edxml: Path, tmp_path: Path
) -> None:
    # Seeded: the same 150 variants every run. Each either is refused (not edXML, placed
    # where it may not be), spliced or serialised; spliced, it is canonically the serialised.
    seeds = [path.read_bytes() for path in sorted(shared_edxml.iterdir())]
    seeds += [path.read_bytes() for path in sorted(SAMPLES.iterdir())]
    rng = random.Random(18)
    spliced_count = 0
    for _ in range(150):
        edxml = rng.choice(seeds)
        for _ in range(rng.randint(1, 3)):
            at = rng.choice([found.end() for found in re.finditer(rb">", edxml[:20_000])])
            if rng.random() < 0.8:
                edxml = edxml[:at] + rng.choice(INSERTS) + edxml[at:]
            else:
                edxml = edxml.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
        try:
            spliced, was_spliced = _signed(pki, edxml, tmp_path, splice=True)
        except (EdxmlError, XmlSignatureError):
            continue
        serialised, _ = _signed(pki, edxml, tmp_path, splice=False)
        assert _canonical(spliced) == _canonical(serialised)
        spliced_count += was_spliced
    assert spliced_count >= 30
