"""The broker connection the router and adapters share, and the way both read their
configuration: environment (``VDX_*``) over a YAML file.

The file is named by ``VDX_CONFIG`` (or passed to :meth:`Settings.load`); environment
variables win over it. Lists in the environment are JSON:
``VDX_TRUST_ANCHORS='["/etc/vdx/ca.pem"]'``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Self

from pydantic import Field, SecretStr, ValidationError, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from backbone.broker.config_problems import read_config_file, settings_problem
from backbone.broker.tls import check_tls_settings, connection_url

__all__ = ["LOCAL_URL", "BrokerSettings", "FileSettings"]

# A broker on this machine with RabbitMQ's loopback-only guest account: the default.
LOCAL_URL = "amqp://guest:guest@127.0.0.1:5672/"


class FileSettings(BaseSettings):
    """Settings from a YAML file (given, or named by ``VDX_CONFIG``) with ``VDX_*``
    environment variables over it. The router's and the adapters' configurations are both."""

    model_config = SettingsConfigDict(env_prefix="VDX_", extra="forbid", frozen=True)

    @classmethod
    def load(cls, config_file: Path | None = None) -> Self:
        path = config_file or (
            Path(os.environ["VDX_CONFIG"]) if "VDX_CONFIG" in os.environ else None
        )
        values = read_config_file(path) if path else {}
        try:
            return cls(**values)
        except ValidationError as error:
            raise settings_problem(error, sorted(cls.model_fields), path) from None

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
    # Without it a broker that accepts the TCP connection and never answers (a wedged
    # node, a port that is not AMQP's) would hold the process at start with nothing said.
    connect_timeout: float = Field(
        default=30.0,
        gt=0,
        description="Seconds the broker has to accept a connection and answer the AMQP "
        "handshake (TLS included)",
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
