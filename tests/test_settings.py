"""Configuration: a YAML file, with the environment over it; production trust from paths."""

from __future__ import annotations

from pathlib import Path

import pytest

from backbone.errors import CertificateUntrustedError, ConfigurationError, Reason
from backbone.organ import OrganCode
from backbone.replica import Settings
from backbone.router.ratelimit import RateLimit
from tests.support import make_pki


def test_file_values_load_and_the_environment_wins_over_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "vdx.yaml"
    config.write_text("directory: /srv/vdx/directory.yaml\nmax_envelope_bytes: 1000\n")
    monkeypatch.delenv("AMQP_URL", raising=False)
    monkeypatch.setenv("VDX_MAX_ENVELOPE_BYTES", "2000")
    settings = Settings.load(config)
    assert settings.directory == Path("/srv/vdx/directory.yaml")
    assert settings.max_envelope_bytes == 2000


def test_broker_credentials_are_never_shown(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AMQP_URL", "amqp://agency:s3cret@broker:5672/")
    settings = Settings.load()
    assert "s3cret" not in repr(settings)
    assert settings.amqp_url.get_secret_value().endswith("@broker:5672/")


def test_unknown_keys_in_the_file_are_refused(tmp_path: Path) -> None:
    config = tmp_path / "vdx.yaml"
    config.write_text("directroy: typo.yaml\n")
    with pytest.raises(ConfigurationError, match="unknown key `directroy`") as caught:
        Settings.load(config)
    assert caught.value.reason is Reason.CONFIG_KEY_UNKNOWN


def test_the_configured_ca_and_crl_paths_make_the_production_validator(tmp_path: Path) -> None:
    pki = make_pki(tmp_path / "pki")
    foreign = make_pki(tmp_path / "foreign")
    settings = Settings(trust_anchors=(pki.ca.cert_path,), crls=(pki.ca.crl_path,))
    validator = settings.certificate_validator()
    code = OrganCode.parse("000.00.00.H41")
    assert validator.validate(pki.agency(str(code)).certificate, claimed=code, usage="sign")
    with pytest.raises(CertificateUntrustedError):
        validator.validate(foreign.agency(str(code)).certificate, claimed=code, usage="sign")


def test_the_rate_limit_is_read_from_the_file_and_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert Settings().rate_limit == RateLimit(per_second=20, burst=3000)
    config = tmp_path / "vdx.yaml"
    config.write_text("rate_limit: {per_second: 5, burst: 400}\n")
    assert Settings.load(config).rate_limit == RateLimit(per_second=5, burst=400)
    monkeypatch.setenv("VDX_RATE_LIMIT", '{"per_second": 2, "burst": 50}')
    assert Settings.load(config).rate_limit == RateLimit(per_second=2, burst=50)
