"""The router's configuration keys: a YAML file with ``VDX_*`` environment variables over it
(:class:`~backbone.broker.settings.FileSettings`)."""

from __future__ import annotations

from pathlib import Path

from pydantic import AliasChoices, Field, SecretStr

from backbone.broker.settings import LOCAL_URL, BrokerSettings
from backbone.envelope import DEFAULT_MAX_ENVELOPE_SIZE
from backbone.envelope.chunked import ChunkLimits
from backbone.observability.listen import LOOPBACK
from backbone.pki.validation import CertificateValidator
from backbone.router.chunks import (
    DEFAULT_PER_SENDER,
    DEFAULT_TIMEOUT,
    DEFAULT_TOTAL,
    DEFAULT_WAITING_PER_ACCOUNT,
)
from backbone.router.policy import RoutingPolicy
from backbone.router.quarantine import DEFAULT_KEEP_BODY_BYTES
from backbone.router.ratelimit import RateLimit
from backbone.router.transition import DEFAULT_TRANSITION_WINDOW_DAYS

__all__ = ["RouterSettings"]


class RouterSettings(BrokerSettings):
    """The router's own keys (a replica's whole file: :class:`backbone.replica.Settings`)."""

    amqp_url: SecretStr = Field(
        default=SecretStr(LOCAL_URL),
        validation_alias=AliasChoices("VDX_AMQP_URL", "AMQP_URL", "amqp_url"),
        description="Broker URL; credentials never appear in logs",
    )
    directory: Path | None = Field(default=None, description="The agency directory file")
    trust_anchors: tuple[Path, ...] = Field(
        default=(), description="CA certificates (PEM bundles or DER) that certificates chain to"
    )
    intermediates: tuple[Path, ...] = Field(default=(), description="Intermediate CA files")
    crls: tuple[Path, ...] = Field(default=(), description="CRL files, one per issuing CA")
    max_envelope_bytes: int = Field(default=DEFAULT_MAX_ENVELOPE_SIZE, gt=0)
    quarantine_body_bytes: int = Field(
        default=DEFAULT_KEEP_BODY_BYTES,
        ge=0,
        description="Refused envelopes up to this size whose header could be read are kept "
        "whole in quarantine; others as a record (header, SHA-256, size, reason), not the body",
    )
    max_open_chunked_per_sender: int = Field(
        default=DEFAULT_PER_SENDER,
        gt=0,
        description="Chunked documents one sender may have under way (header routed, chunks "
        "to come) before the next is refused as too_many_open_documents",
    )
    max_open_chunked: int = Field(
        default=DEFAULT_TOTAL,
        gt=0,
        description="Chunked documents under way, all senders (counted in the store, across "
        "replicas)",
    )
    chunked_timeout_seconds: float = Field(
        default=DEFAULT_TIMEOUT.total_seconds(),
        gt=0,
        description="A chunked document's header is forgotten this long after it was routed: "
        "its later chunks are refused as chunk_foreign",
    )
    max_waiting_chunks_per_account: int = Field(
        default=DEFAULT_WAITING_PER_ACCOUNT,
        gt=0,
        description="Chunks of one publishing account a replica puts back waiting for their "
        "header at a time; the next is refused as too_many_waiting_chunks",
    )
    max_document_bytes: int = Field(
        default=ChunkLimits().max_document_bytes,
        gt=0,
        description="The largest chunked document a header may announce",
    )
    rate_limit: RateLimit = Field(
        default_factory=RateLimit,
        description="Per broker account: envelopes at once (burst) and per second "
        "(per_second) before the router refuses the excess as rate_limited",
    )
    prefix: str = Field(
        default="vdx", pattern=r"^[a-z][a-z0-9-]{0,30}$", description="Broker name prefix"
    )
    store_url: str = Field(
        default="sqlite+aiosqlite:///var/router.db",
        description="Routing and dedup state: sqlite+aiosqlite:///FILE or postgresql+asyncpg://…",
    )
    prefetch: int = Field(default=256, gt=0, le=65535, description="Envelopes in flight")
    chunk_prefetch: int = Field(
        default=4,
        gt=0,
        le=256,
        description="Chunks of chunked documents in flight (up to 8 MiB each), on their own queue",
    )
    delivery_limit: int = Field(
        default=5,
        gt=0,
        description="Failed processing attempts before the router dead-letters an envelope "
        "(counted by the router itself); also the broker's x-delivery-limit on the inbound "
        "queue and inboxes unless broker_delivery_limit is false",
    )
    broker_delivery_limit: bool = Field(
        default=True,
        description="Declare x-delivery-limit (= delivery_limit) on the inbound queue and "
        "inboxes, a backstop for deliveries the broker takes back without a verdict; false "
        "declares none (the broker's default: none on 3.x, 20 on 4.x). The broker refuses "
        "to change it on declared queues",
    )
    http_port: int | None = Field(
        default=None, ge=1, le=65535, description="Serve /metrics, /healthz, /readyz on it"
    )
    http_host: str = Field(
        default=LOOPBACK,
        min_length=1,
        description="The address the HTTP server listens on: loopback by default, since "
        "/metrics and /readyz need no token; 0.0.0.0 only where a scraper must reach it",
    )
    transition_window_days: int = Field(
        default=DEFAULT_TRANSITION_WINDOW_DAYS,
        ge=0,
        le=3660,
        description="Days after a code closes during which documents to it go on to its one "
        "full successor and its own envelopes are accepted with a warning; refused after "
        "(recipient_closed, sender_closed). 0: refused from the closing day",
    )
    routing_policy: RoutingPolicy = Field(
        default_factory=RoutingPolicy,
        description="Which tiers and subtrees may send to which (default: everyone to everyone)",
    )

    def certificate_validator(self) -> CertificateValidator:
        """The validator production uses: configured CA certificates, intermediates and CRLs."""
        return CertificateValidator.from_paths(
            self.trust_anchors, self.crls, intermediate_files=self.intermediates
        )
