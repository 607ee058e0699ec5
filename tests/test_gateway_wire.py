"""The gateway's wire format and its small mechanisms, as pure logic."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json

import pytest

from adapters.gateway.operations import KeyedLocks
from adapters.gateway.wire import authenticate, file_of_body, response_bytes, unpadded_sha256_hex
from backbone.errors import GatewayError, Reason
from testkit.vxp_client import java_hashmap_order, sdk_timestamp

SECRET = b"s3cret"


def headers_for(sign: str, secret: bytes = SECRET) -> list[tuple[bytes, bytes]]:
    digest = hmac.new(secret, sign.encode(), hashlib.sha256).hexdigest()
    return [
        (b"XroadVnpt-sign-header", sign.encode()),
        (b"xroadvnpt-HASH-header", digest.encode()),
    ]


def secrets(system_id: str) -> bytes | None:
    return SECRET if system_id == "qlvb" else None


def test_the_hmac_is_checked_over_the_header_bytes_as_received_not_a_reserialisation() -> None:
    # Spacing and key order no JSON library would reproduce: still the bytes that were signed.
    sign = '{ "XroadVnpt-timestamp":"01012026T000000+0001",  "XroadVnpt-systemid":"qlvb" }'
    request = authenticate(headers_for(sign), secrets)
    assert request.system_id == "qlvb"
    assert request.get("TIMESTAMP") == "01012026T000000+0001"
    reserialised = json.dumps(json.loads(sign), separators=(",", ":"))
    tampered = [(headers_for(sign)[0]), (b"xroadvnpt-hash-header", headers_for(reserialised)[1][1])]
    with pytest.raises(GatewayError) as refused:
        authenticate(tampered, secrets)
    assert refused.value.reason is Reason.GATEWAY_SIGNATURE_INVALID


def test_only_signed_xroadvnpt_parameters_are_read() -> None:
    sign = json.dumps({"XroadVnpt-systemid": "qlvb", "from": "000.00.00.G22"})
    request = authenticate([*headers_for(sign), (b"XroadVnpt-from", b"000.00.00.H41")], secrets)
    assert request.get("from") is None  # neither the unprefixed signed key nor the plain header


def test_the_sdks_unpadded_hash_is_its_hex_bytes_without_leading_zeros() -> None:
    data = b"x" * 5
    digest = hashlib.sha256(data).digest()
    assert unpadded_sha256_hex(data) == "".join(format(byte, "x") for byte in digest)
    assert len(unpadded_sha256_hex(data)) < 64 or all(byte >= 16 for byte in digest)


@pytest.mark.parametrize("form", ["unpadded", "padded"])
def test_the_body_is_the_file_with_the_sdks_crlf_taken_off(form: str) -> None:
    file = b"<edXML/>"
    digest = unpadded_sha256_hex(file) if form == "unpadded" else hashlib.sha256(file).hexdigest()
    assert file_of_body(file + b"\r\n", digest) == file
    assert file_of_body(file, digest) == file  # a client without the trailer


def test_a_file_that_ends_in_crlf_keeps_it_when_its_hash_says_so() -> None:
    file = b"<edXML/>\r\n"
    assert file_of_body(file, unpadded_sha256_hex(file)) == file
    with pytest.raises(GatewayError) as refused:
        file_of_body(file, unpadded_sha256_hex(b"other"))
    assert refused.value.reason is Reason.GATEWAY_HASH_MISMATCH


def test_responses_are_ascii_with_escapes() -> None:
    assert (
        response_bytes({"ErrorDesc": "Đã đến"}) == b'{"ErrorDesc":"\\u0110\\u00e3 \\u0111\\u1ebfn"}'
    )


def test_the_sdk_timestamp_has_milliseconds_where_a_zone_would_be() -> None:
    from datetime import UTC, datetime

    assert sdk_timestamp(datetime(2026, 3, 4, 5, 6, 7, 89000, tzinfo=UTC)) == "04032026T050607+0089"


def test_the_header_map_iterates_in_javas_hashmap_order() -> None:
    """Orders printed by Java 17's HashMap (put in the SDK's order) on this machine."""
    puts = ["timestamp", "systemid", "Content-Type", "from", "servicetype", "messagetype"]
    puts += ["hash-file", "to", "docId", "filePath", "status", "docid"]
    java = {
        3: "systemid;timestamp;Content-Type",
        8: "systemid;servicetype;messagetype;hash-file;from;to;timestamp;Content-Type",
        12: "systemid;servicetype;messagetype;hash-file;docId;docid;filePath;from;to;timestamp;"
        "Content-Type;status",
    }
    for count, order in java.items():
        assert ";".join(java_hashmap_order(puts[:count])) == order


async def test_keyed_locks_serialise_one_key_and_forget_it_when_free() -> None:
    locks = KeyedLocks()
    trace: list[str] = []

    async def hold(name: str, key: str) -> None:
        async with locks.hold(key):
            trace.append(f"{name} in")
            await asyncio.sleep(0.01)
            trace.append(f"{name} out")

    await asyncio.gather(hold("a", "k"), hold("b", "k"), hold("c", "other"))
    assert trace.index("a out") < trace.index("b in")  # same key: one at a time
    assert trace.index("c in") < trace.index("a out")  # another key: at once
    assert len(locks) == 0
