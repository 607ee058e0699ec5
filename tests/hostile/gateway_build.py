"""The gateway's hostile requests, built per run (:mod:`tests.hostile.gateway_cases`).

Every request starts as the vendor SDK would send it (:class:`SdkClient`'s header map, Gson
JSON, HMAC, ``hash-file``, CRLF body) and is then tampered with; where the tampering is in
the signed map, it is signed again with the system's real secret, so the HMAC is not what
refuses it.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

from backbone.edxml import StatusCode
from testkit import document_edxml, document_id, status_edxml
from testkit.vxp_client import SdkClient, sdk_hash_file

__all__ = [
    "BUILDERS",
    "DIRECT_AGENCY",
    "DIRECT_RECIPIENT",
    "HUB_A_AGENCY",
    "HUB_B_AGENCY",
    "HostileRequest",
    "Kit",
    "Party",
    "missing_builders",
]

DIRECT_AGENCY = "000.00.00.G22"  # the direct gateway's agency (system qlvb)
DIRECT_RECIPIENT = "000.00.00.H41"  # where its documents go
HUB_A_AGENCY = "000.00.00.H53"  # hub-a acts for it
HUB_B_AGENCY = "000.00.32.H53"  # hub-b acts for it only
UNLISTED = "000.00.99.G99"  # a well-formed organ code the directory does not list
INPUTS: Final = Path(__file__).parent / "inputs"
SDK_MADE_AT: Final = datetime(2026, 3, 4, 5, 6, 7, 89000, tzinfo=UTC)
_SIGN, _HASH = "XroadVnpt-sign-header", "XroadVnpt-hash-header"


@dataclass(frozen=True)
class Party:
    """One connected software system of a gateway."""

    endpoint: str
    system_id: str
    secret: str

    def sdk(self) -> SdkClient:
        return SdkClient(self.endpoint, self.system_id, self.secret, SDK_MADE_AT)


@dataclass
class HostileRequest:
    operation: str
    headers: list[tuple[str, str]]
    body: bytes | Callable[[], Iterator[bytes]] | None = None
    method: str = "POST"


@dataclass
class Kit:
    direct: Party
    hub_a: Party
    hub_b: Party
    max_body_bytes: int  # the direct gateway's limit
    hub_a_doc_id: str  # a document hub-a has received (hub-b must never reach it)
    numbers: Iterator[int] = field(default_factory=lambda: itertools.count(900))

    def number(self) -> int:
        return next(self.numbers)


def signed(party: Party, params: Mapping[str, str], *, json_body: bool = True) -> SdkClient:
    sdk = party.sdk()
    sdk.headers["Content-Type"] = "application/json" if json_body else "application/octet-stream"
    sdk.headers.update(params)
    return sdk


def call(party: Party, operation: str, params: Mapping[str, str], **kw: object) -> HostileRequest:
    """A JSON operation exactly as the SDK sends it."""
    body = kw.get("body", b"{}")
    assert isinstance(body, bytes)
    return HostileRequest(operation, signed(party, params).signed_headers(), body)


def send(
    party: Party,
    edxml: bytes,
    *,
    sender: str,
    message_type: str = "edoc",
    to: str | None = None,
    hash_file: str | None = None,
) -> HostileRequest:
    """``sendEdoc`` exactly as the SDK sends it (``to``: the JSON text the caller gave)."""
    params = {"from": sender, "servicetype": "eDoc", "messagetype": message_type}
    if to is not None:
        params["to"] = to
    params["hash-file"] = hash_file if hash_file is not None else sdk_hash_file(edxml)
    sdk = signed(party, params, json_body=False)
    return HostileRequest("sendEdoc", sdk.signed_headers(), edxml + b"\r\n")


def replaced(headers: list[tuple[str, str]], name: str, value: str) -> list[tuple[str, str]]:
    return [(k, value if k.lower() == name.lower() else v) for k, v in headers]


def without(headers: list[tuple[str, str]], name: str) -> list[tuple[str, str]]:
    return [(k, v) for k, v in headers if k.lower() != name.lower()]


def resigned(headers: list[tuple[str, str]], sign: str, secret: str) -> list[tuple[str, str]]:
    """``sign`` as the sign-header, with its genuine HMAC under ``secret``."""
    digest = hmac.new(secret.encode(), sign.encode(), hashlib.sha256).hexdigest()
    return replaced(replaced(headers, _SIGN, sign), _HASH, digest)


def sign_map(headers: list[tuple[str, str]]) -> dict[str, str]:
    found = dict(headers)[_SIGN]
    parsed: dict[str, str] = json.loads(found)
    return parsed


def edited_map(
    request: HostileRequest, party: Party, edit: Callable[[dict[str, object]], object]
) -> HostileRequest:
    """The request with its signed map edited by ``edit`` (which may return a replacement
    value to sign instead), signed again with the real secret."""
    document: dict[str, object] = dict(sign_map(request.headers))
    replacement = edit(document)
    value = replacement if replacement is not None else document
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    request.headers = resigned(request.headers, text, party.secret)
    return request


def _list(kit: Kit) -> HostileRequest:
    return call(kit.direct, "getReceivedEdocList", {"servicetype": "eDoc", "messagetype": "edoc"})


def _document(kit: Kit, recipients: list[str] | None = None, sender: str = DIRECT_AGENCY) -> bytes:
    return document_edxml(sender, recipients or [DIRECT_RECIPIENT], kit.number())


def _send_direct(kit: Kit, edxml: bytes, **kw: str) -> HostileRequest:
    return send(kit.direct, edxml, sender=kw.pop("sender", DIRECT_AGENCY), **kw)


# -- the builders, one per case id ----------------------------------------------------------


def _wrong_hmac(kit: Kit) -> HostileRequest:
    party = Party(kit.direct.endpoint, kit.direct.system_id, "not-the-secret")
    return call(party, "getReceivedEdocList", {"servicetype": "eDoc", "messagetype": "edoc"})


def _hmac_of_other_headers(kit: Kit) -> HostileRequest:
    request = call(kit.direct, "getEdoc", {"docId": "a-docid-of-mine", "filePath": "x"})
    sign = dict(request.headers)[_SIGN].replace("a-docid-of-mine", kit.hub_a_doc_id)
    request.headers = replaced(request.headers, _SIGN, sign)  # the old HMAC kept
    return request


def _unknown_system(kit: Kit) -> HostileRequest:
    party = Party(kit.direct.endpoint, "intruder", kit.direct.secret)
    return call(party, "getReceivedEdocList", {"servicetype": "eDoc", "messagetype": "edoc"})


def _no_sign_header(kit: Kit) -> HostileRequest:
    request = _list(kit)
    request.headers = without(request.headers, _SIGN)
    return request


def _no_hash_header(kit: Kit) -> HostileRequest:
    request = _list(kit)
    request.headers = without(request.headers, _HASH)
    return request


def _two_hash_headers(kit: Kit) -> HostileRequest:
    request = _list(kit)
    request.headers = [(_HASH, "0" * 64), *request.headers]
    return request


def _two_sign_headers(kit: Kit) -> HostileRequest:
    request = _list(kit)
    request.headers = [*request.headers, (_SIGN, '{"XroadVnpt-systemid":"qlvb"}')]
    return request


def _sign_header_not_json(kit: Kit) -> HostileRequest:
    return edited_map(_list(kit), kit.direct, lambda _: "XroadVnpt-systemid=qlvb;")


def _sign_header_json_array(kit: Kit) -> HostileRequest:
    return edited_map(_list(kit), kit.direct, lambda m: json.dumps([[k, v] for k, v in m.items()]))


def _sign_header_non_string(kit: Kit) -> HostileRequest:
    def edit(document: dict[str, object]) -> None:
        document["XroadVnpt-messagetype"] = 7

    return edited_map(_list(kit), kit.direct, edit)


def _no_systemid(kit: Kit) -> HostileRequest:
    return edited_map(_list(kit), kit.direct, lambda m: m.pop("XroadVnpt-systemid") and None)


def _systemid_twice(kit: Kit) -> HostileRequest:
    def edit(document: dict[str, object]) -> None:
        document["XROADVNPT-SYSTEMID"] = "intruder"

    return edited_map(_list(kit), kit.direct, edit)


def _huge_header(kit: Kit) -> HostileRequest:
    return call(kit.direct, "getEdoc", {"docId": "x" * 6000, "filePath": "edoc-files"})


def _from_unsigned(kit: Kit) -> HostileRequest:
    request = _send_direct(kit, _document(kit))
    # Signed again without it; the plain XroadVnpt-from header is still there.
    return edited_map(request, kit.direct, lambda m: m.pop("XroadVnpt-from") and None)


def _from_plain_overrides(kit: Kit) -> HostileRequest:
    request = _send_direct(kit, _document(kit), sender=DIRECT_RECIPIENT)
    request.headers = [
        ("XroadVnpt-from", DIRECT_AGENCY),
        *without(request.headers, "XroadVnpt-from"),
    ]
    return request


def _no_hash_file(kit: Kit) -> HostileRequest:
    request = _send_direct(kit, _document(kit))
    return edited_map(request, kit.direct, lambda m: m.pop("XroadVnpt-hash-file") and None)


def _hash_file_mismatch(kit: Kit) -> HostileRequest:
    return _send_direct(kit, _document(kit), hash_file=sdk_hash_file(_document(kit)))


def _too_large(kit: Kit) -> HostileRequest:
    request = _send_direct(kit, _document(kit))
    request.body = b"x" * (kit.max_body_bytes + 3)  # past the file and the SDK's CRLF
    return request


def _too_large_chunked(kit: Kit) -> HostileRequest:
    request = _send_direct(kit, _document(kit))
    chunk = b"<a>" + b"x" * (64 * 1024 - 7) + b"</a>"

    def chunks() -> Iterator[bytes]:
        for _ in range(2 * kit.max_body_bytes // len(chunk) + 1):
            yield chunk

    request.body = chunks
    return request


def _messagetype_garbage(kit: Kit) -> HostileRequest:
    return _send_direct(kit, _document(kit), message_type="fax")


def _status_as_edoc(kit: Kit) -> HostileRequest:
    status = status_edxml(
        DIRECT_AGENCY, document_id(DIRECT_RECIPIENT, 1), StatusCode.ACCEPTED, "Thu hồi"
    )
    return _send_direct(kit, status, message_type="edoc")


def _edoc_as_status(kit: Kit) -> HostileRequest:
    return _send_direct(kit, _document(kit), message_type="status")


def _from_not_acts_for(kit: Kit) -> HostileRequest:
    edxml = _document(kit, [DIRECT_AGENCY], sender=HUB_A_AGENCY)
    return send(kit.hub_b, edxml, sender=HUB_A_AGENCY)


def _from_outside_adapter(kit: Kit) -> HostileRequest:
    return _send_direct(kit, _document(kit, [DIRECT_AGENCY], sender=DIRECT_RECIPIENT),
                        sender=DIRECT_RECIPIENT)  # fmt: skip


def _edxml_from_differs(kit: Kit) -> HostileRequest:
    edxml = _document(kit, [DIRECT_AGENCY], sender=HUB_B_AGENCY)
    return send(kit.hub_a, edxml, sender=HUB_A_AGENCY)


def _edxml_from_other_adapter(kit: Kit) -> HostileRequest:
    return _send_direct(kit, _document(kit, ["000.00.05.G01"], sender=DIRECT_RECIPIENT))


def _take_back_to_not_array(kit: Kit) -> HostileRequest:
    status = status_edxml(DIRECT_AGENCY, document_id(DIRECT_AGENCY, 1),
                          StatusCode.TAKE_BACK_REQUESTED, "Thu hồi")  # fmt: skip
    return _send_direct(kit, status, message_type="status", to='{"to":"000.00.00.H41"}')


def _take_back_without_to(kit: Kit) -> HostileRequest:
    status = status_edxml(DIRECT_AGENCY, document_id(DIRECT_AGENCY, 2),
                          StatusCode.TAKE_BACK_REQUESTED, "Thu hồi")  # fmt: skip
    return _send_direct(kit, status, message_type="status")


def _from_file(kit: Kit, name: str) -> HostileRequest:
    return _send_direct(kit, (INPUTS / name).read_bytes())


def _unknown_recipient(kit: Kit) -> HostileRequest:
    return _send_direct(kit, _document(kit, [DIRECT_RECIPIENT, UNLISTED]))


def _document_id_control_characters(kit: Kit) -> HostileRequest:
    number = kit.number()
    edxml = document_edxml(DIRECT_AGENCY, [DIRECT_RECIPIENT], number)
    genuine = document_id(DIRECT_AGENCY, number).encode()
    edxml = edxml.replace(genuine, genuine.replace(b",", b",\t", 1) + b"\n")
    return _send_direct(kit, edxml)


def _docid(party: Party, operation: str, doc_id: str, **extra: str) -> HostileRequest:
    return call(party, operation, {"docId": doc_id, **extra})


def _download_unknown(kit: Kit) -> HostileRequest:
    sdk = signed(kit.direct, {"docId": "no-such-docid"})
    return HostileRequest("downloadEdoc", sdk.signed_headers(), None, method="GET")


def _agency(code: str, parent: str) -> bytes:
    details = {"id": "1", "pcode": parent, "code": code, "name": "Đơn vị mới", "mail": "",
               "mobile": "", "fax": ""}  # fmt: skip
    return json.dumps(details, ensure_ascii=False).encode()


BUILDERS: Final[dict[str, Callable[[Kit], HostileRequest]]] = {
    "auth-wrong-hmac": _wrong_hmac,
    "auth-hmac-of-other-headers": _hmac_of_other_headers,
    "auth-unknown-system": _unknown_system,
    "auth-no-sign-header": _no_sign_header,
    "auth-no-hash-header": _no_hash_header,
    "auth-two-hash-headers": _two_hash_headers,
    "auth-two-sign-headers": _two_sign_headers,
    "auth-sign-header-not-json": _sign_header_not_json,
    "auth-sign-header-json-array": _sign_header_json_array,
    "auth-sign-header-non-string": _sign_header_non_string,
    "auth-no-systemid": _no_systemid,
    "auth-systemid-twice": _systemid_twice,
    "auth-huge-header": _huge_header,
    "send-from-unsigned": _from_unsigned,
    "send-from-plain-overrides": _from_plain_overrides,
    "send-no-hash-file": _no_hash_file,
    "send-hash-file-mismatch": _hash_file_mismatch,
    "send-body-too-large": _too_large,
    "send-body-too-large-chunked": _too_large_chunked,
    "send-messagetype-garbage": _messagetype_garbage,
    "send-status-as-edoc": _status_as_edoc,
    "send-edoc-as-status": _edoc_as_status,
    "send-from-not-acts-for": _from_not_acts_for,
    "send-from-outside-adapter": _from_outside_adapter,
    "send-edxml-from-differs": _edxml_from_differs,
    "send-edxml-from-other-adapter": _edxml_from_other_adapter,
    "send-take-back-to-not-array": _take_back_to_not_array,
    "send-take-back-without-to": _take_back_without_to,
    "send-not-well-formed": lambda kit: _from_file(kit, "not_well_formed.edxml"),
    "send-edxml-invalid": lambda kit: _from_file(kit, "missing_document_id.edxml"),
    "send-billion-laughs": lambda kit: _from_file(kit, "billion_laughs.edxml"),
    "send-xxe-file": lambda kit: _from_file(kit, "xxe_file.edxml"),
    "send-unknown-recipient": _unknown_recipient,
    "send-document-id-control-characters": _document_id_control_characters,
    "get-unknown-docid": lambda kit: _docid(kit.direct, "getEdoc", "no-such-docid"),
    "get-no-docid": lambda kit: call(kit.direct, "getEdoc", {"filePath": "edoc-files"}),
    "download-unknown-docid": _download_unknown,
    "update-unknown-docid": lambda kit: _docid(
        kit.direct, "updateStatus", "no-such-docid", status="done"
    ),
    "get-another-systems-docid": lambda kit: _docid(kit.hub_b, "getEdoc", kit.hub_a_doc_id),
    "update-another-systems-docid": lambda kit: _docid(
        kit.hub_b, "updateStatus", kit.hub_a_doc_id, status="done"
    ),
    "update-bad-status": lambda kit: _docid(kit.direct, "updateStatus", "x", status="03"),
    "get-sent-list-messagetype-garbage": lambda kit: call(
        kit.direct, "getSentEdocList", {"servicetype": "eDoc", "messagetype": "x"}
    ),
    "unknown-operation": lambda kit: call(kit.direct, "deleteEverything", {}),
    "register-agency-from-direct": lambda kit: call(
        kit.direct, "registerAgency", {}, body=_agency("000.01.00.G22", DIRECT_AGENCY)
    ),
    "register-agency-not-json": lambda kit: call(
        kit.hub_b, "registerAgency", {}, body=b"code=000.01.32.H53&pcode=000.00.32.H53"
    ),
    "register-agency-outside-subtree": lambda kit: call(
        kit.hub_b, "registerAgency", {}, body=_agency("000.01.00.G22", DIRECT_AGENCY)
    ),
    "delete-agency-outside-subtree": lambda kit: call(
        kit.hub_b, "deleteAgency", {"AgencyCode": HUB_A_AGENCY}
    ),
    "delete-agency-malformed-code": lambda kit: call(
        kit.hub_b, "deleteAgency", {"AgencyCode": "H5.3"}
    ),
}


def missing_builders(case_ids: list[str]) -> list[str]:
    return [case_id for case_id in case_ids if case_id not in BUILDERS]
