"""Configuration shared by the router and adapters: environment (``VDX_*``) over a YAML file.

The file is named by ``VDX_CONFIG`` (or passed to :meth:`Settings.load`); environment
variables win over it. Lists in the environment are JSON:
``VDX_TRUST_ANCHORS='["/etc/vdx/ca.pem"]'``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Self
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from backbone.broker.discovery import LOCAL_URL
from backbone.broker.tls import check_tls_settings, connection_url
from backbone.envelope import DEFAULT_MAX_ENVELOPE_SIZE
from backbone.pki.validation import CertificateValidator
from backbone.router.policy import RoutingPolicy
from backbone.tracking.auth import TokenBook
from backbone.tracking.wiring import DEFAULT_ZONE

__all__ = ["BrokerSettings", "FileSettings", "Settings"]


class FileSettings(BaseSettings):
    """Settings from a YAML file (given, or named by ``VDX_CONFIG``) with ``VDX_*``
    environment variables over it. The router's and the adapters' configurations are both."""

    model_config = SettingsConfigDict(env_prefix="VDX_", extra="forbid", frozen=True)

    @classmethod
    def load(cls, config_file: Path | None = None) -> Self:
        path = config_file or (
            Path(os.environ["VDX_CONFIG"]) if "VDX_CONFIG" in os.environ else None
        )
        values = yaml.safe_load(path.read_text(encoding="utf-8")) if path else None
        return cls(**(values or {}))

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The file's values arrive as init values; the environment wins over them.
        return (env_settings, init_settings)


class BrokerSettings(FileSettings):
    """The broker connection the router and adapters share: ``amqp_url`` and, for
    ``amqps://``, the TLS files (:mod:`backbone.broker.tls`)."""

    amqp_url: SecretStr
    amqp_ca_file: Path | None = Field(
        default=None,
        description="PEM of the CA that signed the broker's certificate (amqps:// only; "
        "without it the system's CAs are used). The certificate and host name are verified",
    )
    amqp_cert_file: Path | None = Field(
        default=None, description="PEM client certificate, for brokers that ask for one"
    )
    amqp_key_file: Path | None = Field(
        default=None, description="PEM key of amqp_cert_file; never logged"
    )

    @model_validator(mode="after")
    def _tls_fits_the_url(self) -> Self:
        check_tls_settings(
            self.amqp_url.get_secret_value(),
            self.amqp_ca_file,
            self.amqp_cert_file,
            self.amqp_key_file,
        )
        return self

    def connection_url(self) -> str:
        """The URL to connect with (TLS files folded in); it holds the password."""
        return connection_url(
            self.amqp_url.get_secret_value(),
            self.amqp_ca_file,
            self.amqp_cert_file,
            self.amqp_key_file,
        )


class Settings(BrokerSettings):
    """The router's configuration."""

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
    prefix: str = Field(
        default="vdx", pattern=r"^[a-z][a-z0-9-]{0,30}$", description="Broker name prefix"
    )
    store_url: str = Field(
        default="sqlite+aiosqlite:///var/router.db",
        description="Routing and dedup state: sqlite+aiosqlite:///FILE or postgresql+asyncpg://…",
    )
    prefetch: int = Field(default=256, gt=0, le=65535, description="Envelopes in flight")
    delivery_limit: int = Field(
        default=5, gt=0, description="Redeliveries before an envelope is dead-lettered"
    )
    http_port: int | None = Field(
        default=None, ge=1, le=65535, description="Serve /metrics, /healthz, /readyz on it"
    )
    routing_policy: RoutingPolicy = Field(
        default_factory=RoutingPolicy,
        description="Which tiers and subtrees may send to which (default: everyone to everyone)",
    )
    tracking_tokens: dict[str, str] = Field(
        default_factory=dict,
        description="Tracking API tokens: SHA-256 (hex) of each token → an organ code, "
        "several separated by commas (a hub's staff), or 'operator' (`backbone track token` "
        "mints one)",
    )
    overdue_check_seconds: float = Field(
        default=300.0, gt=0, description="Seconds between checks for overdue documents"
    )
    tracking_time_zone: str = Field(
        default=DEFAULT_ZONE, description="Where a document's due date is a day (IANA name)"
    )

    @field_validator("tracking_tokens")
    @classmethod
    def _known_holders(cls, tokens: dict[str, str]) -> dict[str, str]:
        TokenBook(tokens)  # raises ValueError for a malformed hash or holder
        return tokens

    @field_validator("tracking_time_zone")
    @classmethod
    def _known_zone(cls, zone: str) -> str:
        try:
            ZoneInfo(zone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {zone!r} (an IANA name)") from None
        return zone

    def certificate_validator(self) -> CertificateValidator:
        """The validator production uses: configured CA certificates, intermediates and CRLs."""
        return CertificateValidator.from_paths(
            self.trust_anchors, self.crls, intermediate_files=self.intermediates
        )
