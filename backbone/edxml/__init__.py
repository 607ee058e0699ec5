"""edXML (QCVN 102:2016): hardened parsing, schemas, models, reading, building, validation.

message = validate(data)        # bytes → EdxmlDocument | EdxmlStatus, or EdxmlError
issues = collect_issues(data)   # every problem, each with message, line and path
data = build(message)           # and validate(build(message)) == message
validate(data, XmlLimits(...))  # other bounds than the pre-scan's defaults (hardening.py)
"""

from backbone.edxml.builder import build
from backbone.edxml.hardening import DEFAULT_LIMITS, XmlLimits
from backbone.edxml.issues import Issue
from backbone.edxml.models import (
    Attachment,
    Business,
    BusinessDocType,
    BusinessDocumentInfo,
    Code,
    DocumentType,
    EdxmlDocument,
    EdxmlMessage,
    EdxmlStatus,
    Kind,
    Organization,
    OtherInfo,
    PromulgationInfo,
    Receiver,
    Reference,
    ReplacementInfo,
    ResponseFor,
    SignerInfo,
    StaffInfo,
    StatusCode,
    TraceHeader,
)
from backbone.edxml.names import NAMESPACE
from backbone.edxml.parser import parse_xml
from backbone.edxml.reader import detect_kind, read
from backbone.edxml.validate import (
    Examination,
    collect_issues,
    examine,
    examine_parsed,
    validate,
)

__all__ = [
    "DEFAULT_LIMITS",
    "NAMESPACE",
    "Attachment",
    "Business",
    "BusinessDocType",
    "BusinessDocumentInfo",
    "Code",
    "DocumentType",
    "EdxmlDocument",
    "EdxmlMessage",
    "EdxmlStatus",
    "Examination",
    "Issue",
    "Kind",
    "Organization",
    "OtherInfo",
    "PromulgationInfo",
    "Receiver",
    "Reference",
    "ReplacementInfo",
    "ResponseFor",
    "SignerInfo",
    "StaffInfo",
    "StatusCode",
    "TraceHeader",
    "XmlLimits",
    "build",
    "collect_issues",
    "detect_kind",
    "examine",
    "examine_parsed",
    "parse_xml",
    "read",
    "validate",
]
