"""A client that speaks the axis' API exactly as the vendor's Java SDK does
(``com.vpcp.services.KnobstickServiceImp``, ../shared/vxp-api.md): the same header map
(kept between calls, leftovers included, iterated in Java ``HashMap`` order), the same
``XroadVnpt-*`` headers and HMAC, the same ``timestamp`` (set once, when the client is
made), ``hash-file`` without zero padding, the file's bytes followed by CRLF, and responses
read as the SDK reads them (a response missing a field is ``None``, as the SDK hands it).
Each call is framed as the SDK's own HTTP path frames it (the SDK 2.0.1 seen on the wire):
the lists go through Apache HttpClient with an empty form entity (no body, no ``Expect``);
``getEdoc``, ``updateStatus`` and the counts with a ``{}`` entity (``Expect:
100-continue``), always as POST; ``downloadEdoc`` as a bare GET; ``sendEdoc`` through
``HttpURLConnection`` (``Content-Type`` first, no ``Expect``, no ``Accept-Encoding``, its
own ``Accept``, ``Cache-Control`` and ``Pragma``).

For tests and the sandbox only: this is the software's side, not the backbone's.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx

__all__ = ["SdkClient", "gson_string", "java_hashmap_order", "sdk_hash_file", "sdk_timestamp"]

USER_AGENT = "JAVASDKAgent/1.0.0 XRoad/VPCP"
VERSION = "3.0.201608"

# HttpConnection.sendPost: an empty UrlEncodedFormEntity, so Content-Length 0 and no Expect.
_EMPTY_BODY_OPERATIONS = frozenset(
    {
        "getReceivedEdocList",
        "getSentEdocList",
        "getAgenciesList",
        "getAgenciesListQD20",
        "getSynchronizeUnit",
    }
)
# Apache HttpClient adds these; it sends no Accept.
_HTTP_CLIENT = (("Accept-Encoding", "gzip,deflate"),)
# java.net.HttpURLConnection (MultipartUtility, sendEdoc only) adds these.
_URL_CONNECTION = (
    ("Cache-Control", "no-cache"),
    ("Pragma", "no-cache"),
    ("Accept", "text/html, image/gif, image/jpeg, */*; q=0.2"),
)


def java_string_hash(text: str) -> int:
    """``String.hashCode()``: over UTF-16 code units, 32-bit signed arithmetic."""
    value = 0
    data = text.encode("utf-16-be")
    for index in range(0, len(data), 2):
        value = (31 * value + int.from_bytes(data[index : index + 2], "big")) & 0xFFFFFFFF
    return value


def java_hashmap_order(keys: list[str]) -> list[str]:
    """The iteration order of a ``java.util.HashMap`` holding ``keys`` put in this order:
    by bucket ``(h ^ h>>>16) & (n-1)``, insertion order within a bucket; the table starts
    at 16 and doubles past 0.75 full."""
    capacity = 16
    while len(keys) > capacity * 0.75:
        capacity *= 2
    buckets: dict[int, list[str]] = {}
    for key in keys:
        h = java_string_hash(key)
        buckets.setdefault((h ^ (h >> 16)) & (capacity - 1), []).append(key)
    return [key for index in sorted(buckets) for key in buckets[index]]


def gson_string(value: str) -> str:
    """A JSON string as Gson's ``JsonWriter`` writes it (non-ASCII kept, no HTML escaping)."""
    out = ['"']
    for char in value:
        code = ord(char)
        if char in '"\\':
            out.append("\\" + char)
        elif char in "\t\b\n\r\f":
            out.append({"\t": "\\t", "\b": "\\b", "\n": "\\n", "\r": "\\r", "\f": "\\f"}[char])
        elif code < 0x20 or char in "\u2028\u2029":
            out.append(f"\\u{code:04x}")
        else:
            out.append(char)
    out.append('"')
    return "".join(out)


def sdk_hash_file(data: bytes) -> str:
    """``createContentHA256``: SHA-256 in hex, each byte with ``Integer.toHexString`` (no
    zero padding)."""
    return "".join(f"{byte:x}" for byte in hashlib.sha256(data).digest())


def sdk_timestamp(at: datetime) -> str:
    """``new SimpleDateFormat("ddMMyyyy'T'HHmmss+SSSS")``: SSSS is milliseconds."""
    return at.strftime("%d%m%YT%H%M%S") + f"+{at.microsecond // 1000:04d}"


@dataclass
class SdkClient:
    """One ``KnobstickServiceImp`` (``endpoint``, ``systemid``, ``secret``), made at ``now``."""

    endpoint: str
    system_id: str
    secret: str
    now: datetime
    verify: Any = True  # httpx's: a CA file path for HTTPS
    headers: dict[str, str] = field(default_factory=dict)
    last_request_headers: list[tuple[str, str]] = field(default_factory=list)
    # Called as each request leaves (after the client's own set-up): fault tests time
    # their kills from it.
    on_request: Callable[[], None] | None = None

    def __post_init__(self) -> None:
        self.headers["timestamp"] = sdk_timestamp(self.now)
        self.headers["systemid"] = self.system_id

    # -- the wire ------------------------------------------------------------------------

    def signed_headers(self) -> list[tuple[str, str]]:
        """``addXroadVnptHashHeader()``: every map entry as ``XroadVnpt-k``, Content-Type
        also under its own name, then the signature headers."""
        out: list[tuple[str, str]] = []
        parts: list[str] = []
        names: list[str] = []
        for key in java_hashmap_order(list(self.headers)):
            value = self.headers[key]
            if key == "Content-Type":
                out.append((key, value))
            parts.append(f"{gson_string('XroadVnpt-' + key)}:{gson_string(value)}")
            out.append((f"XroadVnpt-{key}", value))
            names.append(key)
        sign = "{" + ",".join(parts) + "}"
        digest = hmac.new(self.secret.encode(), sign.encode(), hashlib.sha256).hexdigest()
        out += [
            ("XroadVnpt-sign-header-key", ";".join(names)),
            ("XroadVnpt-sign-header", sign),
            ("XroadVnpt-hash-header", digest),
            ("User-Agent", USER_AGENT),
            ("XroadVnpt-version", VERSION),
        ]
        return out

    def _put(self, params: Mapping[str, object]) -> None:
        for key, value in params.items():
            # sendEdoc keeps `to` as JSON text; the others take the value as a string.
            self.headers[key] = value if isinstance(value, str) else json.dumps(value)

    def framed_headers(
        self,
        body: bytes | None,
        headers: Sequence[tuple[str, str]] | None,
        url_connection: bool,
    ) -> list[tuple[str, str]]:
        """The call's headers as the SDK sends them (see :meth:`_call`), kept in
        ``last_request_headers``."""
        framed = [*(headers or self.signed_headers())]
        if url_connection:
            framed += _URL_CONNECTION
        else:
            framed += _HTTP_CLIENT
            if body:
                framed.append(("Expect", "100-continue"))  # its RequestConfig asks for it
        self.last_request_headers = framed
        return framed

    def _call(
        self,
        operation: str,
        *,
        method: str = "POST",
        body: bytes | None = None,
        headers: Sequence[tuple[str, str]] | None = None,
        url_connection: bool = False,
    ) -> httpx.Response:
        """``url_connection``: framed as HttpURLConnection (sendEdoc), else as HttpClient."""
        headers = self.framed_headers(body, headers, url_connection)
        hooks: dict[str, list[Callable[[httpx.Request], None]]] = {}
        if (on_request := self.on_request) is not None:
            hooks["request"] = [lambda _: on_request()]
        with httpx.Client(verify=self.verify, timeout=60, event_hooks=hooks) as http:
            for name in ("Accept", "Accept-Encoding"):  # httpx's defaults, not the SDK's
                del http.headers[name]
            return http.request(
                method, f"{self.endpoint}/{operation}", headers=headers, content=body
            )

    def json_call(
        self, operation: str, params: Mapping[str, object] | None = None, *, method: str = "POST"
    ) -> dict[str, Any] | None:
        """A JSON operation; ``None`` where the SDK would hand its caller null. The SDK
        itself POSTs every one of them, even those it names GET (the counts)."""
        self.headers["Content-Type"] = "application/json"
        self._put(params or {})
        body = b"" if operation in _EMPTY_BODY_OPERATIONS else b"{}"
        return _as_sdk_reads(self._call(operation, method=method, body=body).content)

    # -- the operations ------------------------------------------------------------------

    def send_edoc(
        self,
        edxml: bytes,
        *,
        sender: str,
        message_type: str = "edoc",
        to: list[str] | str | None = None,
    ) -> dict[str, Any] | None:
        """``to``: the caller's JSON value, which the SDK hands on as JSON text (Gson's
        ``toString()``): an array as ``["A","B"]``, a string quotes and all."""
        self.headers["Content-Type"] = "application/octet-stream"
        params: dict[str, object] = {
            "from": sender,
            "servicetype": "eDoc",
            "messagetype": message_type,
        }
        if isinstance(to, str):
            params["to"] = gson_string(to)
        elif to is not None:
            params["to"] = "[" + ",".join(gson_string(code) for code in to) + "]"
        self._put(params)
        self.headers["hash-file"] = sdk_hash_file(edxml)
        # HttpURLConnection keeps Content-Type where MultipartUtility first set it: first.
        signed = self.signed_headers()
        headers = [h for h in signed if h[0] == "Content-Type"]
        headers += [h for h in signed if h[0] != "Content-Type"]
        response = self._call(
            "sendEdoc", body=edxml + b"\r\n", headers=headers, url_connection=True
        )
        # The SDK reads sendEdoc's response as US-ASCII.
        return _as_sdk_reads(response.content.decode("ascii", "replace").encode(), "DocId")

    def received_list(self, message_type: str = "edoc") -> dict[str, Any] | None:
        return self.json_call(
            "getReceivedEdocList", {"servicetype": "eDoc", "messagetype": message_type}
        )

    def get_edoc(self, doc_id: str) -> dict[str, Any] | None:
        return self.json_call("getEdoc", {"docId": doc_id, "filePath": "edoc-files"})

    def download(self, doc_id: str) -> httpx.Response:
        self.headers["Content-Type"] = "application/json"
        self._put({"docId": doc_id})
        return self._call("downloadEdoc", method="GET")

    def update_status(self, doc_id: str, status: str) -> dict[str, Any] | None:
        return self.json_call("updateStatus", {"docId": doc_id, "status": status})

    def sent_list(self, doc_id: str = "", message_type: str = "edoc") -> dict[str, Any] | None:
        return self.json_call(
            "getSentEdocList",
            {"servicetype": "eDoc", "messagetype": message_type, "docId": doc_id},
        )


def _as_sdk_reads(content: bytes, *required: str) -> dict[str, Any] | None:
    try:
        found = json.loads(content)
    except ValueError:
        return None
    if not isinstance(found, dict):
        return None
    if any(name not in found for name in ("status", "ErrorCode", "ErrorDesc", *required)):
        return None
    return found
