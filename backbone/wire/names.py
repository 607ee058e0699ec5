"""Every exchange, queue and routing key name on the broker, derived from one prefix.

One prefix per deployment (``vdx`` by default); tests use a fresh prefix each, so runs on a
shared broker never see each other's messages.
"""

from __future__ import annotations

from dataclasses import dataclass

from backbone.organ import OrganCode
from backbone.tiers import Tier

__all__ = [
    "FORM_CHUNK",
    "FORM_CHUNKED_HEADER",
    "H_ATTEMPTS",
    "H_BODY_BYTES",
    "H_BODY_KEPT",
    "H_BODY_SHA256",
    "H_CC",
    "H_CHUNK_INDEX",
    "H_DIRECTORY_FORMAT",
    "H_DIRECTORY_VERSION",
    "H_DOCUMENT",
    "H_ENVELOPE",
    "H_FORM",
    "H_HELD_FOR",
    "H_MESSAGE",
    "H_PUBLISHER",
    "H_REASON",
    "H_REPUBLISHED",
    "H_SENDER",
    "H_WAITING_SINCE",
    "Names",
]

# Message headers of our own (no "x-" prefix: RabbitMQ 3.13+ treats those as the broker's).
H_ENVELOPE = "vdx-envelope-id"
H_DOCUMENT = "vdx-document-id"
H_SENDER = "vdx-sender"
H_REASON = "vdx-reason"  # on quarantined and router-dead-lettered envelopes: the Reason value
H_MESSAGE = "vdx-message"  # on quarantined and router-dead-lettered envelopes: what was wrong
# On quarantined envelopes, and on those the router published again or dead-lettered: the
# broker account that published the envelope in the first place.
H_PUBLISHER = "vdx-publisher"
H_BODY_SHA256 = "vdx-body-sha256"  # on quarantined envelopes: SHA-256 (hex) of the refused body
H_BODY_BYTES = "vdx-body-bytes"  # on quarantined envelopes: its size
H_BODY_KEPT = "vdx-body-kept"  # on quarantined envelopes: the body is the envelope, not a record
# On a copy the router parked because recipients' inboxes were full: those recipients.
H_HELD_FOR = "vdx-held-for"
H_REPUBLISHED = "vdx-republished"  # published again after a crash: recipients drop duplicates
# On an envelope the router published again after failing to process it (or dead-lettered
# itself): its failed processing attempts so far. Trusted only from the router's own account.
H_ATTEMPTS = "vdx-attempts"
# On a chunk the router put back behind the chunk queue, its header not routed yet: when a
# router first found it so (ISO 8601), read only on the router's own messages.
H_WAITING_SINCE = "vdx-waiting-since"
# On a directory version published by ``backbone directory apply``: its file format (json or
# yaml) and its version id (``<revision>:<sha256>``, docs/directory.md).
H_DIRECTORY_FORMAT = "vdx-directory-format"
H_DIRECTORY_VERSION = "vdx-directory-version"
# A chunked document's messages (docs/large-documents.md): which form (absent on a
# single-message envelope) and, on a chunk, its index, so the router routes a chunk by its
# headers and the envelope id without parsing its body.
H_FORM = "vdx-form"
H_CHUNK_INDEX = "vdx-chunk-index"
FORM_CHUNKED_HEADER = "chunked-header"
FORM_CHUNK = "chunk"
# RabbitMQ's own sender-selected distribution header: the further routing keys of one publish.
H_CC = "CC"


@dataclass(frozen=True, slots=True)
class Names:
    prefix: str = "vdx"

    @property
    def submit_exchange(self) -> str:
        """Where adapters publish envelopes (direct; feeds the router's inbound queue)."""
        return f"{self.prefix}.submit"

    @property
    def submit_routing_key(self) -> str:
        """The routing key adapters publish envelopes with on the submit exchange."""
        return "envelope"

    @property
    def inbound_queue(self) -> str:
        return f"{self.prefix}.router.inbound"

    @property
    def chunk_routing_key(self) -> str:
        """The routing key adapters publish a chunked document's chunks with on the submit
        exchange: they go to :attr:`chunk_queue`, which the router takes a few at a time."""
        return "chunk"

    @property
    def chunk_queue(self) -> str:
        return f"{self.prefix}.router.chunks"

    @property
    def events_exchange(self) -> str:
        """Topic exchange of delivery and processing-status events."""
        return f"{self.prefix}.events"

    @property
    def unroutable_exchange(self) -> str:
        """Alternate exchange of every tier exchange (fanout)."""
        return f"{self.prefix}.unroutable"

    @property
    def unroutable_parked(self) -> str:
        """Keeps unroutable envelopes for operators."""
        return f"{self.prefix}.unroutable.parked"

    @property
    def unroutable_notify(self) -> str:
        """A copy the router consumes to count them and tell the sender."""
        return f"{self.prefix}.unroutable.notify"

    @property
    def dead_letter_exchange(self) -> str:
        return f"{self.prefix}.dead-letter"

    @property
    def dead_letter_parked(self) -> str:
        return f"{self.prefix}.dead-letter.parked"

    @property
    def dead_letter_notify(self) -> str:
        return f"{self.prefix}.dead-letter.notify"

    @property
    def directory_exchange(self) -> str:
        """Fanout of directory versions the operator applies (docs/directory.md, "Applying a
        new version")."""
        return f"{self.prefix}.directory"

    @property
    def directory_stream(self) -> str:
        """The stream bound to :attr:`directory_exchange` that keeps the last versions:
        every router, adapter and gateway reads it, from its last version on."""
        return f"{self.prefix}.directory.versions"

    @property
    def quarantine_queue(self) -> str:
        """Rejected envelopes, kept with their reason."""
        return f"{self.prefix}.quarantine"

    def tier_exchange(self, tier: Tier) -> str:
        return f"{self.prefix}.tier.{tier.number}.{tier.name}"

    def inbox_queue(self, system: str) -> str:
        """The inbox of a connected system: a direct agency's organ code or a hub id."""
        return f"{self.prefix}.inbox.{system}"

    def events_queue(self, system: str) -> str:
        return f"{self.prefix}.events.{system}"

    @property
    def events_operators_queue(self) -> str:
        """Every event, for operators (bound with ``#``)."""
        return f"{self.prefix}.events.operators"

    @staticmethod
    def event_routing_key(event_type: str, party: OrganCode) -> str:
        """``<event type>.<routing key of the agency to tell>``: a hub binds ``*.H53.#``."""
        return f"{event_type}.{party.routing_key}"
