"""The gateway's hostile requests: every case, the system it comes from, the ``ErrorCode``
it must get.

Each case is a raw HTTP request to the gateway (the axis' API, docs/gateway.md), built from
the vendor SDK's own wire format (:class:`testkit.vxp_client.SdkClient`) and then tampered
with by :mod:`tests.hostile.gateway_build` (one builder per case id).

Targets: ``direct`` is the gateway of the direct agency ``000.00.00.G22`` (system ``qlvb``,
acting for it); ``hub`` is the gateway of hub ``00.53.W00``, whose system ``hub-a`` acts for
``000.00.00.H53`` and ``hub-b`` for ``000.00.32.H53`` only.

Every refusal must answer ``status: FAIL``, the exact ``ErrorCode``, a non-empty
``ErrorDesc`` (and ``DocId`` for ``sendEdoc``, which the SDK reads whatever the status);
nothing of a refused ``sendEdoc`` is recorded or published; and the same gateway serves a
valid request right after. ``tests/test_gateway_hostile.py`` runs every case against the real
broker, router and adapters.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from backbone.errors import Reason

__all__ = ["GATEWAY_CASES", "GatewayCase", "Target"]


class Target(StrEnum):
    DIRECT = "direct"
    HUB = "hub"


@dataclass(frozen=True, slots=True)
class GatewayCase:
    id: str
    what: str
    operation: str
    expect: Reason
    target: Target = Target.DIRECT
    # The ErrorDesc must contain each of these (the line, the element, the parameter…).
    desc_mentions: tuple[str, ...] = ()


R = Reason
HUB = Target.HUB
SEND, LIST, GET, DOWNLOAD, UPDATE = (
    "sendEdoc", "getReceivedEdocList", "getEdoc", "downloadEdoc", "updateStatus",
)  # fmt: skip

GATEWAY_CASES: Final[tuple[GatewayCase, ...]] = (
    # -- authentication: the signed headers --------------------------------------------------
    GatewayCase("auth-wrong-hmac", "hash-header computed with another secret", LIST,
                R.GATEWAY_SIGNATURE_INVALID),
    GatewayCase("auth-hmac-of-other-headers", "a genuine hash-header beside a changed "
                "sign-header (docId edited after signing)", GET, R.GATEWAY_SIGNATURE_INVALID),
    GatewayCase("auth-unknown-system", "systemid no gateway system has, signed with a guess",
                LIST, R.GATEWAY_SYSTEM_UNKNOWN, desc_mentions=("intruder",)),
    GatewayCase("auth-no-sign-header", "XroadVnpt-sign-header left out", LIST,
                R.GATEWAY_REQUEST_MALFORMED, desc_mentions=("sign-header",)),
    GatewayCase("auth-no-hash-header", "XroadVnpt-hash-header left out", LIST,
                R.GATEWAY_REQUEST_MALFORMED, desc_mentions=("hash-header",)),
    GatewayCase("auth-two-hash-headers", "a wrong hash-header before the right one", LIST,
                R.GATEWAY_REQUEST_MALFORMED, desc_mentions=("hash-header",)),
    GatewayCase("auth-two-sign-headers", "a second sign-header (a forged map) after the "
                "signed one", LIST, R.GATEWAY_REQUEST_MALFORMED,
                desc_mentions=("sign-header",)),
    GatewayCase("auth-sign-header-not-json", "sign-header is not JSON (HMAC valid over it)",
                LIST, R.GATEWAY_REQUEST_MALFORMED),
    GatewayCase("auth-sign-header-json-array", "sign-header is a JSON array of pairs", LIST,
                R.GATEWAY_REQUEST_MALFORMED),
    GatewayCase("auth-sign-header-non-string", "a sign-header value that is a number", LIST,
                R.GATEWAY_REQUEST_MALFORMED),
    GatewayCase("auth-no-systemid", "the signed map without XroadVnpt-systemid", LIST,
                R.GATEWAY_REQUEST_MALFORMED, desc_mentions=("systemid",)),
    GatewayCase("auth-systemid-twice", "XroadVnpt-systemid and XROADVNPT-SYSTEMID in one map",
                LIST, R.GATEWAY_REQUEST_MALFORMED),
    GatewayCase("auth-huge-header", "a 6 KiB signed header value (beside the SDK's own)",
                GET, R.GATEWAY_DOCUMENT_UNKNOWN),
    # -- sendEdoc: parameters ---------------------------------------------------------------
    GatewayCase("send-from-unsigned", "from only as a plain header, not in the signed map",
                SEND, R.GATEWAY_REQUEST_MALFORMED, desc_mentions=("from",)),
    GatewayCase("send-from-plain-overrides", "signed from is another agency; a plain "
                "XroadVnpt-from header names the system's own", SEND,
                R.GATEWAY_SENDER_NOT_PERMITTED, desc_mentions=("000.00.00.H41",)),
    GatewayCase("send-no-hash-file", "the signed map without hash-file", SEND,
                R.GATEWAY_REQUEST_MALFORMED, desc_mentions=("hash-file",)),
    GatewayCase("send-hash-file-mismatch", "hash-file of another file", SEND,
                R.GATEWAY_HASH_MISMATCH),
    GatewayCase("send-body-too-large", "Content-Length above max_document_bytes", SEND,
                R.GATEWAY_BODY_TOO_LARGE),
    GatewayCase("send-body-too-large-chunked", "a chunked body growing past "
                "max_document_bytes (no Content-Length)", SEND, R.GATEWAY_BODY_TOO_LARGE),
    GatewayCase("send-messagetype-garbage", "messagetype=fax", SEND,
                R.GATEWAY_REQUEST_MALFORMED, desc_mentions=("fax",)),
    GatewayCase("send-status-as-edoc", "a status edXML with messagetype=edoc", SEND,
                R.GATEWAY_MESSAGE_TYPE_MISMATCH),
    GatewayCase("send-edoc-as-status", "a document with messagetype=status", SEND,
                R.GATEWAY_MESSAGE_TYPE_MISMATCH),
    GatewayCase("send-from-not-acts-for", "hub-b sends from 000.00.00.H53, which it does not "
                "act for", SEND, R.GATEWAY_SENDER_NOT_PERMITTED, HUB),
    GatewayCase("send-from-outside-adapter", "from names an agency of another adapter", SEND,
                R.GATEWAY_SENDER_NOT_PERMITTED),
    GatewayCase("send-edxml-from-differs", "from=000.00.00.H53 but the edXML is from "
                "000.00.32.H53 (served by the adapter, not this system)", SEND,
                R.GATEWAY_SENDER_NOT_PERMITTED, HUB, desc_mentions=("000.00.32.H53",)),
    GatewayCase("send-edxml-from-other-adapter", "from=G22 but the edXML is from H41", SEND,
                R.GATEWAY_SENDER_NOT_PERMITTED, desc_mentions=("000.00.00.H41",)),
    GatewayCase("send-take-back-to-not-array", "a take-back (13) whose to is a JSON object",
                SEND, R.GATEWAY_REQUEST_MALFORMED),
    GatewayCase("send-take-back-without-to", "a take-back (13) without to", SEND,
                R.GATEWAY_REQUEST_MALFORMED),
    # -- sendEdoc: the edXML ----------------------------------------------------------------
    GatewayCase("send-not-well-formed", "XML cut off mid-element", SEND,
                R.EDXML_NOT_WELL_FORMED, desc_mentions=("line 28",)),
    GatewayCase("send-edxml-invalid", "MessageHeader without DocumentId", SEND,
                R.EDXML_INVALID, desc_mentions=("DocumentId", "line 5", "MessageHeader")),
    GatewayCase("send-billion-laughs", "nested entity expansion bomb", SEND, R.EDXML_UNSAFE),
    GatewayCase("send-xxe-file", "external entity reading file:///etc/passwd", SEND,
                R.EDXML_UNSAFE),
    GatewayCase("send-unknown-recipient", "a To the directory does not list", SEND,
                R.RECIPIENT_UNKNOWN, desc_mentions=("000.00.99.G99",)),
    GatewayCase("send-document-id-control-characters", "a DocumentId with a tab and a "
                "newline in it", SEND, R.DOCUMENT_ID_MALFORMED, desc_mentions=("U+0009",)),
    # -- received documents -----------------------------------------------------------------
    GatewayCase("get-unknown-docid", "getEdoc of a docId never received", GET,
                R.GATEWAY_DOCUMENT_UNKNOWN),
    GatewayCase("get-no-docid", "getEdoc without docId", GET, R.GATEWAY_REQUEST_MALFORMED,
                desc_mentions=("docId",)),
    GatewayCase("download-unknown-docid", "downloadEdoc of a docId never received", DOWNLOAD,
                R.GATEWAY_DOCUMENT_UNKNOWN),
    GatewayCase("update-unknown-docid", "updateStatus done of a docId never received",
                UPDATE, R.GATEWAY_DOCUMENT_UNKNOWN),
    GatewayCase("get-another-systems-docid", "hub-b asks for a document hub-a received", GET,
                R.GATEWAY_DOCUMENT_UNKNOWN, HUB),
    GatewayCase("update-another-systems-docid", "hub-b marks done a document hub-a received",
                UPDATE, R.GATEWAY_DOCUMENT_UNKNOWN, HUB),
    GatewayCase("update-bad-status", "updateStatus with status=03", UPDATE,
                R.GATEWAY_STATUS_INVALID),
    GatewayCase("get-sent-list-messagetype-garbage", "getSentEdocList with messagetype=x",
                "getSentEdocList", R.GATEWAY_REQUEST_MALFORMED),
    # -- the rest of the API ----------------------------------------------------------------
    GatewayCase("unknown-operation", "a path that is no operation", "deleteEverything",
                R.GATEWAY_OPERATION_UNKNOWN),
    GatewayCase("register-agency-from-direct", "registerAgency from a direct agency's system",
                "registerAgency", R.GATEWAY_AGENCY_CHANGE_REFUSED),
    GatewayCase("register-agency-not-json", "registerAgency with a body that is not JSON",
                "registerAgency", R.GATEWAY_REQUEST_MALFORMED, HUB),
    GatewayCase("register-agency-outside-subtree", "hub-b registers an agency under "
                "000.00.00.G22", "registerAgency", R.GATEWAY_AGENCY_CHANGE_REFUSED, HUB),
    GatewayCase("delete-agency-outside-subtree", "hub-b deletes 000.00.00.H53, above its "
                "subtree", "deleteAgency", R.GATEWAY_AGENCY_CHANGE_REFUSED, HUB),
    GatewayCase("delete-agency-malformed-code", "deleteAgency of 'H5.3'", "deleteAgency",
                R.GATEWAY_REQUEST_MALFORMED, HUB),
)  # fmt: skip
