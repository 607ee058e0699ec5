"""The gateway target's input: one HTTP request as header lines and a body.

``name: value`` lines separated by CRLF, a blank line, then the body, as on the wire: the
seeds are real SDK requests written this way, and libFuzzer's mutations stay meaningful
(a changed byte is a changed header or body byte, not a changed length field). Decoding
never refuses: a line without a colon is a header with that name and an empty value, so
names and values reach the gateway as any bytes at all (more than an HTTP server passes).
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["decode_request", "encode_request"]

_LINE = b"\r\n"
_END_OF_HEADERS = b"\r\n\r\n"


def encode_request(headers: Sequence[tuple[bytes, bytes]], body: bytes) -> bytes:
    lines = b"".join(name + b": " + value + _LINE for name, value in headers)
    return lines + _LINE + body


def decode_request(data: bytes) -> tuple[list[tuple[bytes, bytes]], bytes]:
    """``(raw headers, body)``; a value loses the blanks around it, as h11 takes them off."""
    block, _, body = data.partition(_END_OF_HEADERS)
    headers = []
    for line in block.split(_LINE):
        if line:
            name, _, value = line.partition(b":")
            headers.append((name, value.strip(b" \t")))
    return headers, body
