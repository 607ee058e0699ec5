"""Validation: schema, semantic checks and value reading, each problem with its line and path.

Hostile variants are made by small edits of the hand-made fixtures in tests/edxml_samples.
"""

from __future__ import annotations

import base64
import sys
import unicodedata
from datetime import date, datetime
from pathlib import Path

import pytest

from backbone.edxml import (
    BusinessDocType,
    EdxmlDocument,
    EdxmlStatus,
    Issue,
    Kind,
    StatusCode,
    collect_issues,
    examine,
    parse_xml,
    read,
    validate,
)
from backbone.edxml.document_id import DocumentId, _forbidden
from backbone.edxml.validate import _schema, schema_dir
from backbone.errors import DocumentIdError, EdxmlError, OrganCodeError, Reason
from backbone.organ import OrganCode

pytestmark = pytest.mark.clock  # scripts/clock-check runs it at fixed instants

SAMPLES = Path(__file__).parent / "edxml_samples"
DOCUMENT = (SAMPLES / "document.edxml").read_bytes()
STATUS = (SAMPLES / "status.edxml").read_bytes()
HEADER = "/edXML/edXMLEnvelope/edXMLHeader/MessageHeader"


def edit(data: bytes, old: str, new: str) -> bytes:
    assert old.encode() in data, f"fixture lacks {old!r}"
    return data.replace(old.encode(), new.encode(), 1)


def line_of(data: bytes, needle: str) -> int:
    return data[: data.index(needle.encode())].count(b"\n") + 1


def only_issue(data: bytes) -> Issue:
    issues = collect_issues(data)
    assert len(issues) == 1, issues
    return issues[0]


def organ_code_error(text: str) -> str:
    with pytest.raises(OrganCodeError) as caught:
        OrganCode.parse(text)
    return caught.value.message


# --- valid messages -------------------------------------------------------------------


def test_hand_made_document_reads_into_the_document_model() -> None:
    message = validate(DOCUMENT)
    assert isinstance(message, EdxmlDocument)
    assert message.sender.organ_id == "000.00.12.H53"
    assert [to.organ_id for to in message.recipients] == ["000.00.32.H53", "000.21.32.H53"]
    assert message.promulgation_info.promulgation_date == date(2024, 3, 5)
    assert message.due_date is None  # written as an empty DueDate
    assert message.business.business_doc_type is BusinessDocType.NEW
    assert message.trace_headers[0].timestamp == datetime(2024, 3, 5, 8, 30)
    assert message.attachments[0].content == base64.b64decode("JVBERi0xLjQKJcfsj6IKJSVFT0YK")


def test_status_with_an_xmldsig_signature_reads_into_the_status_model() -> None:
    message = validate(STATUS)
    assert isinstance(message, EdxmlStatus)
    assert message.status_code is StatusCode.REJECTED
    assert message.response_for.document_id == "000.00.12.H53,2024/03/05,125/STTTT-VP"
    assert message.timestamp == datetime(2024, 3, 5, 9, 15, 42)


def test_placeholder_signature_in_the_edxml_namespace_is_accepted() -> None:
    data = edit(
        DOCUMENT,
        "    </edXMLHeader>",
        '<Signature><SignedInfo><Reference URI=""><Transforms/></Reference></SignedInfo>'
        "<SignatureValue>x</SignatureValue></Signature></edXMLHeader>",
    )
    assert collect_issues(data) == []


def test_signature_from_any_other_namespace_is_refused() -> None:
    data = edit(DOCUMENT, "    </edXMLHeader>", '<x:Signature xmlns:x="urn:x"/></edXMLHeader>')
    assert "Signature" in only_issue(data).message


def test_base64_broken_over_lines_is_accepted() -> None:
    data = edit(DOCUMENT, "JVBERi0xLjQKJcfsj6IK", "\n        JVBERi0xLjQK\n        Jcfsj6IK")
    message = validate(data)
    assert isinstance(message, EdxmlDocument)
    assert message.attachments[0].content == base64.b64decode("JVBERi0xLjQKJcfsj6IKJSVFT0YK")


def test_shared_revocation_sample_is_a_valid_revocation(shared_edxml: Path) -> None:
    message = validate((shared_edxml / "edoc_revocation.edxml").read_bytes())
    assert isinstance(message, EdxmlDocument)
    assert message.business.business_doc_type is BusinessDocType.REVOCATION
    assert message.sender.organ_id == "000.00.00.G22"
    assert [to.organ_id for to in message.recipients] == [
        "000.00.00.H41",
        "000.00.00.H14",
        "000.00.00.G17",
    ]
    assert len(message.attachments) == 1
    assert message.attachments[0].content.startswith(b"PK")  # a zip, as the sample says


@pytest.mark.parametrize(
    ("name", "code"),
    [
        ("status_inbox__01.edxml", StatusCode.ARRIVED),
        ("status_rejection_02.edxml", StatusCode.REJECTED),
        ("status_acceptance_03.edxml", StatusCode.ACCEPTED),
        ("status_finish_06.edxml", StatusCode.COMPLETED),
    ],
)
def test_shared_status_samples_are_valid(shared_edxml: Path, name: str, code: StatusCode) -> None:
    message = validate((shared_edxml / name).read_bytes())
    assert isinstance(message, EdxmlStatus)
    assert message.status_code is code
    assert message.sender.organ_id == "000.00.00.H41"
    assert message.response_for.document_id == "000.00.00.G22,2015/09/30,7816/VPCP-TTĐT"


def test_shared_new_document_sample_fails_at_line_1(shared_edxml: Path) -> None:
    with pytest.raises(EdxmlError) as caught:
        validate((shared_edxml / "edoc_new.edxml").read_bytes())
    assert caught.value.reason is Reason.EDXML_NOT_WELL_FORMED
    assert caught.value.line == 1


# --- unsafe or unparseable input keeps the parser's reason ----------------------------


def test_doctype_in_an_otherwise_valid_document_is_unsafe() -> None:
    data = edit(DOCUMENT, "<edXML xmlns", '<!DOCTYPE edXML [<!ENTITY e "x">]>\n<edXML xmlns')
    result = examine(data)
    assert result.reason is Reason.EDXML_UNSAFE
    assert result.kind is None
    with pytest.raises(EdxmlError) as caught:
        validate(data)
    assert caught.value.reason is Reason.EDXML_UNSAFE


def test_non_utf8_bytes_in_a_document_are_not_well_formed_at_their_line() -> None:
    data = DOCUMENT.replace("Tây Ninh</Place>".encode(), b"T\xe2y Ninh</Place>")  # Latin-1
    with pytest.raises(EdxmlError) as caught:
        validate(data)
    assert caught.value.reason is Reason.EDXML_NOT_WELL_FORMED
    assert caught.value.line == line_of(DOCUMENT, "Tây Ninh</Place>")


# --- schema -----------------------------------------------------------------------------


def test_wrong_namespace_is_invalid() -> None:
    data = edit(DOCUMENT, 'xmlns="http://www.mic.gov.vn/TBT/QCVN_102_2016"', 'xmlns="urn:other"')
    issue = only_issue(data)
    assert "No matching global declaration" in issue.message
    assert issue.path == "/edXML"
    assert issue.line == line_of(DOCUMENT, "<edXML xmlns")


def test_wrong_root_element_is_invalid() -> None:
    data = edit(
        edit(DOCUMENT, "<edXML xmlns", "<edXMLMessage xmlns"), "</edXML>", "</edXMLMessage>"
    )
    issue = only_issue(data)
    assert "edXMLMessage" in issue.message
    assert issue.path == "/edXMLMessage"


def test_missing_from_organ_id_is_reported_on_from() -> None:
    data = edit(DOCUMENT, "<OrganId>000.00.12.H53</OrganId>\n        </From>", "</From>")
    issues = collect_issues(data)
    assert [(issue.path, "OrganId" in issue.message) for issue in issues] == [
        (f"{HEADER}/From", True)
    ]


def test_document_without_recipients_is_invalid() -> None:
    start, end = DOCUMENT.index(b"<To>"), DOCUMENT.rindex(b"</To>") + len(b"</To>")
    issue = only_issue(DOCUMENT[:start] + DOCUMENT[end:])
    assert "Expected is ( To )" in issue.message


def test_document_without_document_id_is_invalid() -> None:
    data = edit(DOCUMENT, "<DocumentId>000.00.12.H53,2024/03/05,125/STTTT-VP</DocumentId>", "")
    issue = only_issue(data)
    # Reported on the MessageHeader that lacks it: its children come in any order, so no
    # sibling is "where DocumentId should have been".
    assert "Missing child element(s). Expected is ( DocumentId )" in issue.message
    assert issue.path == HEADER
    assert issue.line == line_of(DOCUMENT, "<MessageHeader>")


def test_status_without_status_code_is_judged_as_a_status_and_invalid() -> None:
    result = examine(edit(STATUS, "<edXML:StatusCode>02</edXML:StatusCode>", ""))
    assert result.kind is Kind.STATUS
    assert len(result.issues) == 1
    assert "StatusCode" in result.issues[0].message


def test_status_code_outside_the_known_codes_is_invalid() -> None:
    data = edit(STATUS, "<edXML:StatusCode>02<", "<edXML:StatusCode>07<")
    issue = only_issue(data)
    assert "'07'" in issue.message
    assert issue.line == line_of(STATUS, "<edXML:StatusCode>")
    assert issue.path == f"{HEADER}/StatusCode"


def test_business_doc_type_outside_0_to_3_is_invalid() -> None:
    data = edit(DOCUMENT, "<BussinessDocType>0<", "<BussinessDocType>7<")
    issue = only_issue(data)
    assert "'7'" in issue.message
    assert issue.line == line_of(DOCUMENT, "<BussinessDocType>")
    assert (
        issue.path == "/edXML/edXMLEnvelope/edXMLHeader/TraceHeaderList/Bussiness/BussinessDocType"
    )


def test_date_of_the_wrong_shape_is_invalid() -> None:
    data = edit(DOCUMENT, "<PromulgationDate>2024/03/05<", "<PromulgationDate>05/03/2024<")
    assert only_issue(data).path == f"{HEADER}/PromulgationInfo/PromulgationDate"


def test_attachment_inside_the_envelope_is_invalid() -> None:
    start = DOCUMENT.index(b"  <AttachmentEncoded>")
    end = DOCUMENT.index(b"</AttachmentEncoded>") + len(b"</AttachmentEncoded>\n")
    block = DOCUMENT[start:end]
    data = DOCUMENT[:start] + DOCUMENT[end:]
    data = data.replace(b"  </edXMLEnvelope>", block + b"  </edXMLEnvelope>")
    issues = collect_issues(data)
    assert (
        Issue(
            "Element 'AttachmentEncoded': This element is not expected.",
            line_of(data, "<AttachmentEncoded>"),
            "/edXML/edXMLEnvelope/AttachmentEncoded",
        )
        in issues
    )


# --- semantic checks -------------------------------------------------------------------


def test_malformed_recipient_organ_code_is_reported_with_its_line_and_path() -> None:
    data = edit(DOCUMENT, "<OrganId>000.21.32.H53</OrganId>", "<OrganId>28.22.H17</OrganId>")
    issue = only_issue(data)
    assert issue.message == organ_code_error("28.22.H17")
    assert issue.line == line_of(DOCUMENT, "<OrganId>000.21.32.H53")
    assert issue.path == f"{HEADER}/To[2]/OrganId"


def test_malformed_sender_organ_code_of_a_status_is_reported() -> None:
    data = edit(STATUS, "<edXML:OrganId>000.00.32.H53<", "<edXML:OrganId>H5.3<")
    issue = only_issue(data)
    assert issue.message == organ_code_error("H5.3")
    assert issue.path == f"{HEADER}/From/OrganId"


@pytest.mark.parametrize(
    ("document_id", "complaint"),
    [
        ("000.00.12.H53-2024/03/05-125/STTTT-VP", "1 comma-separated part(s)"),
        ("00.12.H53,2024/03/05,125/STTTT-VP", "has 3 part(s)"),
        ("000.00.12.H53,2024/02/30,125/STTTT-VP", "'2024/02/30' is not a real date"),
        ("000.00.12.H53,05/03/2024,125/STTTT-VP", "'05/03/2024' is not a date"),
        ("000.00.12.H53,2024/03/05,125-STTTT-VP", "is not <Number>/<Notation>"),
    ],
)
def test_document_id_of_the_wrong_shape_is_reported(document_id: str, complaint: str) -> None:
    old = "<DocumentId>000.00.12.H53,2024/03/05,125/STTTT-VP</DocumentId>"
    issue = only_issue(edit(DOCUMENT, old, f"<DocumentId>{document_id}</DocumentId>"))
    assert complaint in issue.message
    assert document_id in issue.message
    assert issue.path == f"{HEADER}/DocumentId"


def test_status_about_a_malformed_document_id_is_reported() -> None:
    data = edit(STATUS, "000.00.12.H53,2024/03/05,125/STTTT-VP", "125/STTTT-VP")
    assert only_issue(data).path == f"{HEADER}/ResponseFor/DocumentId"


def test_due_date_before_the_promulgation_date_is_refused_with_its_reason() -> None:
    data = edit(DOCUMENT, "<DueDate></DueDate>", "<DueDate>2001/01/01</DueDate>")
    issue = only_issue(data)
    assert issue.reason is Reason.DUE_DATE_BEFORE_DOCUMENT
    assert issue.path == f"{HEADER}/DueDate"
    assert issue.line == line_of(DOCUMENT, "<DueDate>")
    assert "2001/01/01" in issue.message
    assert "2024/03/05" in issue.message
    assert issue.as_dict()["reason"] == "due_date_before_document"
    assert examine(data).reason is Reason.DUE_DATE_BEFORE_DOCUMENT
    with pytest.raises(EdxmlError) as caught:
        validate(data)
    assert caught.value.reason is Reason.DUE_DATE_BEFORE_DOCUMENT


@pytest.mark.parametrize("due", ["2024/03/05", "2024/03/06"])
def test_due_date_on_or_after_the_promulgation_date_is_accepted(due: str) -> None:
    data = edit(DOCUMENT, "<DueDate></DueDate>", f"<DueDate>{due}</DueDate>")
    message = validate(data)
    assert isinstance(message, EdxmlDocument)
    assert message.due_date == datetime.strptime(due, "%Y/%m/%d").date()


def test_an_issue_without_its_own_reason_keeps_the_old_shape() -> None:
    data = edit(STATUS, "<edXML:StatusCode>02<", "<edXML:StatusCode>99<")  # a schema error
    assert set(only_issue(data).as_dict()) == {"message", "line", "path"}
    assert examine(data).reason is Reason.EDXML_INVALID


@pytest.mark.parametrize(
    ("document_id", "character"),
    [
        ("000.00.12.H53,2024/03/05,125/STTTT-VP&#10;injected: yes", "U+000A"),
        ("000.00.12.H53,2024/03/05,125/STTTT&#9;VP", "U+0009"),
        ("000.00.12.H53,2024/03/05,125/STTTT-VP&#8203;", "U+200B"),
        ("000.00.12.H53,2024/03/05,125/STTTT VP", "U+0020"),
    ],
)
def test_a_document_id_with_a_control_format_or_space_character_is_malformed(
    document_id: str, character: str
) -> None:
    old = "<DocumentId>000.00.12.H53,2024/03/05,125/STTTT-VP</DocumentId>"
    data = edit(DOCUMENT, old, f"<DocumentId>{document_id}</DocumentId>")
    issue = only_issue(data)
    assert character in issue.message
    assert "\n" not in issue.message  # shown escaped, never as a raw line break
    with pytest.raises(EdxmlError) as caught:
        validate(data)
    assert caught.value.reason is Reason.DOCUMENT_ID_MALFORMED


def test_the_reader_takes_the_first_of_repeated_children_and_names_a_missing_one() -> None:
    # read() does not check the schema: a repeated child is read as its first occurrence,
    # a missing required one is an error on its parent (as lxml's find would have it).
    subject = "<Subject>V/v triển khai trục liên thông văn bản</Subject>"
    twice = edit(DOCUMENT, subject, subject + "<Subject>second</Subject>")
    message = read(parse_xml(twice))
    assert isinstance(message, EdxmlDocument)
    assert message.subject == "V/v triển khai trục liên thông văn bản"
    with pytest.raises(EdxmlError, match="missing element Subject") as caught:
        read(parse_xml(edit(DOCUMENT, subject, "")))
    assert caught.value.path == HEADER


def test_a_document_id_refuses_exactly_the_control_format_and_separator_characters() -> None:
    # The check clears an id with str.isprintable() first; over every code point, it refuses
    # what the per-character rule (Unicode categories C* and Z*) refuses, and only that.
    for code_point in range(sys.maxunicode + 1):
        character = chr(code_point)
        refused = unicodedata.category(character)[0] in "CZ"
        found = _forbidden(f"a{character}b")
        assert (found is not None) is refused, f"U+{code_point:04X}"
        if found is not None:
            assert f"U+{code_point:04X}" in found


def test_document_id_parses_the_standards_example_with_its_vietnamese_notation() -> None:
    parsed = DocumentId.parse("000.00.00.G22,2015/09/30,7816/VPCP-TTĐT")
    assert (parsed.sender, parsed.day, parsed.number, parsed.notation) == (
        "000.00.00.G22",
        date(2015, 9, 30),
        "7816",
        "VPCP-TTĐT",
    )
    assert str(parsed) == "000.00.00.G22,2015/09/30,7816/VPCP-TTĐT"
    with pytest.raises(DocumentIdError, match=r"U\+001B"):
        DocumentId.parse("000.00.00.G22,2015/09/30,7816/VP\x1b[2J")


def test_a_document_under_another_organs_document_id_is_not_its_senders() -> None:
    data = edit(DOCUMENT, "<DocumentId>000.00.12.H53,", "<DocumentId>000.00.32.H53,")
    issue = only_issue(data)
    assert issue.reason is Reason.DOCUMENT_ID_NOT_SENDER
    assert issue.path == f"{HEADER}/DocumentId"
    assert "000.00.32.H53's" in issue.message
    with pytest.raises(EdxmlError) as caught:
        validate(data)
    assert caught.value.reason is Reason.DOCUMENT_ID_NOT_SENDER


def test_a_status_names_its_documents_original_sender_in_response_for() -> None:
    data = edit(STATUS, "<edXML:OrganId>000.00.12.H53<", "<edXML:OrganId>000.00.21.H53<")
    issue = only_issue(data)
    assert issue.reason is Reason.DOCUMENT_ID_NOT_SENDER
    assert issue.path == f"{HEADER}/ResponseFor/OrganId"


def test_a_status_from_the_documents_own_sender_is_misaddressed_unless_a_take_back() -> None:
    own = edit(STATUS, "<edXML:OrganId>000.00.32.H53<", "<edXML:OrganId>000.00.12.H53<")
    issue = only_issue(own)
    assert issue.reason is Reason.STATUS_MISADDRESSED
    assert issue.path == f"{HEADER}/From/OrganId"
    take_back = edit(own, "<edXML:StatusCode>02<", "<edXML:StatusCode>13<")
    assert collect_issues(take_back) == []
    by_another = edit(STATUS, "<edXML:StatusCode>02<", "<edXML:StatusCode>13<")
    assert only_issue(by_another).reason is Reason.DOCUMENT_ID_NOT_SENDER


def test_manifest_reference_without_its_attachment_is_reported() -> None:
    data = edit(
        DOCUMENT,
        "<ContentId>cid:1</ContentId>\n          <ContentType>",
        "<ContentId>cid:2</ContentId>\n          <ContentType>",
    )
    issues = collect_issues(data)
    assert [(issue.message, issue.line) for issue in issues] == [
        ("manifest Reference 'cid:2' has no Attachment", line_of(DOCUMENT, "<ContentId>cid:1")),
        (
            "Attachment 'cid:1' is not listed in the manifest",
            DOCUMENT.count(b"\n", 0, DOCUMENT.rindex(b"<ContentId>cid:1")) + 1,
        ),
    ]


def test_attachments_sharing_a_content_id_are_reported() -> None:
    attachment = DOCUMENT[DOCUMENT.index(b"<Attachment>") : DOCUMENT.index(b"</Attachment>") + 13]
    data = DOCUMENT.replace(attachment, attachment + attachment)
    issues = collect_issues(data)
    assert [(issue.message, issue.path) for issue in issues] == [
        (
            "more than one Attachment has ContentId 'cid:1'",
            f"/edXML/AttachmentEncoded/Attachment[{position}]/ContentId",
        )
        for position in (1, 2)
    ]


def test_truncated_base64_attachment_is_reported_at_the_attachment() -> None:
    data = edit(DOCUMENT, "JVBERi0xLjQKJcfsj6IKJSVFT0YK<", "JVBERi0xLjQKJcfsj6IKJSVFT0Y<")
    issue = only_issue(data)
    assert "'cid:1' is not valid base64" in issue.message
    assert issue.line == line_of(DOCUMENT, "<ContentTransferEncoded>")
    assert issue.path == "/edXML/AttachmentEncoded/Attachment/ContentTransferEncoded"


def test_base64_with_foreign_characters_is_reported() -> None:
    data = edit(DOCUMENT, "JVBERi0xLjQKJcfsj6IK", "JVBERi0xLjQK*cfsj6IK")
    assert "not valid base64" in only_issue(data).message


def test_impossible_calendar_date_is_reported() -> None:
    data = edit(DOCUMENT, "<PromulgationDate>2024/03/05<", "<PromulgationDate>2024/02/30<")
    issue = only_issue(data)
    assert "'2024/02/30' is not a real date" in issue.message
    assert issue.path == f"{HEADER}/PromulgationInfo/PromulgationDate"


# --- collecting and raising ------------------------------------------------------------


def test_all_problems_are_collected_in_line_order() -> None:
    data = edit(STATUS, "<edXML:StatusCode>02<", "<edXML:StatusCode>99<")
    data = edit(data, "<edXML:OrganId>000.00.32.H53<", "<edXML:OrganId>32.H53<")
    issues = collect_issues(data)
    assert [issue.path for issue in issues] == [
        f"{HEADER}/From/OrganId",
        f"{HEADER}/StatusCode",
    ]


def test_validate_raises_the_first_problem_and_counts_the_rest() -> None:
    data = edit(STATUS, "<edXML:StatusCode>02<", "<edXML:StatusCode>99<")
    data = edit(data, "<edXML:OrganId>000.00.32.H53<", "<edXML:OrganId>32.H53<")
    with pytest.raises(EdxmlError) as caught:
        validate(data)
    assert caught.value.reason is Reason.EDXML_INVALID
    assert caught.value.path == f"{HEADER}/From/OrganId"
    assert caught.value.message.endswith("(and 1 more problem)")


def test_inspection_keeps_the_parsed_tree_and_kind_of_an_invalid_message() -> None:
    result = examine(edit(STATUS, "<edXML:StatusCode>02<", "<edXML:StatusCode>99<"))
    assert not result.ok
    assert result.kind is Kind.STATUS
    assert result.root is not None
    assert result.message is None


# --- schemas ---------------------------------------------------------------------------


def test_schemas_are_found_in_the_repository() -> None:
    assert {path.name for path in schema_dir().glob("*.xsd")} >= {"document.xsd", "status.xsd"}


def test_schemas_are_loaded_once_and_reused() -> None:
    validate(DOCUMENT)
    assert _schema(Kind.DOCUMENT) is _schema(Kind.DOCUMENT)
    assert _schema(Kind.STATUS) is not _schema(Kind.DOCUMENT)
