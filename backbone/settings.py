"""Configuration shared by the router and adapters: environment (``VDX_*``) over a YAML file.

The file is named by ``VDX_CONFIG`` (or passed to :meth:`Settings.load`); environment
variables win over it. Lists in the environment are JSON:
``VDX_TRUST_ANCHORS='["/etc/vdx/ca.pem"]'``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Self

import yaml
from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from backbone.broker.discovery import LOCAL_URL
from backbone.envelope import DEFAULT_MAX_ENVELOPE_SIZE
from backbone.pki.validation import CertificateValidator
from backbone.router.policy import RoutingPolicy

__all__ = ["FileSettings", "Settings"]


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


class Settings(FileSettings):
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

    def certificate_validator(self) -> CertificateValidator:
        """The validator production uses: configured CA certificates, intermediates and CRLs."""
        return CertificateValidator.from_paths(
            self.trust_anchors, self.crls, intermediate_files=self.intermediates
        )
