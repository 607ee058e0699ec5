"""``backbone edxml check``: one JSON line per file, exit 0 only when every file is valid."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from backbone.edxml.cli import app

SAMPLES = Path(__file__).parent / "edxml_samples"
KEYS = [
    "file",
    "ok",
    "kind",
    "document_id",
    "from",
    "to",
    "business_doc_type",
    "status_code",
    "attachments",
    "errors",
]
STATUS_SAMPLES = {
    "status_inbox__01.edxml": "01",
    "status_rejection_02.edxml": "02",
    "status_acceptance_03.edxml": "03",
    "status_finish_06.edxml": "06",
}


def run(*files: Path | str) -> tuple[int, list[dict[str, Any]]]:
    result = CliRunner().invoke(app, ["check", *map(str, files)])
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    for line in lines:
        assert list(line) == KEYS
    return result.exit_code, lines


def test_shared_samples_give_the_expected_lines_and_exit_1(shared_edxml: Path) -> None:
    names = ["edoc_new.edxml", "edoc_revocation.edxml", *STATUS_SAMPLES]
    code, lines = run(*(shared_edxml / name for name in names))
    assert code == 1
    new, revocation, *statuses = lines
    assert new == {
        "file": str(shared_edxml / "edoc_new.edxml"),
        "ok": False,
        "kind": None,
        "document_id": None,
        "from": None,
        "to": None,
        "business_doc_type": None,
        "status_code": None,
        "attachments": None,
        "errors": [
            {
                "message": "4 byte(s) b'1212' before the XML declaration; an edXML file "
                "must start with '<?xml' (or an optional UTF-8 byte order mark)",
                "line": 1,
                "path": None,
            }
        ],
    }
    assert revocation == {
        "file": str(shared_edxml / "edoc_revocation.edxml"),
        "ok": True,
        "kind": "document",
        "document_id": "000.00.00.G22,2015/09/30,7816/VPCP-TTĐT",
        "from": "000.00.00.G22",
        "to": ["000.00.00.H41", "000.00.00.H14", "000.00.00.G17"],
        "business_doc_type": 1,
        "status_code": None,
        "attachments": 1,
        "errors": [],
    }
    for (name, status_code), line in zip(STATUS_SAMPLES.items(), statuses, strict=True):
        assert line == {
            "file": str(shared_edxml / name),
            "ok": True,
            "kind": "status",
            "document_id": "000.00.00.G22,2015/09/30,7816/VPCP-TTĐT",
            "from": "000.00.00.H41",
            "to": None,
            "business_doc_type": None,
            "status_code": status_code,
            "attachments": None,
            "errors": [],
        }


def test_valid_files_only_exit_0(shared_edxml: Path) -> None:
    code, lines = run(shared_edxml / "edoc_revocation.edxml", SAMPLES / "status.edxml")
    assert code == 0
    assert [line["ok"] for line in lines] == [True, True]


def test_invalid_file_still_shows_its_routing_facts_and_located_errors(tmp_path: Path) -> None:
    text = (SAMPLES / "document.edxml").read_text(encoding="utf-8")
    bad = tmp_path / "bad.edxml"
    bad.write_text(text.replace("000.21.32.H53", "28.22.H17"), encoding="utf-8")
    code, [line] = run(bad)
    assert code == 1
    assert line["ok"] is False
    assert line["kind"] == "document"
    assert line["to"] == ["000.00.32.H53", "28.22.H17"]
    assert line["business_doc_type"] == 0
    assert line["attachments"] == 1
    [error] = line["errors"]
    assert "'28.22.H17'" in error["message"]
    assert error["line"] == 17
    assert error["path"] == "/edXML/edXMLEnvelope/edXMLHeader/MessageHeader/To[2]/OrganId"


def test_missing_file_is_an_error_line_not_a_traceback(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.edxml"
    code, lines = run(missing, SAMPLES / "status.edxml")
    assert code == 1
    assert lines[0]["ok"] is False
    assert lines[0]["kind"] is None
    assert lines[0]["errors"][0]["message"].startswith("cannot read file")
    assert lines[1]["ok"] is True


def test_no_file_is_a_usage_error() -> None:
    assert CliRunner().invoke(app, ["check"]).exit_code == 2


def test_check_reports_a_document_id_that_is_not_its_senders(tmp_path: Path) -> None:
    data = (SAMPLES / "document.edxml").read_text(encoding="utf-8")
    file = tmp_path / "decoy.edxml"
    file.write_text(data.replace("<DocumentId>000.00.12.H53,", "<DocumentId>000.00.00.G22,"))
    code, [line] = run(file)
    assert code == 1
    assert line["ok"] is False
    assert line["document_id"] == "000.00.00.G22,2024/03/05,125/STTTT-VP"
    [error] = line["errors"]
    assert "000.00.00.G22's" in error["message"]
    assert "starts with its sender's organ code" in error["message"]
    assert error["path"] == "/edXML/edXMLEnvelope/edXMLHeader/MessageHeader/DocumentId"


def test_a_document_beyond_the_pre_scan_limits_is_reported_with_the_limit(
    tmp_path: Path,
) -> None:
    bulk = " ".join(f'a{i}="x"' for i in range(1000))
    text = (SAMPLES / "document.edxml").read_text(encoding="utf-8")
    assert "<edXMLBody>" in text
    crowded = tmp_path / "crowded.edxml"
    crowded.write_text(text.replace("<edXMLBody>", f"<edXMLBody {bulk}>"), encoding="utf-8")
    code, [line] = run(crowded)
    assert code == 1
    [error] = line["errors"]
    assert "edXMLBody has 1000 attributes" in error["message"]
    assert "the limit is 32 (max_attributes_per_element)" in error["message"]
