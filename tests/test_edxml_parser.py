"""The hardened XML parser refuses what edXML never legitimately contains, saying why."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import pytest

from backbone.edxml.hardening import LIBXML2_MAX_TEXT_CHARS
from backbone.edxml.parser import DEFAULT_MAX_DEPTH, XmlLimits, parse_xml
from backbone.errors import EdxmlError, Reason

pytestmark = pytest.mark.clock  # scripts/clock-check runs it at fixed instants

NS = "http://www.mic.gov.vn/TBT/QCVN_102_2016"


def refusal(data: bytes, **limits: int) -> EdxmlError:
    with pytest.raises(EdxmlError) as caught:
        parse_xml(data, XmlLimits(**limits))
    return caught.value


def nested(depth: int) -> bytes:
    return b"<a>" * depth + b"</a>" * depth


def test_returns_the_root_element_of_well_formed_xml() -> None:
    root = parse_xml(f'<?xml version="1.0"?><edXML xmlns="{NS}"><x/></edXML>'.encode())
    assert root.tag == f"{{{NS}}}edXML"
    assert len(root) == 1


def test_bytes_before_the_xml_declaration_are_not_well_formed_at_line_1() -> None:
    error = refusal(b'1212<?xml version="1.0" encoding="UTF-8"?>\n<edXML/>')
    assert error.reason is Reason.EDXML_NOT_WELL_FORMED
    assert error.line == 1
    assert "4 byte(s) b'1212' before the XML declaration" in error.message


def test_syntax_error_reports_the_line_lxml_found_it_on() -> None:
    error = refusal(b"<a>\n<b>\n</a>")
    assert error.reason is Reason.EDXML_NOT_WELL_FORMED
    assert error.line == 3


def test_bytes_that_are_not_utf8_are_not_well_formed() -> None:
    error = refusal(b'<?xml version="1.0" encoding="UTF-8"?>\n<a>\n<b>T\xe2y Ninh</b></a>')
    assert error.reason is Reason.EDXML_NOT_WELL_FORMED
    assert error.line == 3
    assert "encoding" in error.message


def test_an_undeclared_entity_is_not_well_formed() -> None:
    assert refusal(b"<a>&secret;</a>").reason is Reason.EDXML_NOT_WELL_FORMED


def test_any_doctype_is_refused_as_unsafe_with_its_line() -> None:
    error = refusal(b'<?xml version="1.0"?>\n<!-- hi -->\n<!DOCTYPE a>\n<a/>')
    assert error.reason is Reason.EDXML_UNSAFE
    assert "DOCTYPE" in error.message
    assert error.line == 3


def test_external_entity_is_refused_and_never_read(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET")
    data = (
        f'<?xml version="1.0"?><!DOCTYPE a [<!ENTITY x SYSTEM "file://{secret}">]><a>&x;</a>'
    ).encode()
    error = refusal(data)
    assert error.reason is Reason.EDXML_UNSAFE
    assert "TOP-SECRET" not in str(error)


def test_billion_laughs_is_refused_without_expanding_anything() -> None:
    entities = "".join(
        f'<!ENTITY l{i} "{f"&l{i - 1};" * 10}">' if i else '<!ENTITY l0 "lol">' for i in range(10)
    )
    data = f"<!DOCTYPE lolz [{entities}]><lolz>&l9;</lolz>".encode()
    started = time.perf_counter()
    error = refusal(data)
    assert error.reason is Reason.EDXML_UNSAFE
    assert time.perf_counter() - started < 1.0


def test_doctype_hidden_behind_a_utf16_encoding_is_still_refused() -> None:
    data = '<?xml version="1.0" encoding="UTF-16"?><!DOCTYPE a [<!ENTITY x "y">]><a>&x;</a>'
    assert refusal(data.encode("utf-16")).reason is Reason.EDXML_UNSAFE


def test_nesting_up_to_the_depth_limit_is_accepted() -> None:
    assert parse_xml(nested(DEFAULT_MAX_DEPTH)).tag == "a"


def test_nesting_beyond_the_depth_limit_is_unsafe() -> None:
    error = refusal(nested(DEFAULT_MAX_DEPTH + 1))
    assert error.reason is Reason.EDXML_UNSAFE
    assert str(DEFAULT_MAX_DEPTH) in error.message


def test_depth_limit_is_configurable_and_reports_the_offending_line() -> None:
    data = b"<a>\n<b>\n<c>\n<d/></c></b></a>"
    assert parse_xml(data, XmlLimits(max_depth=4)).tag == "a"
    error = refusal(data, max_depth=3)
    assert error.reason is Reason.EDXML_UNSAFE
    assert error.line == 4


def test_nesting_beyond_libxml2s_own_limit_is_unsafe_too() -> None:
    assert refusal(nested(3000), max_depth=10_000).reason is Reason.EDXML_UNSAFE


def test_input_over_the_size_limit_is_too_large_before_parsing() -> None:
    data = b"<a>" + b"x" * 100 + b"</a>"
    assert parse_xml(data, XmlLimits(max_bytes=len(data))).tag == "a"
    error = refusal(data, max_bytes=len(data) - 1)
    assert error.reason is Reason.EDXML_TOO_LARGE
    assert str(len(data)) in error.message


def test_a_large_attachment_text_node_within_the_size_limit_is_accepted() -> None:
    # A scanned PDF of ~9 MiB is ~12 MB of base64: beyond libxml2's default per-node cap.
    text = b"A" * 12_000_000
    assert parse_xml(b"<a>" + text + b"</a>").text == text.decode()


# -- a chunked document's limits (issue 18) ---------------------------------------------------

GIB = 1 << 30


def test_limits_admitting_a_larger_document_raise_only_the_size_bounds() -> None:
    default = XmlLimits()
    wide = default.admitting(GIB)
    assert (wide.max_bytes, wide.max_text_chars) == (GIB, LIBXML2_MAX_TEXT_CHARS)
    assert replace(wide, max_bytes=default.max_bytes, max_text_chars=default.max_text_chars) == (
        default
    )
    assert default.admitting(default.max_bytes - 1) is default  # never lowered


def test_a_text_node_over_the_single_message_limit_is_accepted_within_a_chunked_document_s() -> (
    None
):
    data = b"<a>" + b"A" * 1000 + b"</a>"
    narrow = XmlLimits(max_bytes=2000, max_text_chars=999)
    assert refusal(data, max_bytes=2000, max_text_chars=999).reason is Reason.EDXML_TOO_COMPLEX
    assert parse_xml(data, narrow.admitting(4000)).text == "A" * 1000


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (nested(DEFAULT_MAX_DEPTH + 1), Reason.EDXML_UNSAFE),
        (b'<!DOCTYPE a [<!ENTITY x "y">]><a>&x;</a>', Reason.EDXML_UNSAFE),
        (b"<a>" + b"<b/>" * 20_001 + b"</a>", Reason.EDXML_TOO_COMPLEX),
        (b"<a " + b" ".join(b'x%d="1"' % i for i in range(33)) + b"/>", Reason.EDXML_TOO_COMPLEX),
    ],
    ids=["depth", "doctype", "nodes", "attributes"],
)
def test_a_chunked_document_s_limits_keep_every_bound_that_is_not_size(
    data: bytes, reason: Reason
) -> None:
    with pytest.raises(EdxmlError) as caught:
        parse_xml(data, XmlLimits().admitting(GIB))
    assert caught.value.reason is reason
