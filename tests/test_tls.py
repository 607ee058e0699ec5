"""AMQPS: the router and adapters reach the broker over TLS and verify its certificate.

A throwaway RabbitMQ node (``tests.support.broker_nodes``) gets a TLS listener whose certificate a
test CA made here signed, for the host name ``localhost`` only."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlsplit, urlunsplit

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from pydantic import ValidationError

from adapters import AdapterClient, AdapterConfig
from backbone.broker.management import ManagementClient
from backbone.errors import BrokerUnavailableError
from backbone.pki.keys import key_usage
from backbone.replica import Settings
from backbone.router.pipeline import Pipeline
from backbone.router.service import Router, RouterOptions, start
from backbone.store.memory import MemoryStore
from backbone.wire.names import Names
from tests.support import Deployment, build_directory, document_edxml, make_pki, open_deployment
from tests.support.broker_nodes import LocalNode, free_ports

# Its throwaway RabbitMQ node boots beside no other (make test's workers: --dist loadgroup).
pytestmark = [pytest.mark.broker, pytest.mark.xdist_group("rabbitmq_nodes")]

G22, H41 = "000.00.00.G22", "000.00.00.H41"
REFUSED = "TLS verification of the broker's certificate failed"


@dataclass(frozen=True)
class TlsBroker:
    node: LocalNode
    port: int
    ca_file: Path  # the CA that signed the broker's certificate
    other_ca_file: Path  # a CA that did not

    def url(self, host: str = "localhost") -> str:
        return f"amqps://guest:guest@{host}:{self.port}/"


def _ca(directory: Path, name: str) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(key_usage(key_cert_sign=True, crl_sign=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .sign(key, hashes.SHA256())
    )
    (directory / f"{name}.pem").write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    return certificate, key


def _server_certificate(
    directory: Path, ca: tuple[x509.Certificate, ec.EllipticCurvePrivateKey]
) -> tuple[Path, Path]:
    """The broker's certificate: for DNS name ``localhost`` only (no IP address)."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca[0].subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False)
        .sign(ca[1], hashes.SHA256())
    )
    cert_file, key_file = directory / "broker.pem", directory / "broker.key"
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    key_file.chmod(0o600)
    return cert_file, key_file


@pytest.fixture(scope="module")
def tls_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsBroker]:
    root = tmp_path_factory.mktemp("tls")
    ca = _ca(root, "broker-ca")
    _ca(root, "other-ca")
    cert_file, key_file = _server_certificate(root, ca)
    amqp, dist, management, tls = free_ports(4)
    config = "\n".join(
        [
            f"listeners.ssl.default = {tls}",
            f"ssl_options.cacertfile = {root / 'broker-ca.pem'}",
            f"ssl_options.certfile = {cert_file}",
            f"ssl_options.keyfile = {key_file}",
            "ssl_options.verify = verify_none",
            "ssl_options.fail_if_no_peer_cert = false",
        ]
    )
    node = LocalNode(
        root,
        # One node name per test session: two sessions at once on one machine (the clock
        # check runs two) must not meet in epmd under one name.
        name=f"tls{os.getpid()}",
        amqp_port=amqp,
        dist_port=dist,
        management_port=management,
        extra_config=config,
    )
    with node:
        yield TlsBroker(node, tls, root / "broker-ca.pem", root / "other-ca.pem")


@pytest.fixture
async def tls_deployment(
    tls_broker: TlsBroker, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Deployment]:
    """A router (configured by the router's Settings) and broker users on the TLS node."""
    monkeypatch.setenv("VDX_MANAGEMENT_URL", tls_broker.node.management_url)
    settings = Settings(amqp_url=tls_broker.url(), amqp_ca_file=tls_broker.ca_file)
    async with open_deployment(settings.connection_url(), tmp_path) as deployment:
        yield deployment


def _over_tls(config: AdapterConfig, ca_file: Path, host: str = "localhost") -> AdapterConfig:
    """``config`` with its own account's amqps:// URL and ``amqp_ca_file`` set."""
    parts = urlsplit(config.amqp_url.get_secret_value())
    netloc = f"{parts.username}:{parts.password}@{host}:{parts.port}"
    url = urlunsplit(("amqps", netloc, parts.path, "", ""))
    values = config.model_dump()
    return AdapterConfig(**{**values, "amqp_url": url, "amqp_ca_file": ca_file})


@pytest.mark.clock
async def test_router_and_adapters_send_a_document_end_to_end_over_verified_amqps(
    tls_broker: TlsBroker, tls_deployment: Deployment
) -> None:
    clients = []
    for system in (G22, H41):
        client = AdapterClient(_over_tls(tls_deployment.config(system), tls_broker.ca_file))
        await client.start()
        clients.append(client)
    sender, recipient = clients
    try:
        inbox = tls_deployment.inbox(recipient)
        receipt = await sender.send(document_edxml(G22, [H41], 1))
        [item] = await inbox.wait_for(1)
        assert item.envelope_id == receipt.envelope_id
        assert item.message.sender.organ_id == G22
        expected = {"vdx-router", f"vdx-adapter {G22}", f"vdx-adapter {H41}"}
        assert await _ssl_of_connections(expected) == dict.fromkeys(expected, True)
    finally:
        await inbox.stop()
        for client in clients:
            await client.close()


async def _ssl_of_connections(names: set[str]) -> dict[str, bool]:
    """Whether each named connection uses TLS, as the broker reports it (its management API
    lists a new connection after a moment)."""
    found: dict[str, bool] = {}
    for _ in range(100):
        connections = await ManagementClient.from_env()._call("GET", "/api/connections")
        found = {
            name: bool(c.get("ssl"))
            for c in connections
            if (name := (c.get("client_properties") or {}).get("connection_name")) in names
        }
        if found.keys() == names:
            break
        await asyncio.sleep(0.1)
    return found


async def test_a_client_trusting_another_ca_or_dialling_another_name_is_refused(
    tls_broker: TlsBroker, tls_deployment: Deployment
) -> None:
    config = tls_deployment.config(G22)
    for refused in (
        _over_tls(config, tls_broker.other_ca_file),
        _over_tls(config, tls_broker.ca_file, host="127.0.0.1"),  # not the certificate's name
    ):
        with pytest.raises(BrokerUnavailableError) as caught:
            await AdapterClient(refused).start()
        assert REFUSED in caught.value.message
        password = urlsplit(refused.amqp_url.get_secret_value()).password
        assert password
        assert password not in caught.value.message
    wrong = Settings(amqp_url=tls_broker.url(), amqp_ca_file=tls_broker.other_ca_file)
    directory = build_directory()
    store = MemoryStore()
    pki = make_pki(tls_deployment.root / "router-pki")
    router = Router(
        RouterOptions(amqp_url=wrong.connection_url(), names=Names(prefix="tlsrefused")),
        directory=directory,
        pipeline=Pipeline(directory, pki.validator(), store, Names(prefix="tlsrefused")),
        store=store,
    )
    with pytest.raises(BrokerUnavailableError) as caught:
        await start(router)
    assert caught.value.message.startswith(f"the router cannot reach the broker: {REFUSED}")


def test_tls_files_without_amqps_are_refused(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    with pytest.raises(ValidationError, match="amqp_ca_file set, but amqp_url is amqp://"):
        Settings(amqp_url="amqp://guest:guest@localhost:5672/", amqp_ca_file=ca)


def test_turning_verification_off_in_the_url_is_refused() -> None:
    with pytest.raises(ValidationError, match="cannot be turned off"):
        Settings(amqp_url="amqps://guest:guest@localhost:5671/?no_verify_ssl=1")


def test_a_client_certificate_needs_its_key(tmp_path: Path) -> None:
    cert = tmp_path / "client.pem"
    cert.write_text("x")
    with pytest.raises(ValidationError, match="amqp_cert_file and amqp_key_file go together"):
        Settings(amqp_url="amqps://guest:guest@localhost:5671/", amqp_cert_file=cert)


def test_the_connection_url_carries_the_tls_files_for_amqps_only(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("x")
    settings = Settings(amqp_url="amqps://u:p@broker.example:5671/vh", amqp_ca_file=ca)
    parts = urlsplit(settings.connection_url())
    assert (parts.scheme, parts.netloc, parts.path) == ("amqps", "u:p@broker.example:5671", "/vh")
    assert parse_qs(parts.query) == {"cafile": [str(ca.resolve())]}
    plain = Settings(amqp_url="amqp://u:p@broker.example:5672/")
    assert plain.connection_url() == "amqp://u:p@broker.example:5672/"
