"""What a dishonest sender can publish: a header of its own making, signed with its real key.

``seal`` refuses a header that is not bound to its parties, so attack tests seal an honest
envelope and then rewrite its header JSON and sign it again with the sender's key: the
envelope stays authentic (the router and recipients verify it) and only the claims change.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from cryptography.hazmat.primitives.asymmetric import rsa

from backbone.envelope import read_frame
from backbone.envelope.algorithms import sign
from backbone.envelope.wire import encode

__all__ = ["resigned"]


def resigned(
    body: bytes,
    key: rsa.RSAPrivateKey,
    edit: Callable[[dict[str, Any]], None] | None = None,
    **fields: Any,
) -> bytes:
    """``body`` with its header's ``fields`` set (and ``edit`` applied), signed by ``key``."""
    frame = read_frame(body)
    header = json.loads(frame.header_bytes)
    header.update(fields)
    if edit is not None:
        edit(header)
    data = json.dumps(header, ensure_ascii=False).encode()
    return encode(data, sign(key, data), frame.ciphertext)
