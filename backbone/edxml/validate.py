"""Accept or refuse edXML bytes: hardened parse → kind → schema → semantic checks → model.

:func:`validate` returns the model or raises; :func:`examine` and :func:`collect_issues`
report every problem, each with its line and path. Either way the work is done once: one
parse, schemas loaded once per thread, attachments decoded once.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, cast

from lxml import etree

from backbone.edxml.check import check
from backbone.edxml.hardening import DEFAULT_LIMITS, XmlLimits
from backbone.edxml.issues import Issue, path_of
from backbone.edxml.models import EdxmlMessage, Kind
from backbone.edxml.names import NAMESPACE
from backbone.edxml.occurrences import occurrence_issues
from backbone.edxml.parser import parse_xml
from backbone.edxml.reader import detect_kind, read_collecting
from backbone.errors import EdxmlError, Reason

__all__ = [
    "Examination",
    "collect_issues",
    "examine",
    "examine_parsed",
    "schema_dir",
    "validate",
]


@dataclass(frozen=True, slots=True)
class Examination:
    """What one input turned out to be. ``root`` lets later layers (XML-DSig) reuse the
    parse; ``kind`` is known whenever the input parsed, even when it is invalid."""

    root: etree._Element | None
    kind: Kind | None
    message: EdxmlMessage | None
    issues: tuple[Issue, ...]
    reason: Reason | None  # why it was refused; None when it was accepted

    @property
    def ok(self) -> bool:
        return self.message is not None

    def accepted(self) -> EdxmlMessage:
        """The message, or :class:`EdxmlError` reporting the first problem (with the
        parser's reason when it could not be parsed safely, else EDXML_INVALID)."""
        if self.message is not None:
            return self.message
        first, more = self.issues[0], len(self.issues) - 1
        suffix = f" (and {more} more problem{'s' * (more > 1)})" if more else ""
        raise EdxmlError(
            first.message + suffix,
            reason=self.reason or Reason.EDXML_INVALID,
            line=first.line,
            path=first.path,
        )


def validate(data: bytes, limits: XmlLimits = DEFAULT_LIMITS) -> EdxmlMessage:
    """The message ``data`` carries, or :class:`EdxmlError` reporting the first problem
    (with the parser's reason when it could not be parsed safely, else EDXML_INVALID)."""
    return examine(data, limits).accepted()


def collect_issues(data: bytes, limits: XmlLimits = DEFAULT_LIMITS) -> list[Issue]:
    """Every problem in ``data``; empty when it is a valid edXML message."""
    return list(examine(data, limits).issues)


def examine(data: bytes, limits: XmlLimits = DEFAULT_LIMITS) -> Examination:
    """Parse, judge and read ``data``, collecting every problem in line order."""
    try:
        root = parse_xml(data, limits)
    except EdxmlError as exc:
        return Examination(None, None, None, (Issue.from_error(exc),), exc.reason)
    return examine_parsed(root)


def examine_parsed(root: etree._Element) -> Examination:
    """:func:`examine` for a tree :func:`~backbone.edxml.parse_xml` returned: so that a
    caller holding a large document parses it and drops its bytes before the rest."""
    kind = detect_kind(root)
    # The schema takes the header's groups in any order; occurrence_issues counts the
    # children the schema cannot (see occurrences.py). Both are the structure.
    issues = _schema_issues(root, kind) + occurrence_issues(root, kind)
    structure_ok = not issues
    issues += check(root, kind)
    message = None
    if structure_ok:  # values can only be read from a tree of the right shape
        message, value_issues = read_collecting(root, kind)  # kind: detected once
        issues += value_issues
    issues.sort(key=lambda issue: (issue.secondary, issue.line or 0))
    if issues:
        reason = issues[0].reason or Reason.EDXML_INVALID  # the first problem's, as reported
        return Examination(root, kind, None, tuple(issues), reason)
    return Examination(root, kind, message, (), None)


def schema_dir() -> Path:
    """``backbone/_schemas/edxml`` in an installed wheel, else the repository's schemas/edxml."""
    here = Path(__file__).resolve()
    installed = here.parents[1] / "_schemas" / "edxml"
    return installed if installed.is_dir() else here.parents[2] / "schemas" / "edxml"


class _LogEntry(Protocol):  # what lxml's error log entries carry (lxml-stubs leave it untyped)
    line: int
    message: str
    path: str


# Schemas load once per thread: lxml keeps a validator's error log on the validator object,
# so threads sharing one would read each other's errors.
_local = threading.local()
# Compiling schemas (with their xs:include) is not safe in several threads at once in libxml2.
_compiling = threading.Lock()


def _schema(kind: Kind) -> etree.XMLSchema:
    schemas: dict[Kind, etree.XMLSchema] | None = getattr(_local, "schemas", None)
    if schemas is None:
        directory = schema_dir()
        with _compiling:
            schemas = {k: etree.XMLSchema(etree.parse(str(directory / f"{k}.xsd"))) for k in Kind}
        _local.schemas = schemas
    return schemas[kind]


def _schema_issues(root: etree._Element, kind: Kind) -> list[Issue]:
    schema = _schema(kind)
    if schema.validate(root):
        return []
    prefixes = {
        prefix: uri for element in root.iter() for prefix, uri in element.nsmap.items() if prefix
    }
    return [
        Issue(
            entry.message.replace(f"{{{NAMESPACE}}}", ""),
            entry.line or None,
            _our_path(root, entry.path, prefixes),
        )
        for entry in cast("Iterable[_LogEntry]", schema.error_log)
    ]


def _our_path(root: etree._Element, libxml2_path: str, prefixes: dict[str, str]) -> str:
    """libxml2 writes ``/*/edXML:edXMLEnvelope/*[4]``; find that element and name it our way."""
    try:
        found = root.xpath(libxml2_path, namespaces=prefixes)
    except etree.XPathError:
        return libxml2_path
    if isinstance(found, list) and found and isinstance(found[0], etree._Element):
        return path_of(found[0])
    return libxml2_path
