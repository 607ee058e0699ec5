"""An adapter's configuration: environment (``VDX_*``) over a YAML file, as for the router.

    amqp_url: amqps://hub-00.53.W00:…@broker.example/   # the system's own broker account
    amqp_ca_file: /etc/vdx/broker-ca.pem   # the CA of the broker's TLS certificate (verified)
    system: 00.53.W00             # a hub id, or the organ code of a direct agency
    prefix: vdx
    directory: /etc/vdx/directory.yaml
    trust_anchors: [/etc/vdx/ca.pem]
    crls: [/etc/vdx/ca.crl]
    prefetch: 64
    agencies:                     # the agencies this system serves, each with its own key
      - organ_code: 000.00.32.H53
        key: /etc/vdx/keys/000.00.32.H53.key.pem
        certificate: /etc/vdx/keys/000.00.32.H53.cert.pem
        folder: /srv/vdx/000.00.32.H53       # used by the drop folder only
    inherited_keys:               # closed agencies a served agency took over (a merge)
      - organ_code: 000.21.32.H53             # closed, its full successor served here
        key: /etc/vdx/keys/000.21.32.H53.key.pem
        certificate: /etc/vdx/keys/000.21.32.H53.cert.pem   # optional: the directory's

Loading checks everything that can be checked without the broker: the directory loads, every
served agency is served by ``system`` there, the broker account in ``amqp_url`` is the
system's, and each key belongs to its certificate; each inherited key's code is closed and
taken over in full by a served agency (:mod:`adapters.inheritance`).
:meth:`AdapterConfig.resolve` returns the loaded directory and keys so that nothing is read
twice.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Self
from urllib.parse import unquote, urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, SecretStr, model_validator

from adapters.inheritance import served_heir
from backbone.broker.settings import BrokerSettings
from backbone.directory import Agency, Directory, Hub, load_directory
from backbone.envelope import DEFAULT_MAX_ENVELOPE_SIZE
from backbone.envelope.chunked import DEFAULT_CHUNK_BYTES, ChunkLimits
from backbone.errors import CertificateBindingError, DirectoryError, OrganCodeError, PkiError
from backbone.observability.listen import LOOPBACK
from backbone.organ import OrganCode, parse_identifier
from backbone.pki.keys import load_private_key
from backbone.pki.validation import CertificateValidator

__all__ = [
    "AdapterConfig",
    "GatewaySystem",
    "InheritedIdentity",
    "InheritedKey",
    "ResolvedConfig",
    "ServedAgency",
    "ServedIdentity",
]


def _organ_code(text: str) -> str:
    try:
        return str(OrganCode.parse(text))
    except OrganCodeError as error:
        raise ValueError(error.message) from None


def _system_id(text: str) -> str:
    try:
        return str(parse_identifier(text))
    except OrganCodeError as error:
        raise ValueError(error.message) from None


class ServedAgency(BaseModel):
    """One agency the adapter acts for: its signing/decryption key and certificate."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    organ_code: Annotated[str, AfterValidator(_organ_code)]
    key: Path = Field(description="PEM private key (RSA); never logged")
    certificate: Path = Field(description="PEM certificate of that key")
    folder: Path | None = Field(default=None, description="Drop-folder root for this agency")


class InheritedKey(BaseModel):
    """The key of a closed agency that a served agency took over (a merge hands over the
    records and the keys): documents the router forwards from it are still encrypted to it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    organ_code: Annotated[str, AfterValidator(_organ_code)]
    key: Path = Field(description="PEM private key (RSA) of the closed agency; never logged")
    certificate: Path | None = Field(
        default=None, description="PEM certificate of that key; by default the directory's"
    )


# The gateway's connected systems (adapters.gateway, docs/gateway.md):
#   gateway_systems:
#     - systemid: qlvb-so-noi-vu
#       secret_file: /etc/vdx/secrets/qlvb-so-noi-vu   # or secret_env: VDX_SECRET_QLVB
#       acts_for: [000.00.32.H53]                      # empty: every agency served here
class GatewaySystem(BaseModel):
    """One connected software system: its ``systemid``, where its secret is, and the
    agencies it may act for."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    systemid: str = Field(min_length=1, max_length=128, pattern=r"^[\x21-\x7e]+$")
    secret_file: Path | None = Field(default=None, description="first line is the secret")
    secret_env: str | None = Field(default=None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    acts_for: tuple[Annotated[str, AfterValidator(_organ_code)], ...] = ()

    @model_validator(mode="after")
    def _one_secret_source(self) -> Self:
        if (self.secret_file is None) == (self.secret_env is None):
            raise ValueError(
                f"system {self.systemid}: set exactly one of secret_file and secret_env"
            )
        return self


@dataclass(frozen=True, slots=True)
class ServedIdentity:
    """A served agency with its key material loaded."""

    organ_code: str
    key: rsa.RSAPrivateKey = field(repr=False)
    certificate: x509.Certificate
    folder: Path | None


@dataclass(frozen=True, slots=True)
class InheritedIdentity:
    """A closed agency's key, held by ``heir``, the served agency that took it over."""

    organ_code: str  # the closed code its key wraps name
    heir: str
    key: rsa.RSAPrivateKey = field(repr=False)


@dataclass(slots=True)
class ResolvedConfig:
    """What :meth:`AdapterConfig.resolve` loaded and checked. ``directory`` is replaced
    when the adapter takes up a version the operator applied (every reader shares this
    object, so they all read the new one)."""

    directory: Directory
    broker_account: str
    agencies: dict[str, ServedIdentity]  # by organ code
    inherited: dict[str, InheritedIdentity] = field(default_factory=dict)  # by closed code


_DEFAULT_CHUNKS = ChunkLimits()


class AdapterConfig(BrokerSettings):
    """An adapter's configuration (one connected system, its served agencies)."""

    # Only VDX_AMQP_URL (the prefix, no alias): a bare AMQP_URL is the operator's or test
    # broker URL, not this system's own account, and must not silently replace it.
    amqp_url: SecretStr = Field(
        description="Broker URL with the system's own account; never logged",
    )
    system: Annotated[str, AfterValidator(_system_id)] = Field(
        description="The connected system: a direct agency's organ code or a hub id"
    )
    prefix: str = Field(default="vdx", pattern=r"^[a-z][a-z0-9-]{0,30}$")
    directory: Path = Field(description="The agency directory file")
    trust_anchors: tuple[Path, ...] = Field(min_length=1)
    intermediates: tuple[Path, ...] = ()
    crls: tuple[Path, ...] = ()
    prefetch: int = Field(default=64, gt=0, le=65535, description="Envelopes in flight")
    delivery_limit: int = Field(
        default=5,
        gt=0,
        description="Failures of one inbox message (a stale CRL, the store or broker gone, a "
        "bug) before the adapter dead-letters it itself instead of handing it back; counted by "
        "the adapter in memory, whatever the broker's delivery limit",
    )
    max_envelope_bytes: int = Field(default=DEFAULT_MAX_ENVELOPE_SIZE, gt=0)
    # Large documents in chunks (docs/large-documents.md).
    chunk_bytes: int = Field(
        default=DEFAULT_CHUNK_BYTES,
        gt=0,
        description="A signed document larger than this travels in chunks of this size",
    )
    max_document_bytes: int = Field(
        default=_DEFAULT_CHUNKS.max_document_bytes, gt=0, description="The largest document"
    )
    staging_dir: Path | None = Field(
        default=None,
        description="Where chunks of documents being received are staged (and large "
        "documents being sent are written once signed); by default `staging` in "
        "gateway_state, else `.work/staging` in the first agency's drop folder, else a "
        "directory of this process's own in the temporary directory (docs/adapter.md)",
    )
    staging_budget_bytes: int = Field(
        default=4 << 30, gt=0, description="Disk the staging area may take at most"
    )
    staging_timeout_seconds: float = Field(
        default=3600.0,
        gt=0,
        description="An incomplete document staged this long is deleted; its sender is told",
    )
    publish_timeout: float = Field(
        default=30.0, gt=0, description="Seconds to wait for a publisher confirm"
    )
    reconnect_interval: float = Field(
        default=5.0, gt=0, description="Seconds between reconnection attempts"
    )
    agencies: tuple[ServedAgency, ...] = Field(min_length=1)
    inherited_keys: tuple[InheritedKey, ...] = ()
    http_port: int | None = Field(
        default=None, ge=1, le=65535, description="Serve /metrics, /healthz, /readyz on it"
    )
    http_host: str = Field(
        default=LOOPBACK,
        min_length=1,
        description="The address the HTTP server listens on: loopback by default, since "
        "/metrics and /readyz need no token; 0.0.0.0 only where a scraper must reach it",
    )
    certificate_warning_days: int = Field(
        default=14, gt=0, description="/readyz fails when an own certificate expires sooner"
    )
    # The gateway (adapters.gateway, docs/gateway.md): the axis' HTTP API for the agencies'
    # existing software. Off unless gateway_port is set.
    gateway_port: int | None = Field(default=None, ge=1, le=65535)
    gateway_host: str = Field(
        default=LOOPBACK,
        min_length=1,
        description="The gateway's listening address: loopback by default; 0.0.0.0 (with "
        "TLS) where the agencies' software runs on other machines",
    )
    gateway_tls_certificate: Path | None = Field(default=None, description="PEM chain")
    gateway_tls_key: Path | None = Field(default=None, description="PEM key; never logged")
    gateway_state: Path | None = Field(
        default=None, description="Directory of the gateway's durable state (SQLite)"
    )
    gateway_systems: tuple[GatewaySystem, ...] = ()

    @property
    def broker_account(self) -> str:
        """The user name in ``amqp_url`` (URL-decoded)."""
        user = urlsplit(self.amqp_url.get_secret_value()).username
        return unquote(user) if user else "guest"

    @property
    def chunk_limits(self) -> ChunkLimits:
        """The limits on chunked documents, from ``chunk_bytes`` and ``max_document_bytes``
        (:class:`ConfigurationError` naming the key when they do not fit together)."""
        floor = min(_DEFAULT_CHUNKS.min_chunk_bytes, self.chunk_bytes)
        return ChunkLimits(
            max_document_bytes=self.max_document_bytes,
            min_chunk_bytes=floor,
            max_chunk_bytes=max(_DEFAULT_CHUNKS.max_chunk_bytes, self.chunk_bytes),
            chunk_bytes=self.chunk_bytes,
        )

    def staging_root(self) -> Path:
        """``staging_dir``, or a default no other adapter process uses: under the adapter's
        own durable state (the gateway's, or its first drop folder's ``.work``), which one
        process holds at a time; without either (the Python API), a directory of this
        process's own (its id in the name): documents half received when it stops are not
        found by the next process."""
        if self.staging_dir is not None:
            return self.staging_dir
        if self.gateway_state is not None and self.gateway_port is not None:
            return self.gateway_state / "staging"
        folders = [agency.folder for agency in self.agencies if agency.folder is not None]
        if folders:
            return folders[0] / ".work" / "staging"
        return Path(tempfile.gettempdir()) / f"vdx-staging-{self.system}-{os.getpid()}"

    def certificate_validator(self) -> CertificateValidator:
        return CertificateValidator.from_paths(
            self.trust_anchors, self.crls, intermediate_files=self.intermediates
        )

    def resolve(self, directory: Directory | None = None) -> ResolvedConfig:
        """Load the directory (unless given) and the keys, and check that they fit together.

        Raises :class:`DirectoryError` when the system, its broker account or a served
        agency does not match the directory, :class:`CertificateBindingError` when a key is
        not its certificate's, :class:`PkiError` for unreadable key or certificate files."""
        directory = directory if directory is not None else load_directory(self.directory)
        system = self._system_entry(directory)
        account = system.broker_account
        if account != self.broker_account:
            raise DirectoryError(
                f"amqp_url logs in as {self.broker_account!r}, but {self.system}'s broker "
                f"account in the directory is {account!r}"
            )
        served: dict[str, ServedIdentity] = {}
        for agency in self.agencies:
            self._check_served(directory, agency.organ_code)
            if agency.organ_code in served:
                raise DirectoryError(f"agency {agency.organ_code} is configured twice")
            served[agency.organ_code] = _load_identity(agency)
        inherited: dict[str, InheritedIdentity] = {}
        for entry in self.inherited_keys:
            if entry.organ_code in inherited:
                raise DirectoryError(
                    f"inherited_keys: {entry.organ_code} is listed twice: keep one entry"
                )
            inherited[entry.organ_code] = _load_inherited(directory, entry, served)
        return ResolvedConfig(directory, self.broker_account, served, inherited)

    def _system_entry(self, directory: Directory) -> Hub | _DirectAgency:
        identifier = parse_identifier(self.system)
        if isinstance(identifier, OrganCode):
            agency = directory.agency(identifier)
            if agency.broker_account is None:
                raise DirectoryError(
                    f"system {self.system} connects through hub {agency.hub}, not directly: "
                    f"configure the hub's adapter instead"
                )
            return _DirectAgency(agency.broker_account)
        return directory.hub(self.system)

    def _check_served(self, directory: Directory, code: str) -> None:
        serving = directory.serving_system(code)
        if serving.system_id != self.system:
            raise DirectoryError(
                f"agency {code} is served by {serving.system_id} in the directory, not by "
                f"{self.system}: this adapter cannot receive or send for it"
            )


@dataclass(frozen=True, slots=True)
class _DirectAgency:
    broker_account: str


def _load_identity(agency: ServedAgency) -> ServedIdentity:
    try:
        key = load_private_key(agency.key)
    except OSError as error:
        raise PkiError(
            f"cannot read the key of {agency.organ_code} from {agency.key}: {error.strerror}"
        ) from None
    try:
        certificate = x509.load_pem_x509_certificate(agency.certificate.read_bytes())
    except (OSError, ValueError) as error:
        raise PkiError(
            f"cannot load the certificate of {agency.organ_code} from {agency.certificate}: {error}"
        ) from None
    if _public(certificate.public_key()) != _public(key.public_key()):
        raise CertificateBindingError(
            f"the key {agency.key} is not the key of certificate {agency.certificate} "
            f"({agency.organ_code})"
        )
    return ServedIdentity(agency.organ_code, key, certificate, agency.folder)


def _load_inherited(
    directory: Directory, entry: InheritedKey, served: Mapping[str, ServedIdentity]
) -> InheritedIdentity:
    """``entry``'s key, once its code is closed and taken over in full by a served agency,
    and the key is its certificate's (the one given, else the directory's, which senders
    encrypt to). Every error names ``inherited_keys``, the code and the fix, never the key."""
    code = entry.organ_code
    where = f"inherited_keys: {code}"
    agency = directory.get(code)
    if agency is None:
        raise DirectoryError(
            f"{where} is not in the directory: list only closed agencies' primary codes"
        )
    if agency.active:
        raise DirectoryError(
            f"{where} is in service in the directory, not closed: remove it from "
            "inherited_keys (its own adapter holds its key)"
        )
    heir = served_heir(directory, code, served)
    if heir is None:
        raise DirectoryError(
            f"{where} was not taken over in full by an agency this adapter serves "
            f"(its successors: {_successors(agency)}): the router forwards its documents "
            "to its one full successor only; remove it, or configure it on that successor's "
            "adapter"
        )
    try:
        key = load_private_key(entry.key)
    except OSError as error:
        raise PkiError(
            f"{where}: cannot read the key {entry.key}: {error.strerror}; give the closed "
            "agency's PEM private key"
        ) from None
    except PkiError:
        raise PkiError(
            f"{where}: {entry.key} is not an unencrypted PEM RSA private key; give the closed "
            "agency's key"
        ) from None
    certificate = _inherited_certificate(directory, entry, agency)
    if _public(certificate.public_key()) != _public(key.public_key()):
        named = entry.certificate or "its certificate in the directory"
        raise CertificateBindingError(
            f"{where}: the key {entry.key} is not the key of {named}: give the key the "
            "closed agency's certificate was issued for"
        )
    return InheritedIdentity(code, heir, key)


def _inherited_certificate(
    directory: Directory, entry: InheritedKey, agency: Agency
) -> x509.Certificate:
    where = f"inherited_keys: {entry.organ_code}"
    listed = directory.certificate_pem(agency)
    if entry.certificate is None:
        if listed is None:
            raise PkiError(
                f"{where} has no certificate in the directory: set `certificate:` to the "
                "closed agency's certificate"
            )
        pem, source = listed, "its certificate in the directory"
    else:
        try:
            pem, source = entry.certificate.read_bytes(), str(entry.certificate)
        except OSError as error:
            raise PkiError(
                f"{where}: cannot read the certificate {entry.certificate}: {error.strerror}"
            ) from None
    try:
        certificate = x509.load_pem_x509_certificate(pem)
    except ValueError:
        raise PkiError(f"{where}: {source} is not a PEM certificate") from None
    if listed is not None and entry.certificate is not None:
        # Senders encrypt to the directory's certificate: another one's key opens nothing.
        try:
            in_directory = x509.load_pem_x509_certificate(listed)
        except ValueError:
            in_directory = certificate  # the directory's own problem, reported where read
        if _public(in_directory.public_key()) != _public(certificate.public_key()):
            raise CertificateBindingError(
                f"{where}: {entry.certificate} is not its certificate in the directory, "
                "which senders encrypt to: give the key of the directory's certificate"
            )
    return certificate


def _successors(agency: Agency) -> str:
    named = [f"{s.organ_code} ({s.share.value})" for s in agency.successors]
    return ", ".join(named) if named else "none"


def _public(key: object) -> bytes:
    if not isinstance(key, rsa.RSAPublicKey):
        return b""
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
