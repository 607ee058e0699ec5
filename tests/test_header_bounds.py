"""The header's bounds (``backbone.envelope.bounds``): computed from the model's own limits,
checked before pydantic, the first problem reported and nothing else built."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from backbone.envelope import EnvelopeHeader, KeyWrap, Kind, SealParties, read_frame, seal
from backbone.envelope.bounds import MAX_HEADER_BYTES, check_header, max_header_bytes
from backbone.envelope.bounds import widest_header as widest
from backbone.envelope.model import MAX_RECIPIENTS
from backbone.envelope.wire import encode
from backbone.errors import EnvelopeMalformedError
from tests.hostile.build import key_bomb, padded_header
from tests.support import DevPki, make_pki

SENDER, RECIPIENT = "000.00.00.G22", "000.00.00.H41"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> DevPki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def body(pki: DevPki) -> bytes:
    issued = pki.agency(SENDER)
    return seal(
        b"<edXML/>",
        SealParties(
            kind=Kind.DOCUMENT,
            sender=SENDER,
            sender_key=issued.key,
            sender_cert=issued.certificate,
            recipients={RECIPIENT: pki.agency(RECIPIENT).certificate},
            document_id=f"{SENDER},2026/11/30,1/VP",
            business_type=0,
        ),
    )


def _schema_max(definition: dict[str, object], name: str) -> int:
    field = definition["properties"]
    assert isinstance(field, dict)
    value = field[name]["maxLength"]
    assert isinstance(value, int)
    return value


# -- the bound --------------------------------------------------------------------------------


@pytest.mark.parametrize("recipients", [1, 2, 17, MAX_RECIPIENTS])
@pytest.mark.parametrize("kind", ["document", "status"])
def test_the_widest_header_is_valid_and_within_the_bound_for_its_recipients(
    recipients: int, kind: str
) -> None:
    header = widest(recipients, kind=kind)
    EnvelopeHeader.model_validate_json(header)  # every value really is one the model allows
    check_header(header)
    assert len(header) <= max_header_bytes(recipients)
    assert len(widest(recipients, kind=kind, text=":")) <= max_header_bytes(recipients)


def test_the_bound_is_the_widest_status_exactly_and_grows_by_one_key_wrap_per_recipient() -> None:
    assert len(widest(MAX_RECIPIENTS, kind="status")) == MAX_HEADER_BYTES
    assert max_header_bytes(MAX_RECIPIENTS) == MAX_HEADER_BYTES
    # Independently of the builder: the published JSON Schema's limits give one recipient's
    # bytes: its code in `recipients` and its key wrap, each with a separating comma.
    schema = json.loads(Path("schemas/envelope/envelope-header.schema.json").read_text())
    # The longest code is a Decision 20/2020 one at the schema's maxLength.
    code = "X" * _schema_max(schema["$defs"]["KeyWrap"], "recipient")
    wrap = '{"recipient":"%s","cert_sha256":"%s","alg":"RSA-OAEP-256","wrapped_key":"%s"}'
    one_wrap = wrap % (
        code,
        "f" * 64,
        "A" * _schema_max(schema["$defs"]["KeyWrap"], "wrapped_key"),
    )
    per_recipient = len(f',"{code}"') + len("," + one_wrap)
    assert max_header_bytes(2) - max_header_bytes(1) == per_recipient
    # Free text counts at its longest escape, 12 bytes a character (1 for plain ASCII).
    document_id = _schema_max(schema, "document_id")
    status_note = schema["properties"]["status_note"]["anyOf"][0]["maxLength"]
    plain = len(widest(1, kind="status", text="a"))
    assert max_header_bytes(1) - plain == 11 * (document_id + status_note)


def test_a_genuine_header_is_well_within_its_bound(body: bytes) -> None:
    frame = read_frame(body)
    assert len(frame.header_bytes) < max_header_bytes(1) / 2


# -- the pre-check ----------------------------------------------------------------------------


def test_100000_unknown_keys_are_refused_by_counting_before_any_is_parsed(body: bytes) -> None:
    bomb = key_bomb(body, 100_000)
    started = time.perf_counter()
    with pytest.raises(EnvelopeMalformedError) as caught:
        read_frame(bomb)
    elapsed = time.perf_counter() - started
    assert "it holds 100" in caught.value.message
    assert "':' bytes; a header for 1000 recipients holds at most" in caught.value.message
    # pydantic took ≈1 s for these (one error object per key); counting takes ≈1 ms.
    assert elapsed < 0.1, elapsed


def test_the_first_unknown_field_is_named_and_no_more(body: bytes) -> None:
    frame = read_frame(body)
    header = frame.header_bytes[:-1] + b',"route_via":"x","also":1,"more":2}'
    with pytest.raises(EnvelopeMalformedError) as caught:
        read_frame(encode(header, frame.signature, frame.ciphertext))
    assert caught.value.message == (
        "header does not match the envelope schema: unknown field 'route_via'"
    )


def test_a_field_given_twice_is_refused(body: bytes) -> None:
    frame = read_frame(body)
    header = frame.header_bytes[:-1] + b',"kind":"status"}'
    with pytest.raises(EnvelopeMalformedError, match="field 'kind' appears twice"):
        check_header(header)


def test_more_objects_than_key_wraps_are_refused_at_the_first_one_over() -> None:
    fields = json.loads(widest(1, kind="document"))
    fields["key_wraps"] = [{}] * (MAX_RECIPIENTS + 5)
    with pytest.raises(EnvelopeMalformedError, match="more than 1001 JSON objects"):
        check_header(json.dumps(fields).encode())


def test_more_recipients_than_allowed_are_refused_before_the_schema() -> None:
    fields = json.loads(widest(1, kind="document"))
    fields["recipients"] = ["000.00.00.H41"] * (MAX_RECIPIENTS + 1)
    with pytest.raises(EnvelopeMalformedError, match="1001 recipients; at most 1000"):
        check_header(json.dumps(fields).encode())


def test_a_signed_header_larger_than_its_recipients_allow_is_refused(
    pki: DevPki, body: bytes
) -> None:
    limit = max_header_bytes(1)
    just_fits = padded_header(body, pki.agency(SENDER), limit)
    assert read_frame(just_fits).header.sender == SENDER  # schema-valid, authentic
    with pytest.raises(EnvelopeMalformedError) as caught:
        read_frame(padded_header(body, pki.agency(SENDER), limit + 1))
    assert caught.value.message == (
        f"header is {limit + 1} bytes; a header for 1 recipient(s) is at most {limit} bytes"
    )


def test_bad_values_in_many_key_wraps_give_a_few_errors_not_thousands() -> None:
    fields = json.loads(widest(MAX_RECIPIENTS, kind="document"))
    fields["recipients"] = ["x"] * MAX_RECIPIENTS
    for wrap in fields["key_wraps"]:
        wrap.update(recipient="x", cert_sha256="x", alg="x", wrapped_key="!")
    header = json.dumps(fields, separators=(",", ":")).encode()
    check_header(header)  # names and sizes are right: the values are the schema's business
    with pytest.raises(EnvelopeMalformedError) as caught:
        read_frame(encode(header, b"s", b""))
    assert caught.value.message.endswith("; and 2 more")  # fail_fast: the first bad item


def test_json_that_is_not_an_object_or_not_utf8_is_left_to_the_schema() -> None:
    for header in (b"[1, 2]", b'{"kind": "k\xe9"}', b"{" * 5000):
        check_header(header)  # pydantic reports these in one error


def _refusal(header: bytes) -> str | None:
    """None when the header is read; the message when it is refused as malformed (any other
    exception fails the test)."""
    try:
        read_frame(encode(header, b"s", b""))
    except EnvelopeMalformedError as error:
        return error.message
    return None


_NAMES = sorted({*EnvelopeHeader.model_fields, *KeyWrap.model_fields})
_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: (
        st.lists(inner, max_size=8)
        | st.dictionaries(st.sampled_from(_NAMES) | st.text(max_size=8), inner, max_size=8)
    ),
    max_leaves=60,
)


@settings(max_examples=300, deadline=None)
@given(value=_JSON)
def test_any_json_header_is_read_or_refused_as_malformed_never_a_crash(value: object) -> None:
    refusal = _refusal(json.dumps(value).encode())
    assert refusal is None or refusal.startswith("header"), refusal


@settings(max_examples=300, deadline=None)
@given(header=st.binary(max_size=2000))
def test_any_header_bytes_are_read_or_refused_as_malformed_never_a_crash(header: bytes) -> None:
    refusal = _refusal(header)
    assert refusal is None or refusal.startswith("header"), refusal
