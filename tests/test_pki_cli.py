"""``backbone pki``: the development CA's commands and the JSON verdict of ``verify``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from backbone.devtools.ca_cli import app

pytestmark = pytest.mark.clock  # scripts/clock-check runs it at fixed instants

runner = CliRunner()


@pytest.fixture
def ca_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    directory = tmp_path / "pki"
    monkeypatch.setenv("VDX_PKI_DIR", str(directory))
    assert runner.invoke(app, ["init"]).exit_code == 0
    return directory


def test_init_creates_the_ca_in_the_directory_named_by_the_environment(ca_dir: Path) -> None:
    assert {path.name for path in ca_dir.iterdir()} >= {
        "ca.cert.pem",
        "ca.key.pem",
        "crl.pem",
        "index.json",
    }


def test_issue_then_verify_prints_a_valid_verdict(ca_dir: Path) -> None:
    issued = runner.invoke(app, ["issue", "000.00.32.H53", "--name", "UBND huyện"])
    assert issued.exit_code == 0, issued.output
    assert "urn:qcvn102:organ:000.00.32.H53" in issued.output
    cert = ca_dir / "issued" / "000.00.32.H53.cert.pem"
    result = runner.invoke(app, ["verify", str(cert), "--as", "000.00.32.H53"])
    assert result.exit_code == 0, result.output
    verdict = json.loads(result.output)
    assert (verdict["valid"], verdict["identity"], verdict["usage"]) == (
        True,
        "000.00.32.H53",
        "sign",
    )


def test_verify_as_another_organ_code_prints_the_refusal_and_exits_1(ca_dir: Path) -> None:
    runner.invoke(app, ["issue", "000.00.32.H53"])
    cert = ca_dir / "issued" / "000.00.32.H53.cert.pem"
    result = runner.invoke(app, ["verify", str(cert), "--as", "000.00.33.H53"])
    assert result.exit_code == 1
    assert json.loads(result.output)["reason"] == "cert_wrong_binding"


def test_revoke_then_crl_makes_verify_refuse_as_revoked(ca_dir: Path) -> None:
    runner.invoke(app, ["issue", "vxp.saas.02"])
    revoked = runner.invoke(app, ["revoke", "vxp.saas.02", "--reason", "key-compromise"])
    assert revoked.exit_code == 0, revoked.output
    assert runner.invoke(app, ["crl"]).exit_code == 0
    cert = ca_dir / "issued" / "vxp.saas.02.cert.pem"
    result = runner.invoke(
        app,
        [
            "verify",
            str(cert),
            "--as",
            "vxp.saas.02",
            "--ca",
            str(ca_dir / "ca.cert.pem"),
            "--crl",
            str(ca_dir / "crl.pem"),
        ],
    )
    assert result.exit_code == 1
    assert json.loads(result.output)["reason"] == "cert_revoked"


def test_an_unknown_revocation_reason_is_a_usage_error(ca_dir: Path) -> None:
    result = runner.invoke(app, ["revoke", "000.00.32.H53", "--reason", "boredom"])
    assert result.exit_code == 2


def test_issue_without_a_ca_fails_with_a_message(tmp_path: Path) -> None:
    result = runner.invoke(app, ["issue", "000.00.32.H53", "--dir", str(tmp_path / "none")])
    assert result.exit_code == 1
    assert "no development CA" in result.output
