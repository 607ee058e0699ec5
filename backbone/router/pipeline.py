"""The checks every envelope passes, in order, ending in one :data:`Decision`.

0. the publishing account's rate (``ratelimit``), before anything → ``rate_limited``
1. size, before anything is parsed                          → ``envelope_too_large``
2. framing and header schema (``read_frame``; bounded by the recipients the header names,
   first problem wins; a header larger than one recipient's can be, in a worker thread)
                                                             → ``envelope_malformed``
3. sender listed and active in the directory, or closed within the transition window (warned)
                                       → ``sender_unknown`` / ``_inactive`` / ``sender_closed``
4. the broker ``user_id`` is the sender's account, or its hub's → ``publisher_mismatch``
5. sender certificate, signature, payload (``verify_frame``) → the certificate/envelope reasons
5b. the DocumentId bound to its parties (``check_binding``): its shape, its organ the sender
   of a document or take-back, the sole addressee of any other status
                                       → ``document_id_malformed`` / ``document_id_not_sender``
                                         / ``status_misaddressed``
6. recipients listed and active, or a closed code's one full heir within the transition
   window (forwarded; ``transition``)          → ``recipient_unknown`` / ``recipient_closed``
7. routing policy for every recipient                        → ``policy_denied``
8. flows: a status answers a document that was routed (to its sender, or forwarded to it as
   a closed code's successor), a revocation, update or replacement follows the original
                                       → ``status_unknown_document`` / ``status_implausible``
                                         / ``referenced_document_unknown``
9. duplicates (``Store.claim_route``)  → ``duplicate_conflict``, or an :class:`Duplicate`

Cheap directory checks come before the cryptography so that floods from unknown or
misconfigured publishers cost a dict lookup, not an RSA verification; the store is touched
only by authentic envelopes, and nothing is claimed until every other check has passed, so a
refused envelope can be fixed and sent again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import timedelta
from types import MappingProxyType
from typing import Final

from backbone.clock import Clock, utc_now
from backbone.directory import Agency, Directory
from backbone.envelope import (
    DEFAULT_MAX_ENVELOPE_SIZE,
    EnvelopeHeader,
    Frame,
    VerifiedEnvelope,
    check_binding,
    header_length,
    max_header_bytes,
    read_frame,
    verify_frame,
)
from backbone.envelope.chunk_wire import (
    VerifiedChunkedHeader,
    read_chunked_header,
    verify_chunked_header,
)
from backbone.envelope.chunked import ChunkedHeader, ChunkLimits
from backbone.errors import BackboneError, Reason, RoutingError, StoreUnavailableError
from backbone.pki.validation import CertificateValidator
from backbone.router.policy import RoutingPolicy
from backbone.router.ratelimit import AccountRateLimits, RateLimit
from backbone.router.transition import (
    DEFAULT_TRANSITION_WINDOW_DAYS,
    Deliver,
    Forward,
    address,
    sender_verdict,
)
from backbone.store.abc import ClaimState, Delivery, Outcome, Routing, Store
from backbone.wire.names import Names

__all__ = ["Decision", "Duplicate", "Pipeline", "Reject", "Route"]

# Statuses a receiver sends back to the original sender, and the original sender's own.
_RECEIVER_STATUSES: Final = frozenset({"01", "02", "03", "04", "05", "06", "15", "16"})
_TAKE_BACK: Final = "13"
_ANSWERS_TO_REQUESTS: Final = frozenset({"15", "16"})
_NEW, _UPDATE = 0, 2
_BUSINESS_NAMES: Final = {
    0: "document",
    1: "revocation of document",
    2: "update of document",
    3: "replacement of document",
}
_DEFAULT_POLICY: Final = RoutingPolicy()
# A header no larger than the widest one for a single recipient parses in well under a
# millisecond; anything larger (up to 1,000 key wraps) is parsed in a worker thread.
_IN_PLACE_HEADER_BYTES: Final = max_header_bytes(1)


@dataclass(frozen=True, slots=True)
class Route:
    """Publish the envelope once per tier exchange in ``plan`` (exchange → recipient routing
    keys): the first key as routing key, the others in the CC header."""

    header: EnvelopeHeader
    envelope: VerifiedEnvelope | VerifiedChunkedHeader
    plan: Mapping[str, tuple[str, ...]]
    resumed: bool  # a redelivery of an envelope claimed but never finished
    recorded: bool = False  # the store holds the route already (``Store.claim_route``)
    forwards: tuple[Forward, ...] = ()  # closed or former codes sent on to their heirs
    warning: str | None = None  # the sender's code has closed: accepted within the window
    # The directory version it was decided against (not what to do: left out of ==).
    directory_version: str | None = field(default=None, compare=False)

    @property
    def routing(self) -> Routing:
        """What the store keeps of the decision beside the route (tracking)."""
        return _routing(self.directory_version, self.forwards)


@dataclass(frozen=True, slots=True)
class Reject:
    """Refused. ``header`` is None when the body could not be parsed. ``authenticated`` says
    whether the sender's signature had been verified: only then is ``header.sender`` known
    to be who sent it (and the one to tell), rather than merely who the header names."""

    reason: Reason
    message: str
    header: EnvelopeHeader | None
    authenticated: bool = False
    directory_version: str | None = field(default=None, compare=False)
    # A chunk of no known header: the envelope id it names, told back to its publisher
    # (who wrote it) so the sending adapter can tell which document was refused.
    claimed_envelope_id: str | None = None


@dataclass(frozen=True, slots=True)
class Duplicate:
    """A byte-identical resend of a finished envelope: tell the sender what happened then."""

    header: EnvelopeHeader
    original_envelope_id: str
    outcome: Outcome
    directory_version: str | None = field(default=None, compare=False)


Decision = Route | Reject | Duplicate


class Pipeline:
    def __init__(
        self,
        directory: Directory,
        validator: CertificateValidator,
        store: Store,
        names: Names,
        policy: RoutingPolicy = _DEFAULT_POLICY,
        max_envelope_bytes: int = DEFAULT_MAX_ENVELOPE_SIZE,
        rate_limits: AccountRateLimits | RateLimit | None = None,
        transition_window: timedelta = timedelta(days=DEFAULT_TRANSITION_WINDOW_DAYS),
        clock: Clock = utc_now,
        chunk_limits: ChunkLimits | None = None,
    ) -> None:
        """``chunk_limits``: what a chunked header may announce (docs/large-documents.md).
        ``rate_limits``: per publishing account (a :class:`RateLimit` gets buckets of its
        own); None admits every account at any rate. ``transition_window``: how long after
        a code closes its documents are forwarded and its sender warned, not refused;
        ``clock`` says when the directory's dates are read (docs/directory.md)."""
        self._window = transition_window
        self._chunk_limits = ChunkLimits() if chunk_limits is None else chunk_limits
        self._clock = clock
        policy.check(directory.tiers)
        self._directory = directory
        self._tiers = directory.tiers
        _ = directory.version  # its digest computed now, not on the first envelope's time
        self._validator = validator
        self._store = store
        self._policy = policy
        self._max_bytes = max_envelope_bytes
        self._rate_limits = (
            AccountRateLimits(rate_limits) if isinstance(rate_limits, RateLimit) else rate_limits
        )
        # A code's level decides its tier: four entries instead of a tier lookup per recipient.
        self._exchange_of_level = {
            level: names.tier_exchange(tier) for tier in self._tiers.tiers for level in tier.levels
        }

    @property
    def directory(self) -> Directory:
        """The version envelopes are routed against now."""
        return self._directory

    def use(self, directory: Directory) -> None:
        """Route every envelope from now on against ``directory`` (a new version of the
        running one, with its tier model: ``backbone.directory.succession``). An envelope
        being checked goes on with the version it started with."""
        if directory.tiers != self._tiers:
            raise ValueError("a directory version with another tier model needs a restart")
        self._policy.check(directory.tiers)
        self._directory = directory

    def revocation_gaps(self) -> list[str]:
        """Why sender certificates cannot be checked for revocation now (empty when they can):
        while there are any, envelopes from the CAs concerned are refused."""
        return self._validator.revocation_gaps()

    async def evaluate(
        self, body: bytes, *, user_id: str | None, redelivered: bool = False
    ) -> Decision:
        """Decide what to do with one envelope as consumed (``user_id``: the AMQP property
        the broker checked against the publisher's login). Bad input never raises; a store
        failure (:class:`StoreUnavailableError`) or a bug does, so the service can requeue
        the message. The directory is read once: the whole decision is against one version,
        which the decision names."""
        directory = self._directory
        decision = await self._evaluate(body, directory, user_id, redelivered)
        return replace(decision, directory_version=directory.version.id)

    async def _evaluate(
        self, body: bytes, directory: Directory, user_id: str | None, redelivered: bool
    ) -> Decision:
        # A redelivery was admitted once already (a refusal is acked, never redelivered).
        if not redelivered and (refusal := self._over_rate(user_id)) is not None:
            return refusal
        if len(body) > self._max_bytes:
            return Reject(
                Reason.ENVELOPE_TOO_LARGE,
                f"envelope is {len(body)} bytes; the limit is {self._max_bytes}",
                None,
            )
        try:
            frame = await self._read(body)
        except BackboneError as error:
            return Reject(error.reason, error.message, None)
        try:
            sender, warning = self._sender(directory, frame.header, user_id)
            envelope = verify_frame(frame, self._validator)
        except BackboneError as error:
            return Reject(error.reason, error.message, frame.header)
        try:
            check_binding(frame.header)  # authenticated now: its sender is the one to tell
            return await self._decide(
                directory, frame.header, sender, warning, envelope, redelivered
            )
        except StoreUnavailableError:
            raise  # says nothing about the envelope: requeue it, do not quarantine it
        except BackboneError as error:
            return Reject(error.reason, error.message, frame.header, authenticated=True)

    async def evaluate_chunked_header(
        self,
        body: bytes,
        *,
        user_id: str | None,
        admit: Callable[[ChunkedHeader], Awaitable[None]],
        redelivered: bool = False,
    ) -> Decision:
        """:meth:`evaluate` for a chunked document's header message: the same steps, in the
        same order, with :func:`verify_chunked_header` (its limits before its signature) in
        place of the single message's framing and payload checks. Its chunks are checked
        against it one by one as they pass (:mod:`backbone.router.chunks`). ``admit`` raises
        when the document may not start now (too many under way); it runs once the header is
        authentic, before anything is claimed."""
        directory = self._directory
        decision = await self._evaluate_chunked(body, directory, user_id, admit, redelivered)
        return replace(decision, directory_version=directory.version.id)

    async def _evaluate_chunked(
        self,
        body: bytes,
        directory: Directory,
        user_id: str | None,
        admit: Callable[[ChunkedHeader], Awaitable[None]],
        redelivered: bool,
    ) -> Decision:
        if not redelivered and (refusal := self._over_rate(user_id)) is not None:
            return refusal
        try:
            frame = await asyncio.to_thread(read_chunked_header, body)
            header = frame.header
        except BackboneError as error:
            return Reject(error.reason, error.message, None)
        try:
            sender, warning = self._sender(directory, header, user_id)
            # The frame is read again inside: a few hundred kilobytes at most, once per
            # document, and the one function that verifies a header is the one used.
            verified = verify_chunked_header(body, self._validator, self._chunk_limits)
        except BackboneError as error:
            return Reject(error.reason, error.message, header)
        try:
            await admit(verified.header)
            return await self._decide(
                directory, verified.header, sender, warning, verified, redelivered
            )
        except StoreUnavailableError:
            raise
        except BackboneError as error:
            return Reject(error.reason, error.message, header, authenticated=True)

    def _over_rate(self, user_id: str | None) -> Reject | None:
        if self._rate_limits is None or self._rate_limits.allow(user_id or ""):
            return None
        limit = self._rate_limits.limit
        return Reject(
            Reason.RATE_LIMITED,
            f"account {user_id or '(none)'!r} published more than {limit.burst} envelopes at "
            f"once, or more than {limit.per_second:g} a second since; this envelope was not "
            "checked or routed: send it again later",
            None,
        )

    async def _read(self, body: bytes) -> Frame:
        if header_length(body) <= _IN_PLACE_HEADER_BYTES:
            return read_frame(body, max_size=self._max_bytes)
        # Off the event loop, so other accounts' envelopes go on meanwhile.
        return await asyncio.to_thread(read_frame, body, max_size=self._max_bytes)

    async def _decide(
        self,
        directory: Directory,
        header: EnvelopeHeader,
        sender: Agency,
        warning: str | None,
        envelope: VerifiedEnvelope | VerifiedChunkedHeader,
        redelivered: bool,
    ) -> Decision:
        recipients, forwards = self._recipients(directory, header)
        self._check_policy(sender, recipients)
        stands_for: tuple[tuple[str, str], ...] = ()
        if header.status_code is not None:
            stands_for = await self._check_status(header)
        elif header.business_type != _NEW:
            await self._check_referenced(header)
        # Claimed, and recorded as routed when the claim says to route: the router records
        # a route before publishing it, so a status coming straight back finds it.
        routing = replace(_routing(directory.version.id, forwards), stands_for=stands_for)
        claim = await self._store.claim_route(header, routing)
        if claim.state is ClaimState.CONFLICT:
            raise RoutingError(
                f"{header.sender} already sent {_describe(header)} {header.document_id!r} with "
                f"other content in envelope {claim.envelope_id}; the same document is not "
                "sent twice (resend that envelope unchanged, or send an update or replacement)",
                reason=Reason.DUPLICATE_CONFLICT,
            )
        if claim.state is ClaimState.DUPLICATE:
            if claim.outcome is None:
                raise RuntimeError(f"store answered claim {claim.envelope_id} without an outcome")
            # The router records a route before publishing it: the broker handing the same
            # envelope back means the publishing may not have finished. Publish it again.
            if not (redelivered and claim.envelope_id == header.envelope_id):
                return Duplicate(header, claim.envelope_id, claim.outcome)
        return Route(
            header,
            envelope,
            self._plan(recipients),
            resumed=claim.state is not ClaimState.NEW,
            recorded=claim.state.routes,
            forwards=forwards,
            warning=warning,
        )

    def _sender(
        self, directory: Directory, header: EnvelopeHeader, user_id: str | None
    ) -> tuple[Agency, str | None]:
        """The sender and the warning to give it (its code closed within the window)."""
        agency = directory.get(header.sender)
        if agency is None:
            raise RoutingError(
                f"sender {header.sender} is not in the directory", reason=Reason.SENDER_UNKNOWN
            )
        verdict = sender_verdict(directory, agency, self._clock(), self._window)
        if verdict.refusal is not None:
            raise RoutingError(verdict.refusal.message, reason=verdict.refusal.reason)
        expected = directory.serving_system(header.sender).broker_account
        if user_id is None or user_id != expected:
            published = "without a user_id" if user_id is None else f"by account {user_id!r}"
            raise RoutingError(
                f"envelope from {header.sender} was published {published}; only broker "
                f"account {expected!r} may publish for {header.sender}",
                reason=Reason.PUBLISHER_MISMATCH,
            )
        return agency, verdict.warning

    def _recipients(
        self, directory: Directory, header: EnvelopeHeader
    ) -> tuple[tuple[Agency, ...], tuple[Forward, ...]]:
        """The agencies to deliver to, and which of them stand in for another code."""
        at = self._clock()
        found: list[Agency] = []
        forwards: list[Forward] = []
        unknown: dict[str, list[str]] = {}  # what is wrong → the codes it is wrong with
        closed: list[str] = []
        for code in header.recipients:
            outcome = address(directory, code, at, self._window)
            if isinstance(outcome, Deliver):
                found.append(outcome.agency)
            elif isinstance(outcome, Forward):
                found.append(outcome.agency)
                forwards.append(outcome)
            elif outcome.reason is Reason.RECIPIENT_UNKNOWN:
                unknown.setdefault(outcome.message, []).append(code)
            else:
                closed.append(f"{code} {outcome.message}")
        if unknown or closed:
            problems = [f"{what}: {', '.join(codes)}" for what, codes in unknown.items()]
            # Unknown first: correcting the list comes before choosing a successor.
            reason = Reason.RECIPIENT_UNKNOWN if unknown else Reason.RECIPIENT_CLOSED
            raise RoutingError(f"recipients {'; '.join(problems + closed)}", reason=reason)
        return tuple(found), tuple(forwards)

    def _check_policy(self, sender: Agency, recipients: tuple[Agency, ...]) -> None:
        source = sender.organ_code
        denied = [
            recipient.organ_code
            for recipient in recipients
            if not self._policy.allows(source, recipient.organ_code, self._tiers)
        ]
        if denied:
            reasons = "; ".join(
                f"to {code}: {self._policy.why(source, code, self._tiers)}" for code in denied
            )
            raise RoutingError(f"{source} may not send {reasons}", reason=Reason.POLICY_DENIED)

    async def _check_status(self, header: EnvelopeHeader) -> tuple[tuple[str, str], ...]:
        """Check the status answers (or asks back) a document routed between its parties,
        and return which of them is a successor the document was forwarded to, with the
        code it was addressed to (``Routing.stands_for``)."""
        code, document, sender = header.status_code, header.document_id, header.sender
        stands_for: list[tuple[str, str]] = []
        if code != _TAKE_BACK and code not in _RECEIVER_STATUSES:
            raise RoutingError(
                f"status code {code} is not one the backbone carries (01–06, 13, 15, 16)",
                reason=Reason.STATUS_IMPLAUSIBLE,
            )
        for recipient in header.recipients:
            # A take-back request goes where the document went; every other status comes back.
            origin, target = (sender, recipient) if code == _TAKE_BACK else (recipient, sender)
            history = await self._store.history(document, sender=sender, recipient=recipient)
            sent = [item for item in history if _is_document(item, origin, target)]
            if not sent:
                raise RoutingError(
                    f"status {code} from {sender} to {recipient} is about document "
                    f"{document!r}, which {origin} never sent to {target} through the backbone",
                    reason=Reason.STATUS_UNKNOWN_DOCUMENT,
                )
            if code in _ANSWERS_TO_REQUESTS and not _was_requested(history, recipient, sender):
                raise RoutingError(
                    f"status {code} from {sender} answers a take-back or update request, but "
                    f"{recipient} sent {sender} no take-back request (13) or update of "
                    f"document {document!r}",
                    reason=Reason.STATUS_IMPLAUSIBLE,
                )
            if all(item.recipient != target for item in sent):  # it reached target forwarded
                stands_for.append((target, sent[-1].recipient))
        return tuple(stands_for)

    async def _check_referenced(self, header: EnvelopeHeader) -> None:
        sender, document = header.sender, header.document_id
        missing = [
            recipient
            for recipient in header.recipients
            if not any(
                _is_document(item, sender, recipient, business_type=_NEW)
                for item in await self._store.history(document, sender=sender, recipient=recipient)
            )
        ]
        if missing:
            raise RoutingError(
                f"{_describe(header)} {document!r} from {sender}: {', '.join(missing)} never "
                f"received that document from {sender}",
                reason=Reason.REFERENCED_DOCUMENT_UNKNOWN,
            )

    def _plan(self, recipients: tuple[Agency, ...]) -> Mapping[str, tuple[str, ...]]:
        # Each connected system gets the envelope once: a hub's inbox is bound to its whole
        # subtree on every tier exchange, so one of its recipients' keys reaches it, and the
        # hub's adapter hands the envelope to every recipient it serves.
        plan: dict[str, list[str]] = {}
        systems: set[str] = set()
        for recipient in recipients:
            code = recipient.organ_code
            system = str(recipient.hub or code)
            if system in systems:
                continue
            systems.add(system)
            plan.setdefault(self._exchange_of_level[code.level], []).append(code.routing_key)
        return MappingProxyType({exchange: tuple(keys) for exchange, keys in plan.items()})


def _routing(directory_version: str | None, forwards: Sequence[Forward]) -> Routing:
    forwarded = tuple((forward.code, str(forward.agency.organ_code)) for forward in forwards)
    return Routing(directory_version, forwarded)


def _is_document(
    item: Delivery, sender: str, recipient: str, *, business_type: int | None = None
) -> bool:
    return (
        item.kind == "document"
        and item.sender == sender
        and item.reached(recipient)
        and (business_type is None or item.business_type == business_type)
    )


def _was_requested(history: Sequence[Delivery], requester: str, answerer: str) -> bool:
    """Did ``requester`` ask ``answerer`` to take back (13) or update (type 2) the document?"""
    return any(
        (item.kind == "status" and item.status_code == _TAKE_BACK)
        or _is_document(item, requester, answerer, business_type=_UPDATE)
        for item in history
        if item.sender == requester and item.reached(answerer)
    )


def _describe(header: EnvelopeHeader) -> str:
    if header.status_code is not None:
        return f"status {header.status_code} about document"
    return _BUSINESS_NAMES[header.business_type or _NEW]
