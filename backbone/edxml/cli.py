"""``backbone edxml``: check edXML files from the command line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from lxml import etree

from backbone.edxml.issues import Issue
from backbone.edxml.models import Kind
from backbone.edxml.names import qpath
from backbone.edxml.parser import DEFAULT_MAX_BYTES
from backbone.edxml.validate import examine

__all__ = ["app"]

app = typer.Typer(no_args_is_help=True, pretty_exceptions_enable=False)

_HEADER = ("edXMLEnvelope", "edXMLHeader", "MessageHeader")


@app.callback()
def _group() -> None:
    """Check and inspect edXML (QCVN 102:2016) files."""


_CHECK_HELP = (
    "Validate edXML files and print one JSON object per file, one per line, in order.\n\n"
    'Keys, in this order: file, ok, kind ("document" or "status"), document_id, from, '
    "to (list of organ ids), business_doc_type (integer 0-3), status_code (string as "
    'written, e.g. "03"), attachments (how many), errors (list of {message, line, path}).\n\n'
    "Keys that do not apply are null: to, business_doc_type and attachments for a status "
    "message; status_code for a document. For a status message, document_id is the "
    "DocumentId of the document it reports on (its ResponseFor). When a file cannot be read "
    "or parsed, every key but file, ok and errors is null. Values are shown as the file "
    "writes them, invalid files included.\n\n"
    "Exit status: 0 when every file is valid, 1 otherwise."
)


@app.command("check", help=_CHECK_HELP)
def check_files(
    files: Annotated[
        list[Path],
        typer.Argument(help="edXML files to check.", metavar="FILE", show_default=False),
    ],
) -> None:
    all_ok = True
    for file in files:
        entry = _entry(file)
        all_ok = all_ok and bool(entry["ok"])
        typer.echo(json.dumps(entry, ensure_ascii=False))
    if not all_ok:
        raise typer.Exit(code=1)


def _entry(file: Path) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "file": str(file),
        "ok": False,
        "kind": None,
        "document_id": None,
        "from": None,
        "to": None,
        "business_doc_type": None,
        "status_code": None,
        "attachments": None,
        "errors": [],
    }
    try:
        with file.open("rb") as stream:
            # One byte over the limit is enough for the parser to refuse it as too large.
            data = stream.read(DEFAULT_MAX_BYTES + 1)
    except OSError as exc:
        entry["errors"] = [Issue(f"cannot read file: {exc.strerror or exc}").as_dict()]
        return entry
    result = examine(data)
    entry["ok"] = result.ok
    if result.root is not None and result.kind is not None:
        entry.update(_summary(result.root, result.kind))
    entry["errors"] = [issue.as_dict() for issue in result.issues]
    return entry


def _summary(root: etree._Element, kind: Kind) -> dict[str, Any]:
    """Routing facts read straight from the tree, so that invalid files show them too."""

    def text(*path: str) -> str | None:
        element = root.find(qpath(*path))
        return None if element is None else element.text or ""

    if kind is Kind.STATUS:
        return {
            "kind": kind.value,
            "document_id": text(*_HEADER, "ResponseFor", "DocumentId"),
            "from": text(*_HEADER, "From", "OrganId"),
            "status_code": text(*_HEADER, "StatusCode"),
        }
    doc_type = text(
        "edXMLEnvelope", "edXMLHeader", "TraceHeaderList", "Bussiness", "BussinessDocType"
    )
    return {
        "kind": kind.value,
        "document_id": text(*_HEADER, "DocumentId"),
        "from": text(*_HEADER, "From", "OrganId"),
        "to": [element.text or "" for element in root.iterfind(qpath(*_HEADER, "To", "OrganId"))],
        "business_doc_type": _integer(doc_type),
        "attachments": len(root.findall(qpath("AttachmentEncoded", "Attachment"))),
    }


def _integer(text: str | None) -> int | None:
    try:
        return None if text is None else int(text)
    except ValueError:
        return None
