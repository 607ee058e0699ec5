"""The gateway's HTTP face: one route per operation, ``<endpoint>/<operation>``.

Every response is the axis' JSON shape (``status``, ``ErrorCode``, ``ErrorDesc`` and the
operation's fields), refusals included: the SDK ignores the HTTP status and reads the body,
and hands its caller nothing when a field is missing. The HTTP status is still meaningful
for other clients and for operators' logs (401, 403, 404, 413, 503…). ``downloadEdoc``
answers the edXML bytes themselves, and a refusal with an empty body (the SDK writes whatever
body it gets into ``<docId>.edxml`` and reports success unless it is empty) and the three
fields in ``XroadVnpt-status``, ``XroadVnpt-ErrorCode`` and ``XroadVnpt-ErrorDesc`` headers.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Final

import structlog
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, Response, StreamingResponse
from starlette.routing import Route

from adapters.gateway.operations import Operations
from adapters.gateway.systems import ResolvedSystem
from adapters.gateway.wire import OK, SignedRequest, authenticate, response_bytes
from backbone.errors import BackboneError, GatewayError, Reason

__all__ = ["BodySpool", "gateway_app"]

log = structlog.get_logger("adapters.gateway")

_HTTP_STATUS: Final = {
    Reason.GATEWAY_SYSTEM_UNKNOWN: 401,
    Reason.GATEWAY_SIGNATURE_INVALID: 401,
    Reason.GATEWAY_SENDER_NOT_PERMITTED: 403,
    Reason.GATEWAY_AGENCY_CHANGE_REFUSED: 403,
    Reason.GATEWAY_DOCUMENT_UNKNOWN: 404,
    Reason.GATEWAY_OPERATION_UNKNOWN: 404,
    Reason.GATEWAY_BODY_TOO_LARGE: 413,
    Reason.BROKER_UNAVAILABLE: 503,
    Reason.BROKER_LOGIN_REFUSED: 503,
}
_DOWNLOAD: Final = "downloadEdoc"
_SEND: Final = "sendEdoc"
_BASE64_BLOCK: Final = 3 << 18  # 768 KiB read, 1 MiB of base64 written
_MESSAGE_LIMIT: Final = 1000  # characters of an ErrorDesc


def gateway_app(
    operations: Operations,
    systems: Mapping[str, ResolvedSystem],
    *,
    max_body_bytes: int,
    spool: BodySpool | None = None,
) -> Starlette:
    """``spool``: where ``sendEdoc`` bodies larger than one chunk go (then sent in chunks
    from disk); without it they are held up to ``max_body_bytes``, like every body."""

    def secret_of(system_id: str) -> bytes | None:
        system = systems.get(system_id)
        return system.secret if system is not None else None

    async def handle(request: Request) -> Response:
        name = request.path_params["operation"]
        signed: SignedRequest | None = None
        try:
            if name != _DOWNLOAD and name not in operations.table:
                raise GatewayError(
                    f"{request.url.path} is not an operation of the axis' API",
                    reason=Reason.GATEWAY_OPERATION_UNKNOWN,
                )
            signed = authenticate(request.headers.raw, secret_of)
            if name == _DOWNLOAD:
                data = await operations.received_bytes(signed)
                if isinstance(data, Path):  # came in chunks: streamed from disk
                    return FileResponse(data, media_type="application/octet-stream")
                return Response(data, media_type="application/octet-stream")
            if name == _SEND and spool is not None:
                received = await spool.receive(request, max_body_bytes)
                if isinstance(received, Path):
                    try:
                        fields = await operations.send_edoc_file(signed, received)
                    finally:
                        received.unlink(missing_ok=True)
                    return _json({**OK, **fields})
                body = received
            else:
                body = await _body(request, max_body_bytes)
            fields = await operations.table[name](signed, body)
            return _json({**OK, **fields})
        except BackboneError as error:
            log.warning(
                "gateway.refused_request",
                operation=name,
                system=signed.system_id if signed else None,
                reason=error.reason.value,
                error=error.message[:_MESSAGE_LIMIT],
                outcome="fail",
            )
            status = _HTTP_STATUS.get(error.reason, 400)
            if name == _DOWNLOAD:
                return _empty_failure(_failure(name, error), status)
            return _json(_failure(name, error), status=status)
        except Exception:
            log.exception("gateway.failed", operation=name, outcome="fail")
            failure = BackboneError("the gateway failed on this request; it is in its log")
            return _json(_failure(name, failure), status=500)

    return Starlette(routes=[Route("/{operation}", handle, methods=["GET", "POST"])])


async def _body(request: Request, limit: int) -> bytes:
    """The body, refused past ``limit`` bytes (by its Content-Length before reading)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise _too_large(int(declared), limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _too_large(size, limit)
        chunks.append(chunk)
    return b"".join(chunks)


def _too_large(size: int, limit: int, key: str = "max_envelope_bytes") -> GatewayError:
    return GatewayError(
        f"the body is {size} bytes or more; this gateway takes at most {limit} ({key})",
        reason=Reason.GATEWAY_BODY_TOO_LARGE,
    )


def _failure(operation: str, error: BackboneError) -> dict[str, object]:
    fields: dict[str, object] = {
        "status": "FAIL",
        "ErrorCode": error.reason.value,
        "ErrorDesc": _description(error),
    }
    if operation == "sendEdoc":
        fields["DocId"] = ""  # the SDK reads it whatever the status
    return fields


def _description(error: BackboneError) -> str:
    text = error.message
    line, path = getattr(error, "line", None), getattr(error, "path", None)
    if line is not None and f"line {line}" not in text:
        text += f" (line {line}{f', {path}' if path else ''})"
    return text[:_MESSAGE_LIMIT]


def _empty_failure(fields: Mapping[str, object], status: int) -> Response:
    # Header values in ASCII: non-ASCII escaped as in the JSON responses.
    headers = {
        f"XroadVnpt-{name}": json.dumps(str(value), ensure_ascii=True)[1:-1]
        for name, value in fields.items()
    }
    return Response(b"", status_code=status, headers=headers)


def _json(fields: Mapping[str, object], *, status: int = 200) -> Response:
    files = {name: value for name, value in fields.items() if isinstance(value, Path)}
    if files:  # getEdoc of a document that came in chunks: base64 as the file is read
        return StreamingResponse(_streamed_json(fields, files), media_type="application/json")
    return Response(response_bytes(fields), status_code=status, media_type="application/json")


def _streamed_json(fields: Mapping[str, object], files: Mapping[str, Path]) -> Iterator[bytes]:
    """The JSON of ``fields`` with each file's value its base64, encoded a block at a time
    (whole groups of 3 bytes: no padding but at the end), never the whole file at once."""
    plain = response_bytes({k: v for k, v in fields.items() if k not in files})
    yield plain[:-1]  # without its closing brace
    for index, (name, path) in enumerate(files.items()):
        comma = b"," if index or len(plain) > 2 else b""
        yield comma + response_bytes({name: ""})[1:-2]  # "name":"
        with path.open("rb") as source:
            while block := source.read(_BASE64_BLOCK):
                yield base64.b64encode(block)
        yield b'"'
    yield b"}"


class BodySpool:
    """``sendEdoc`` bodies larger than ``memory_bytes`` written to files in ``directory``
    as they arrive (up to ``file_bytes``), so that a large document is never held whole."""

    def __init__(self, directory: Path, *, memory_bytes: int, file_bytes: int) -> None:
        shutil.rmtree(directory, ignore_errors=True)  # bodies of requests never answered
        directory.mkdir(parents=True)
        self.directory = directory
        self.memory_bytes = memory_bytes
        self.file_bytes = file_bytes

    async def receive(self, request: Request, memory_limit: int) -> bytes | Path:
        """The body in memory when it stays within ``memory_bytes`` (and ``memory_limit``),
        else the file it was written to; refused past ``file_bytes``."""
        in_memory = min(self.memory_bytes, memory_limit)
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.file_bytes:
            raise _too_large(int(declared), self.file_bytes, "max_document_bytes")
        chunks: list[bytes] = []
        size = 0
        stream = request.stream()
        async for chunk in stream:
            size += len(chunk)
            chunks.append(chunk)
            if size > in_memory:
                break
        else:
            return b"".join(chunks)
        fd, name = tempfile.mkstemp(dir=self.directory, suffix=".body")
        path = Path(name)
        try:
            with os.fdopen(fd, "wb") as file:
                for chunk in chunks:
                    file.write(chunk)
                chunks.clear()
                async for chunk in stream:
                    size += len(chunk)
                    if size > self.file_bytes:
                        raise _too_large(size, self.file_bytes, "max_document_bytes")
                    await asyncio.to_thread(file.write, chunk)
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        return path
