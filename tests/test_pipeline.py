"""The router's pipeline: every check in order, each refusal with its stable reason and a
message naming the offending value, and the decisions the service acts on."""

from __future__ import annotations

import base64
import json
import re
import struct
import threading
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from backbone.devtools.ca import IssuedCertificate
from backbone.directory import Directory, DirectoryBuilder, agency_account, hub_account
from backbone.envelope import Kind, SealParties, max_header_bytes, read_frame, seal
from backbone.envelope.wire import encode
from backbone.errors import DirectoryError, Reason, StoreUnavailableError
from backbone.organ import OrganCode
from backbone.router.pipeline import Decision, Duplicate, Pipeline, Reject, Route
from backbone.router.policy import RoutingPolicy
from backbone.router.ratelimit import AccountRateLimits, RateLimit
from backbone.store import MemoryStore
from backbone.store.abc import Claim, Outcome, SubmissionKey
from backbone.wire.names import Names
from tests.support import DevPki, make_pki
from tests.support.forging import resigned

pytestmark = pytest.mark.clock  # scripts/clock-check runs it at fixed instants

MINISTRY = "000.00.00.G22"  # tier 1, direct
PROVINCE = "000.00.00.H53"  # tier 1, direct
OTHER_PROVINCE = "000.00.00.H41"  # tier 1, direct
DISTRICT = "000.00.32.H53"  # tier 2, through the hub
COMMUNE = "000.21.32.H53"  # tier 3, through the hub
UNIT = "001.21.32.H53"  # tier 4, through the hub
INACTIVE = "000.00.00.H14"
EXPIRED = "000.00.00.H20"  # certificates of their own: these tests spoil them
REVOKED = "000.00.00.H21"
UNKNOWN = "000.00.00.H77"
HUB = "00.53.W00"
DOCUMENT = "000.00.00.G22,2024/05/01,12/VPCP-TTĐT"
EDXML = b'<?xml version="1.0" encoding="UTF-8"?><edXML>' + b"x" * 4000 + b"</edXML>"
NAMES = Names("test")


def _exchange(tier: int) -> str:
    return NAMES.tier_exchange(DIRECTORY.tiers.tier(tier))


def _key(code: str) -> str:
    return OrganCode.parse(code).routing_key


DIRECTORY: Directory = (
    DirectoryBuilder()
    .direct(MINISTRY)
    .direct(PROVINCE)
    .direct(OTHER_PROVINCE)
    .direct(INACTIVE, active=False)
    .direct(EXPIRED)
    .direct(REVOKED)
    .hub(HUB, PROVINCE)
    .via_hub(DISTRICT, HUB)
    .via_hub(COMMUNE, HUB)
    .via_hub(UNIT, HUB)
    .build()
)


def _account(code: str) -> str:
    """The account the broker would stamp as user_id for ``code``'s publisher."""
    account = DIRECTORY.serving_system(code).broker_account
    assert account is not None
    return account


class FailingStore(MemoryStore):
    """A store whose database went away."""

    def __init__(self, failure: Exception) -> None:
        super().__init__()
        self.failure = failure

    async def claim(self, identity: SubmissionKey, envelope_id: str) -> Claim:
        raise self.failure


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> DevPki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def store() -> MemoryStore:
    return MemoryStore()


@pytest.fixture
def pipeline(pki: DevPki, store: MemoryStore) -> Pipeline:
    return Pipeline(DIRECTORY, pki.validator(), store, NAMES)


def _seal(
    pki: DevPki,
    recipients: Sequence[str] = (PROVINCE,),
    *,
    sender: str = MINISTRY,
    document_id: str | None = None,
    business_type: int | None = 0,
    status_code: str | None = None,
    issued: IssuedCertificate | None = None,
) -> bytes:
    """Sealed by the book: a document or take-back under the sender's own DocumentId, any
    other status about the ministry's DOCUMENT (unless ``document_id``)."""
    signer = issued or pki.agency(sender)
    if document_id is None:
        answer = status_code is not None and status_code != "13"
        document_id = DOCUMENT if answer else DOCUMENT.replace(MINISTRY, sender)
    return seal(
        EDXML,
        SealParties(
            kind=Kind.STATUS if status_code else Kind.DOCUMENT,
            sender=sender,
            sender_key=signer.key,
            sender_cert=signer.certificate,
            recipients={code: pki.agency(code).certificate for code in recipients},
            document_id=document_id,
            business_type=None if status_code else business_type,
            status_code=status_code,
        ),
    )


def _status(pki: DevPki, code: str, sender: str, recipient: str) -> bytes:
    return _seal(pki, (recipient,), sender=sender, status_code=code)


async def _evaluate(pipeline: Pipeline, body: bytes, user_id: str | None = None) -> Decision:
    """Evaluate as published by the sender's own connected system unless told otherwise."""
    sender = read_frame(body).header.sender
    return await pipeline.evaluate(body, user_id=user_id or _account(sender))


async def _routed(pipeline: Pipeline, body: bytes) -> Route:
    """Evaluate an envelope that is routed (the pipeline records the route)."""
    decision = await _evaluate(pipeline, body)
    assert isinstance(decision, Route), decision
    assert decision.recorded
    return decision


async def _rejected(
    pipeline: Pipeline, body: bytes, reason: Reason, user_id: str | None = None
) -> Reject:
    decision = await _evaluate(pipeline, body, user_id)
    assert isinstance(decision, Reject), decision
    assert decision.reason is reason, decision.message
    return decision


def _flip(body: bytes, position: int) -> bytes:
    return body[:position] + bytes([body[position] ^ 0x01]) + body[position + 1 :]


# -- routes --------------------------------------------------------------------------------


async def test_a_valid_document_routes_to_its_recipients_tier_exchange(
    pki: DevPki, pipeline: Pipeline
) -> None:
    body = _seal(pki)
    decision = await _evaluate(pipeline, body)
    assert isinstance(decision, Route)
    assert decision.plan == {_exchange(1): (_key(PROVINCE),)}
    assert decision.resumed is False
    assert decision.header == read_frame(body).header
    assert decision.envelope.ciphertext == read_frame(body).ciphertext
    assert str(decision.envelope.sender.identity) == MINISTRY


async def test_recipients_on_all_four_tiers_reach_each_connected_system_once(
    pki: DevPki, pipeline: Pipeline
) -> None:
    decision = await _evaluate(pipeline, _seal(pki, (UNIT, PROVINCE, COMMUNE, DISTRICT)))
    assert isinstance(decision, Route)
    # PROVINCE is direct; the hub serves the other three, and its inbox is bound to their
    # whole subtree on every tier exchange, so one of their keys reaches it.
    assert decision.plan == {_exchange(4): (_key(UNIT),), _exchange(1): (_key(PROVINCE),)}


async def test_two_recipients_on_one_tier_share_one_exchange_in_header_order(
    pki: DevPki, pipeline: Pipeline
) -> None:
    decision = await _evaluate(pipeline, _seal(pki, (OTHER_PROVINCE, PROVINCE)))
    assert isinstance(decision, Route)
    assert decision.plan == {_exchange(1): (_key(OTHER_PROVINCE), _key(PROVINCE))}


async def test_an_agency_behind_a_hub_publishes_with_the_hubs_account(
    pki: DevPki, pipeline: Pipeline
) -> None:
    body = _seal(pki, (MINISTRY,), sender=COMMUNE, document_id="000.21.32.H53,2024/05/02,3/UBND")
    decision = await pipeline.evaluate(body, user_id=hub_account(HUB))
    assert isinstance(decision, Route)
    assert decision.plan == {_exchange(1): (_key(MINISTRY),)}


# -- size and framing ------------------------------------------------------------------------


async def test_an_oversized_body_is_refused_before_it_is_parsed(
    pki: DevPki, store: MemoryStore
) -> None:
    pipeline = Pipeline(DIRECTORY, pki.validator(), store, NAMES, max_envelope_bytes=1000)
    decision = await pipeline.evaluate(b"garbage" * 200, user_id=_account(MINISTRY))
    assert decision == Reject(
        Reason.ENVELOPE_TOO_LARGE, "envelope is 1400 bytes; the limit is 1000", None
    )


async def test_a_body_that_is_not_an_envelope_is_malformed(pipeline: Pipeline) -> None:
    decision = await pipeline.evaluate(b"<edXML/> sent raw", user_id=_account(MINISTRY))
    assert decision == Reject(
        Reason.ENVELOPE_MALFORMED, "envelope starts with b'<edX', not the magic b'VDX1'", None
    )


async def test_a_header_larger_than_one_recipients_is_parsed_in_a_worker_thread(
    pki: DevPki, pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    threads: list[str] = []
    real = read_frame

    def spy(body: bytes, **kwargs: int) -> object:
        threads.append(threading.current_thread().name)
        return real(body, **kwargs)

    monkeypatch.setattr("backbone.router.pipeline.read_frame", spy)
    body = _seal(pki)
    await _routed(pipeline, body)
    frame = read_frame(body)
    padded = frame.header_bytes[:-1] + b" " * max_header_bytes(1) + b"}"
    padded_body = encode(padded, frame.signature, frame.ciphertext)
    refused = await pipeline.evaluate(padded_body, user_id=_account(MINISTRY))
    assert isinstance(refused, Reject)
    assert refused.reason is Reason.ENVELOPE_MALFORMED
    assert "a header for 1 recipient(s) is at most" in refused.message
    # A header no larger than one recipient's can be is parsed in place; a larger one in a
    # worker thread, so that it never holds up the event loop.
    assert threads == [threading.main_thread().name, threads[1]]
    assert threads[1] != threading.main_thread().name


# -- the publishing account's rate ------------------------------------------------------------


async def test_an_account_over_its_rate_is_refused_unread_and_others_are_not(
    pki: DevPki, store: MemoryStore
) -> None:
    now = [0.0]
    limits = AccountRateLimits(RateLimit(per_second=2, burst=3), clock=lambda: now[0])
    pipeline = Pipeline(DIRECTORY, pki.validator(), store, NAMES, rate_limits=limits)
    numbered = [_seal(pki, document_id=f"{DOCUMENT}-{n}") for n in range(5)]
    for body in numbered[:3]:
        await _routed(pipeline, body)
    refused = await pipeline.evaluate(numbered[3], user_id=_account(MINISTRY))
    assert isinstance(refused, Reject)
    assert refused.reason is Reason.RATE_LIMITED
    assert refused.header is None  # not read: the excess costs a lookup, not a parse
    assert "more than 3 envelopes at once, or more than 2 a second" in refused.message
    # Another account is not held back by the first one's flood.
    await _routed(pipeline, _seal(pki, (MINISTRY,), sender=PROVINCE))
    # Nothing was claimed: the refused envelope, sent again once tokens are back, routes.
    now[0] += 0.5
    await _routed(pipeline, numbered[3])
    assert isinstance(await _evaluate(pipeline, numbered[4]), Reject)


async def test_a_redelivery_is_not_counted_against_the_rate_again(
    pki: DevPki, store: MemoryStore
) -> None:
    limits = AccountRateLimits(RateLimit(per_second=1, burst=1), clock=lambda: 0.0)
    pipeline = Pipeline(DIRECTORY, pki.validator(), store, NAMES, rate_limits=limits)
    body = _seal(pki)
    await _routed(pipeline, body)
    again = await pipeline.evaluate(body, user_id=_account(MINISTRY), redelivered=True)
    assert isinstance(again, Route)


# -- the sender and its publisher ------------------------------------------------------------


async def test_a_sender_missing_from_the_directory_is_refused(
    pki: DevPki, pipeline: Pipeline
) -> None:
    body = _seal(pki, sender=UNKNOWN)
    decision = await _rejected(pipeline, body, Reason.SENDER_UNKNOWN, user_id="agency-x")
    assert decision.message == f"sender {UNKNOWN} is not in the directory"
    assert decision.header == read_frame(body).header


async def test_an_inactive_sender_is_refused(pki: DevPki, pipeline: Pipeline) -> None:
    decision = await _rejected(pipeline, _seal(pki, sender=INACTIVE), Reason.SENDER_INACTIVE)
    assert decision.message == f"sender {INACTIVE} is inactive in the directory"


async def test_an_envelope_published_by_another_agencys_account_is_a_publisher_mismatch(
    pki: DevPki, pipeline: Pipeline
) -> None:
    decision = await _rejected(
        pipeline, _seal(pki), Reason.PUBLISHER_MISMATCH, user_id=agency_account(PROVINCE)
    )
    assert decision.message == (
        f"envelope from {MINISTRY} was published by account 'agency-{PROVINCE}'; only broker "
        f"account 'agency-{MINISTRY}' may publish for {MINISTRY}"
    )


async def test_an_envelope_without_a_user_id_is_a_publisher_mismatch(
    pki: DevPki, pipeline: Pipeline
) -> None:
    decision = await pipeline.evaluate(_seal(pki), user_id=None)
    assert isinstance(decision, Reject)
    assert decision.reason is Reason.PUBLISHER_MISMATCH
    assert decision.message.startswith(f"envelope from {MINISTRY} was published without a user_id")


async def test_a_hub_cannot_publish_for_a_direct_agency_nor_a_hub_agency_for_itself(
    pki: DevPki, pipeline: Pipeline
) -> None:
    await _rejected(pipeline, _seal(pki), Reason.PUBLISHER_MISMATCH, user_id=hub_account(HUB))
    from_commune = _seal(pki, (MINISTRY,), sender=COMMUNE)
    decision = await _rejected(
        pipeline, from_commune, Reason.PUBLISHER_MISMATCH, user_id=agency_account(COMMUNE)
    )
    assert f"only broker account 'hub-{HUB}' may publish for {COMMUNE}" in decision.message


async def test_directory_checks_come_before_the_cryptography(
    pki: DevPki, pipeline: Pipeline
) -> None:
    """A flood of forgeries from a wrong account costs a lookup, not an RSA verification."""
    body = _seal(pki)
    forged = _flip(body, len(body) - 1)
    await _rejected(pipeline, forged, Reason.PUBLISHER_MISMATCH, user_id=hub_account(HUB))


# -- the certificate, the signature and the payload -------------------------------------------


async def test_an_expired_sender_certificate_is_refused(pki: DevPki, pipeline: Pipeline) -> None:
    expired = pki.ca.issue(EXPIRED, not_before=datetime.now(UTC) - timedelta(days=5), days=1)
    decision = await _rejected(
        pipeline, _seal(pki, sender=EXPIRED, issued=expired), Reason.CERT_EXPIRED
    )
    assert decision.message.startswith(f"certificate for {EXPIRED} expired on ")


async def test_a_revoked_sender_certificate_is_refused(pki: DevPki, store: MemoryStore) -> None:
    body = _seal(pki, sender=REVOKED, issued=pki.ca.issue(REVOKED))
    pki.ca.revoke(REVOKED)
    pipeline = Pipeline(DIRECTORY, pki.validator(), store, NAMES)
    decision = await _rejected(pipeline, body, Reason.CERT_REVOKED)
    assert decision.message.startswith(f"certificate for {REVOKED} (serial ")


async def test_a_sender_certificate_from_a_foreign_ca_is_refused(
    pki: DevPki, pipeline: Pipeline, tmp_path_factory: pytest.TempPathFactory
) -> None:
    foreign = make_pki(tmp_path_factory.mktemp("foreign"))
    decision = await _rejected(
        pipeline, _seal(pki, issued=foreign.agency(MINISTRY)), Reason.CERT_UNTRUSTED
    )
    # The dev CAs share a name: the foreign one is told apart by its key.
    assert decision.message.startswith(f"certificate for {MINISTRY} names issuer ")
    assert decision.message.endswith("but its signature does not verify with that CA's key")


async def test_a_sender_using_another_agencys_certificate_is_refused(
    pki: DevPki, pipeline: Pipeline
) -> None:
    body = _seal(pki, sender=PROVINCE, issued=pki.agency(MINISTRY))
    decision = await _rejected(pipeline, body, Reason.CERT_WRONG_BINDING)
    assert decision.message == (
        f"certificate presented for {PROVINCE} is bound to {MINISTRY}, not to {PROVINCE}"
    )


async def test_a_sender_certificate_with_an_invalid_version_is_malformed(
    pki: DevPki, pipeline: Pipeline
) -> None:
    frame = read_frame(_seal(pki))
    fields = json.loads(frame.header_bytes)
    der = bytearray(base64.b64decode(fields["sender_certificate"]))
    version = der.index(bytes([0xA0, 0x03, 0x02, 0x01, 0x02])) + 4  # [0] EXPLICIT INTEGER 2 (v3)
    der[version] = 0x09
    fields["sender_certificate"] = base64.b64encode(bytes(der)).decode()
    body = encode(json.dumps(fields).encode(), frame.signature, frame.ciphertext)
    decision = await _rejected(pipeline, body, Reason.CERT_MALFORMED)
    assert decision.message.startswith(f"certificate for {MINISTRY} is malformed")


async def test_a_tampered_signature_is_refused(pki: DevPki, pipeline: Pipeline) -> None:
    body = _seal(pki)
    (header_length,) = struct.unpack_from(">I", body, 4)
    decision = await _rejected(
        pipeline, _flip(body, 8 + header_length + 4 + 10), Reason.SIGNATURE_INVALID
    )
    assert decision.message.startswith("envelope signature does not verify")


async def test_a_tampered_payload_is_refused(pki: DevPki, pipeline: Pipeline) -> None:
    body = _seal(pki)
    decision = await _rejected(pipeline, _flip(body, len(body) - 1), Reason.PAYLOAD_TAMPERED)
    assert decision.message == (
        "payload SHA-256 does not match the signed header: the ciphertext was altered"
    )


async def test_recipients_are_not_looked_at_before_the_envelope_is_authentic(
    pki: DevPki, pipeline: Pipeline
) -> None:
    body = _seal(pki, (UNKNOWN,))
    await _rejected(pipeline, _flip(body, len(body) - 1), Reason.PAYLOAD_TAMPERED)


# -- recipients and policy ---------------------------------------------------------------------


async def test_every_unknown_and_inactive_recipient_is_named(
    pki: DevPki, pipeline: Pipeline
) -> None:
    body = _seal(pki, (PROVINCE, UNKNOWN, INACTIVE, "000.00.00.H78"))
    decision = await _rejected(pipeline, body, Reason.RECIPIENT_UNKNOWN)
    assert decision.message == (
        f"recipients not in the directory: {UNKNOWN}, 000.00.00.H78; "
        f"inactive in the directory: {INACTIVE}"
    )


async def test_an_inactive_recipient_alone_is_refused(pki: DevPki, pipeline: Pipeline) -> None:
    decision = await _rejected(pipeline, _seal(pki, (INACTIVE,)), Reason.RECIPIENT_UNKNOWN)
    assert decision.message == f"recipients inactive in the directory: {INACTIVE}"


async def test_the_routing_policy_refuses_naming_each_denied_recipient_and_the_rule(
    pki: DevPki, store: MemoryStore
) -> None:
    policy = RoutingPolicy.model_validate({"rules": [{"from": 3, "to": 1, "allow": False}]})
    pipeline = Pipeline(DIRECTORY, pki.validator(), store, NAMES, policy)
    body = _seal(pki, (DISTRICT, MINISTRY, PROVINCE), sender=COMMUNE)
    decision = await _rejected(pipeline, body, Reason.POLICY_DENIED)
    rule = "routing policy rule 1 (from tier 3 to tier 1: deny)"
    assert decision.message == (
        f"{COMMUNE} may not send to {MINISTRY}: {rule}; to {PROVINCE}: {rule}"
    )
    assert isinstance(await _evaluate(pipeline, _seal(pki, (DISTRICT,), sender=COMMUNE)), Route)


def test_a_policy_naming_a_tier_the_directory_lacks_is_refused_at_startup(
    pki: DevPki, store: MemoryStore
) -> None:
    policy = RoutingPolicy.model_validate({"rules": [{"from": 5, "to": "*", "allow": False}]})
    with pytest.raises(DirectoryError, match=re.escape("no tier 5; this model has tiers 1..4")):
        Pipeline(DIRECTORY, pki.validator(), store, NAMES, policy)


async def test_a_refused_envelope_claims_nothing_so_the_sender_can_fix_and_resend(
    pki: DevPki, pipeline: Pipeline, store: MemoryStore
) -> None:
    await _rejected(pipeline, _seal(pki, (PROVINCE, UNKNOWN)), Reason.RECIPIENT_UNKNOWN)
    # Had the refused envelope claimed the DocumentId, this one would be a conflict.
    await _routed(pipeline, _seal(pki, (PROVINCE,)))


# -- duplicates ----------------------------------------------------------------------------------


async def test_the_same_document_sealed_again_is_a_duplicate_conflict_naming_the_original(
    pki: DevPki, pipeline: Pipeline, store: MemoryStore
) -> None:
    first = await _routed(pipeline, _seal(pki))
    decision = await _rejected(pipeline, _seal(pki), Reason.DUPLICATE_CONFLICT)
    assert decision.message.startswith(
        f"{MINISTRY} already sent document {DOCUMENT!r} with other content in envelope "
        f"{first.header.envelope_id}; "
    )


async def test_a_byte_identical_resend_is_answered_with_the_original_outcome(
    pki: DevPki, pipeline: Pipeline, store: MemoryStore
) -> None:
    body = _seal(pki)
    first = await _routed(pipeline, body)
    decision = await _evaluate(pipeline, body)
    assert decision == Duplicate(first.header, first.header.envelope_id, Outcome.ROUTED)


async def test_a_route_is_recorded_with_its_claim_and_a_redelivery_routes_again_as_resumed(
    pki: DevPki, pipeline: Pipeline, store: MemoryStore
) -> None:
    body = _seal(pki)
    first = await _evaluate(pipeline, body)
    assert isinstance(first, Route)
    assert (first.resumed, first.recorded) == (False, True)
    assert len(await store.history(DOCUMENT, sender=MINISTRY, recipient=PROVINCE)) == 1
    # The broker hands it back (the router died before its confirms): publish it again.
    sender = read_frame(body).header.sender
    again = await pipeline.evaluate(body, user_id=_account(sender), redelivered=True)
    assert isinstance(again, Route)
    assert (again.resumed, again.recorded) == (True, False)
    assert again.plan == first.plan


@pytest.mark.parametrize(
    "failure",
    [StoreUnavailableError("the store at db:5432 failed"), RuntimeError("a bug")],
    ids=["store-unavailable", "bug"],
)
async def test_a_store_failure_or_a_bug_propagates_so_the_service_requeues(
    pki: DevPki, failure: Exception
) -> None:
    pipeline = Pipeline(DIRECTORY, pki.validator(), FailingStore(failure), NAMES)
    with pytest.raises(type(failure)) as caught:
        await _evaluate(pipeline, _seal(pki))
    assert caught.value is failure


# -- statuses ------------------------------------------------------------------------------------


async def test_a_status_about_a_document_never_sent_is_refused(
    pki: DevPki, pipeline: Pipeline
) -> None:
    decision = await _rejected(
        pipeline, _status(pki, "03", PROVINCE, MINISTRY), Reason.STATUS_UNKNOWN_DOCUMENT
    )
    assert decision.message == (
        f"status 03 from {PROVINCE} to {MINISTRY} is about document {DOCUMENT!r}, which "
        f"{MINISTRY} never sent to {PROVINCE} through the backbone"
    )


async def test_a_status_from_an_agency_that_was_not_a_recipient_is_refused(
    pki: DevPki, pipeline: Pipeline, store: MemoryStore
) -> None:
    await _routed(pipeline, _seal(pki, (PROVINCE,)))
    await _rejected(
        pipeline, _status(pki, "03", OTHER_PROVINCE, MINISTRY), Reason.STATUS_UNKNOWN_DOCUMENT
    )


async def test_status_03_after_a_routed_document_goes_to_the_original_senders_tier_exchange(
    pki: DevPki, pipeline: Pipeline, store: MemoryStore
) -> None:
    await _routed(pipeline, _seal(pki, (COMMUNE,)))
    decision = await _evaluate(pipeline, _status(pki, "03", COMMUNE, MINISTRY))
    assert isinstance(decision, Route)
    assert decision.plan == {_exchange(1): (_key(MINISTRY),)}


async def test_a_take_back_request_must_come_from_the_original_sender(
    pki: DevPki, pipeline: Pipeline, store: MemoryStore
) -> None:
    await _routed(pipeline, _seal(pki, (PROVINCE,)))
    # The province's own 13 about a document of its own it never sent: unknown.
    decision = await _rejected(
        pipeline, _status(pki, "13", PROVINCE, MINISTRY), Reason.STATUS_UNKNOWN_DOCUMENT
    )
    theirs = DOCUMENT.replace(MINISTRY, PROVINCE)
    assert decision.message == (
        f"status 13 from {PROVINCE} to {MINISTRY} is about document {theirs!r}, which "
        f"{PROVINCE} never sent to {MINISTRY} through the backbone"
    )
    # A 13 about the ministry's document, signed by the province: never its to take back.
    forged = resigned(
        _status(pki, "13", PROVINCE, MINISTRY), pki.agency(PROVINCE).key, document_id=DOCUMENT
    )
    decision = await _rejected(pipeline, forged, Reason.DOCUMENT_ID_NOT_SENDER)
    assert decision.authenticated
    await _routed(pipeline, _status(pki, "13", MINISTRY, PROVINCE))


async def test_an_answer_15_without_a_take_back_or_update_request_is_implausible(
    pki: DevPki, pipeline: Pipeline, store: MemoryStore
) -> None:
    await _routed(pipeline, _seal(pki, (PROVINCE,)))
    decision = await _rejected(
        pipeline, _status(pki, "15", PROVINCE, MINISTRY), Reason.STATUS_IMPLAUSIBLE
    )
    assert decision.message == (
        f"status 15 from {PROVINCE} answers a take-back or update request, but {MINISTRY} "
        f"sent {PROVINCE} no take-back request (13) or update of document {DOCUMENT!r}"
    )


async def test_an_answer_15_after_a_take_back_request_routes(
    pki: DevPki, pipeline: Pipeline, store: MemoryStore
) -> None:
    await _routed(pipeline, _seal(pki, (PROVINCE,)))
    await _routed(pipeline, _status(pki, "13", MINISTRY, PROVINCE))
    decision = await _evaluate(pipeline, _status(pki, "15", PROVINCE, MINISTRY))
    assert isinstance(decision, Route)
    assert decision.plan == {_exchange(1): (_key(MINISTRY),)}


async def test_an_answer_16_after_an_update_routes(
    pki: DevPki, pipeline: Pipeline, store: MemoryStore
) -> None:
    await _routed(pipeline, _seal(pki, (PROVINCE,)))
    await _routed(pipeline, _seal(pki, (PROVINCE,), business_type=2))
    assert isinstance(await _evaluate(pipeline, _status(pki, "16", PROVINCE, MINISTRY)), Route)


async def test_a_status_code_outside_the_known_set_is_implausible(
    pki: DevPki, pipeline: Pipeline, store: MemoryStore
) -> None:
    await _routed(pipeline, _seal(pki, (PROVINCE,)))
    decision = await _rejected(
        pipeline, _status(pki, "09", PROVINCE, MINISTRY), Reason.STATUS_IMPLAUSIBLE
    )
    assert decision.message == "status code 09 is not one the backbone carries (01–06, 13, 15, 16)"


# -- revocations, updates and replacements ------------------------------------------------------


async def test_a_revocation_to_a_recipient_that_never_got_the_document_is_refused(
    pki: DevPki, pipeline: Pipeline, store: MemoryStore
) -> None:
    await _routed(pipeline, _seal(pki, (PROVINCE,)))
    body = _seal(pki, (PROVINCE, OTHER_PROVINCE, DISTRICT), business_type=1)
    decision = await _rejected(pipeline, body, Reason.REFERENCED_DOCUMENT_UNKNOWN)
    assert decision.message == (
        f"revocation of document {DOCUMENT!r} from {MINISTRY}: {OTHER_PROVINCE}, {DISTRICT} "
        f"never received that document from {MINISTRY}"
    )


async def test_a_revocation_to_the_original_recipients_routes(
    pki: DevPki, pipeline: Pipeline, store: MemoryStore
) -> None:
    await _routed(pipeline, _seal(pki, (PROVINCE, DISTRICT)))
    decision = await _evaluate(pipeline, _seal(pki, (PROVINCE, DISTRICT), business_type=1))
    assert isinstance(decision, Route)


async def test_only_the_original_sender_may_replace_a_document(
    pki: DevPki, pipeline: Pipeline, store: MemoryStore
) -> None:
    await _routed(pipeline, _seal(pki, (PROVINCE,)))
    # Under its own DocumentId, the other province never sent that document.
    body = _seal(pki, (PROVINCE,), sender=OTHER_PROVINCE, business_type=3)
    decision = await _rejected(pipeline, body, Reason.REFERENCED_DOCUMENT_UNKNOWN)
    theirs = DOCUMENT.replace(MINISTRY, OTHER_PROVINCE)
    assert decision.message.startswith(f"replacement of document {theirs!r} from {OTHER_PROVINCE}")
    # Under the ministry's DocumentId, signed by itself: not its document to replace.
    forged = resigned(body, pki.agency(OTHER_PROVINCE).key, document_id=DOCUMENT)
    decision = await _rejected(pipeline, forged, Reason.DOCUMENT_ID_NOT_SENDER)
    assert decision.authenticated


async def test_only_a_new_document_counts_as_the_original(
    pki: DevPki, pipeline: Pipeline, store: MemoryStore
) -> None:
    # History holding only an update (say, from before the check existed) is not enough.
    update = read_frame(_seal(pki, (PROVINCE,), business_type=2)).header
    await store.record_routed(update, datetime.now(UTC))
    body = _seal(pki, (PROVINCE,), business_type=3)
    await _rejected(pipeline, body, Reason.REFERENCED_DOCUMENT_UNKNOWN)


def test_every_reason_code_is_documented_in_enum_order_and_no_other() -> None:
    text = (Path(__file__).resolve().parents[1] / "docs" / "reasons.md").read_text()
    table = text[text.index("## Every reason") :]
    documented = re.findall(r"^\| `([a-z_]+)` \|", table, flags=re.MULTILINE)
    assert documented == [reason.value for reason in Reason]
