"""The gateway's edges: HTTPS, the SDK's leftover and differently cased parameters, and a
hub's software proposing agencies for the operator."""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import ssl
from pathlib import Path

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from typer.testing import CliRunner

from adapters.cli import app
from testkit import Deployment, document_edxml
from tests.support import adapter_deployment_fixture  # noqa: F401
from tests.support.gateway import SDK_MADE_AT, call, running_gateway, until

pytestmark = pytest.mark.clock  # document ids carry the Vietnam date, from backbone.clock

A, B = "000.00.00.G22", "000.00.00.H41"
HUB, H53_DISTRICT = "00.53.W00", "000.00.32.H53"


def self_signed(directory: Path) -> tuple[Path, Path]:
    """A TLS certificate for 127.0.0.1 and its key, valid around the SDK's fixed instant
    and for years after (the handshake checks the machine's clock, not the product's)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "gateway.test")])
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(SDK_MADE_AT - dt.timedelta(days=1))
        .not_valid_after(SDK_MADE_AT + dt.timedelta(days=36500))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "gateway.pem", directory / "gateway.key"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


async def test_the_gateway_speaks_https_with_its_certificate(
    adapter_deployment: Deployment, tmp_path: Path
) -> None:
    certificate, key = self_signed(tmp_path)
    tls = {"gateway_tls_certificate": certificate, "gateway_tls_key": key}
    async with running_gateway(adapter_deployment, A, tmp_path / "a", extra=tls) as gateway:
        assert gateway.endpoint.startswith("https://")
        software = gateway.sdk(verify=ssl.create_default_context(cafile=str(certificate)))
        found = await call(software.received_list)
        assert found is not None
        assert (found["status"], found["data"]) == ("OK", [])


async def test_leftover_and_differently_cased_parameters_are_taken_as_the_sdk_sends_them(
    adapter_deployment: Deployment, tmp_path: Path
) -> None:
    async with (
        running_gateway(adapter_deployment, A, tmp_path / "a") as gateway_a,
        running_gateway(adapter_deployment, B, tmp_path / "b") as gateway_b,
    ):
        for number in (1, 2):
            sent = await call(gateway_a.sdk().send_edoc, document_edxml(A, [B], number), sender=A)
            assert sent is not None
            assert sent["status"] == "OK"
        software = gateway_b.sdk()  # one service object: its map keeps every call's keys
        listed = await until(software.received_list, lambda r: len(r["data"]) == 2)
        first, second = (item["docId"] for item in listed["data"])

        fetched = await call(software.get_edoc, first)  # leaves docId and filePath behind
        assert fetched is not None
        assert fetched["status"] == "OK"
        # `docid` as some software spells it, beside the leftover `docId` of the same value.
        done = await call(software.json_call, "updateStatus", {"docid": first, "status": "done"})
        assert done is not None
        assert done["status"] == "OK", done
        assert {"docId", "docid", "filePath"} <= set(software.headers)

        # The leftover `docId` now names another document than `docid`: refused, not guessed.
        await call(software.get_edoc, second)
        ambiguous = await call(
            software.json_call, "updateStatus", {"docid": first, "status": "done"}
        )
        assert ambiguous is not None
        assert (ambiguous["status"], ambiguous["ErrorCode"]) == (
            "FAIL",
            "gateway_request_malformed",
        )
        remaining = await call(software.received_list)
        assert remaining is not None
        assert [item["docId"] for item in remaining["data"]] == [second]


async def test_a_hubs_software_proposes_an_agency_the_operator_then_sees(
    adapter_deployment: Deployment, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with running_gateway(
        adapter_deployment, HUB, tmp_path / "hub", acts_for=[H53_DISTRICT]
    ) as hub:
        proposal = {
            "id": "",
            "pcode": H53_DISTRICT,
            "code": "002.21.32.H53",
            "name": "Trường Mầm non Tân Bình",
            "mail": "mamnon@example.gov.vn",
            "mobile": "",
            "fax": "",
        }
        software = hub.sdk()
        software.headers["Content-Type"] = "application/json"
        answer = await call(_register, software, proposal)
        assert answer["status"] == "OK", answer
        config = hub.client.config

    # The operator's command reads the gateway's state.
    monkeypatch.setattr("adapters.cli.configure_logging", lambda: None)
    config_file = tmp_path / "hub.yaml"
    document = json.loads(config.model_dump_json(exclude={"amqp_url"}))
    document["amqp_url"] = config.amqp_url.get_secret_value()
    config_file.write_text(yaml.safe_dump(document, allow_unicode=True))
    result = CliRunner().invoke(app, ["proposals", "--config", str(config_file)])
    assert result.exit_code == 0, result.output
    [found] = json.loads(result.output)
    assert (found["system"], found["action"], found["agency"]) == (
        hub.system_id,
        "register",
        "002.21.32.H53",
    )
    assert found["details"]["name"] == "Trường Mầm non Tân Bình"


def _register(software: object, proposal: dict[str, str]) -> dict[str, object]:
    """registerAgency: the one JSON operation whose parameters are the body."""
    import httpx

    from testkit.vxp_client import SdkClient

    assert isinstance(software, SdkClient)
    headers = software.signed_headers()
    body = json.dumps(proposal, ensure_ascii=False).encode()
    response = httpx.post(f"{software.endpoint}/registerAgency", headers=headers, content=body)
    found = response.json()
    assert isinstance(found, dict)
    return found
