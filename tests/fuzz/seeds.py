"""Where each target's seed corpus comes from.

edXML: the interop files of ``../shared/interop/edxml/`` (read in place; skipped with a
message when absent), ``tests/edxml_samples/`` and the hostile corpus' inputs. Envelopes:
a few genuine ones sealed now with a throwaway development PKI. Events: genuine messages
made with ``encode_events``. DocumentIds: genuine ids and near misses. Gateway: the
requests the vendor SDK sends (``testkit.vxp_client.SdkClient``, a fixed secret and
timestamp) and malformed variants of them. Every target also starts from its own kept
regression inputs.
"""

from __future__ import annotations

import hashlib
import re
import sys
import tempfile
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from cryptography.x509 import Certificate

from backbone.envelope import SealParties, seal
from backbone.errors import Reason
from backbone.wire.events import Event, EventType, encode_events
from testkit import make_pki
from testkit.vxp_client import SdkClient
from tests.fuzz.gateway_request import encode_request
from tests.fuzz.targets import GATEWAY_SECRET, GATEWAY_SYSTEM

__all__ = ["REGRESSIONS", "seed_dirs"]

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
REGRESSIONS = HERE / "regressions"
INTEROP_EDXML = REPO.parent / "shared" / "interop" / "edxml"
EDXML_DIRS = (
    INTEROP_EDXML,
    REPO / "tests" / "edxml_samples",
    REPO / "tests" / "hostile" / "inputs",
)

_SENDER = "000.00.00.G22"
_RECIPIENTS = ("000.00.00.H41", "000.00.00.H14", "000.00.00.G17")
_DOCUMENT_ID = f"{_SENDER},2015/09/30,7816/VPCP-TTĐT"
_AT = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def seed_dirs(target: str, scratch: Path) -> list[Path]:
    """The directories libFuzzer reads ``target``'s seeds from (only ever read)."""
    dirs = [REGRESSIONS / target] if (REGRESSIONS / target).is_dir() else []
    if target == "edxml":
        for directory in EDXML_DIRS:
            if directory.is_dir():
                dirs.append(directory)
            else:
                print(f"fuzz: no seeds from {directory} (absent); skipped", file=sys.stderr)
        return dirs
    made = scratch / f"seeds-{target}"
    made.mkdir(parents=True, exist_ok=True)
    for number, data in enumerate(_MAKERS[target]()):
        (made / f"seed-{number:02d}").write_bytes(data)
    return [*dirs, made]


def _envelopes() -> list[bytes]:
    document = (REPO / "tests" / "edxml_samples" / "document.edxml").read_bytes()
    status = (REPO / "tests" / "edxml_samples" / "status.edxml").read_bytes()
    with tempfile.TemporaryDirectory(prefix="fuzz-pki-") as directory:
        pki = make_pki(Path(directory) / "ca")
        to = {code: pki.agency(code).certificate for code in _RECIPIENTS}

        def sealed(
            edxml: bytes, sender: str, recipients: dict[str, Certificate], **fields: Any
        ) -> bytes:
            signer = pki.agency(sender)
            return seal(
                edxml,
                SealParties(
                    sender=sender,
                    sender_key=signer.key,
                    sender_cert=signer.certificate,
                    recipients=recipients,
                    document_id=_DOCUMENT_ID,
                    **fields,
                ),
            )

        first = dict(list(to.items())[:1])
        back = {_SENDER: pki.agency(_SENDER).certificate}  # a status goes to the sender
        return [
            sealed(document, _SENDER, first, kind="document", business_type=0),
            sealed(document, _SENDER, to, kind="document", business_type=0),
            sealed(
                status,
                _RECIPIENTS[0],
                back,
                kind="status",
                status_code="03",
                status_note="Đã tiếp nhận",
            ),
        ]


def _events() -> list[bytes]:
    def event(type: EventType, **fields: object) -> Event:
        return Event.model_validate(
            {"type": type, "event_id": "e-1", "at": _AT, "party": _SENDER, **fields}
        )

    about = {"envelope_id": "env-1", "document_id": _DOCUMENT_ID, "sender": _SENDER}
    return [
        encode_events(
            [
                event(
                    EventType.ROUTED,
                    recipients=_RECIPIENTS,
                    kind="document",
                    business_type=0,
                    **about,
                )
            ]
        ),
        encode_events(
            [
                event(
                    EventType.REJECTED,
                    reason=Reason.SIGNATURE_INVALID,
                    message="signature does not verify",
                    **about,
                )
            ]
        ),
        encode_events(
            [
                event(EventType.STATUS, status_code="03", recipients=_RECIPIENTS[:1], **about),
                event(EventType.OVERDUE, **about),
            ]
        ),
        encode_events([event(EventType.DUPLICATE, original_outcome="routed", **about)]),
        b"[]",
    ]


def _document_ids() -> list[bytes]:
    ids = [_DOCUMENT_ID, "000.00.00.H41,2024/02/29,12/UBND-VP", "G22,2015/09/30,1/A"]
    for directory in EDXML_DIRS:  # the ids the real samples carry
        for path in sorted(directory.glob("*.edxml")) if directory.is_dir() else ():
            text = path.read_bytes()[: 64 * 1024].decode("utf-8", "replace")
            ids += re.findall(r"<(?:\w+:)?DocumentId>([^<]{1,600})</", text)
    return [text.encode() for text in dict.fromkeys(ids)]


class _CapturingSdk(SdkClient):
    """The SDK's requests, captured instead of sent: each call's headers and body."""

    def __init__(self) -> None:
        super().__init__("http://gateway.invalid", GATEWAY_SYSTEM, GATEWAY_SECRET, _AT)
        self.requests: list[tuple[list[tuple[bytes, bytes]], bytes]] = []

    def _call(
        self,
        operation: str,
        *,
        method: str = "POST",
        body: bytes | None = None,
        headers: Sequence[tuple[str, str]] | None = None,
        url_connection: bool = False,
    ) -> httpx.Response:
        sent = headers or self.signed_headers()
        raw = [(name.encode(), value.encode()) for name, value in sent]
        self.requests.append((raw, body or b""))
        return httpx.Response(200, content=b'{"status":"OK","ErrorCode":"0","ErrorDesc":""}')


def _gateway_requests() -> list[bytes]:
    edxml = (REPO / "tests" / "edxml_samples" / "document.edxml").read_bytes()
    status = (REPO / "tests" / "edxml_samples" / "status.edxml").read_bytes()
    sdk = _CapturingSdk()
    sdk.send_edoc(edxml, sender=_SENDER, to=list(_RECIPIENTS))
    sdk.send_edoc(status, sender=_RECIPIENTS[0], message_type="status", to=_SENDER)
    sdk.received_list()
    sdk.get_edoc("1234")
    sdk.update_status("1234", "done")
    sdk.sent_list("1234", "status")
    sdk.download("1234")
    genuine = [encode_request(headers, body) for headers, body in sdk.requests]
    headers, body = sdk.requests[0]  # the sendEdoc of a document, made malformed
    plain = hashlib.sha256(edxml).hexdigest().encode()
    [hash_header] = [h for h in headers if h[0] == b"XroadVnpt-hash-header"]

    def changed(name: bytes, value: bytes | None) -> list[tuple[bytes, bytes]]:
        """``name``'s value replaced (dropped when None); the signature left as it was."""
        out = [(n, value if n == name else v) for n, v in headers]
        return [(n, v) for n, v in out if v is not None]

    def signed_json(text: str) -> list[tuple[bytes, bytes]]:
        return changed(b"XroadVnpt-sign-header", text.encode())

    return [
        *genuine,
        encode_request(headers, edxml),  # no CRLF after the file
        encode_request(headers, body + b"\r\n"),
        encode_request(changed(b"XroadVnpt-hash-header", b"0" * 64), body),
        encode_request(changed(b"XroadVnpt-sign-header", None), body),
        encode_request([*headers, hash_header], body),  # two hash headers
        encode_request([(n.lower(), v.upper()) for n, v in headers], body),
        encode_request(signed_json('{"XroadVnpt-systemid":"qlvb","XroadVnpt-to":"A,B"}'), b""),
        encode_request(signed_json('{"XroadVnpt-systemid":"qlvb","XroadVnpt-to":"[1]"}'), b""),
        encode_request(
            signed_json(
                '{"XroadVnpt-systemid":"qlvb","XroadVnpt-messagetype":"fax",'
                f'"XroadVnpt-hash-file":"{plain.decode()}"}}'
            ),
            edxml,
        ),
        encode_request(signed_json('{"XroadVnpt-systemid":"qlvb","xroadvnpt-SYSTEMID":"x"}'), b""),
        encode_request(signed_json('["XroadVnpt-systemid","qlvb"]'), body),
        encode_request(signed_json('{"XroadVnpt-systemid":7}'), body),
        encode_request(signed_json('{"XroadVnpt-systemid":"other"}'), body),
        encode_request(changed(b"XroadVnpt-sign-header", b"\xff\xfe{\x00"), body),
    ]


_MAKERS = {
    "envelope": _envelopes,
    "events": _events,
    "document_id": _document_ids,
    "gateway": _gateway_requests,
}
