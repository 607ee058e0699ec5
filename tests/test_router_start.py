"""A router that would refuse every envelope refuses to start instead, in one line: no CRL
for a CA (every envelope would be `revocation_unknown`), or directory certificates that
cannot be read. `backbone directory check` finds the same certificate problems first."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
import yaml

from backbone.clock import utc_now
from backbone.directory import dump_directory
from backbone.errors import DirectoryError, Reason, RevocationUnknownError
from backbone.replica import Settings
from backbone.replica.cli import build_router
from testkit.exchange import DIRECT, build_directory
from testkit.pki import DevPki, make_pki
from tests.support.cli_process import run_backbone


@pytest.fixture
def pki(tmp_path: Path) -> DevPki:
    return make_pki(tmp_path / "pki")


def write_directory(tmp_path: Path, certificates: dict[str, str]) -> Path:
    path = tmp_path / "directory.yaml"
    dump_directory(build_directory(certificates).file, path)
    return path


def settings_file(tmp_path: Path, pki: DevPki, directory: Path, *, crls: bool) -> Path:
    values = {
        "directory": str(directory),
        "trust_anchors": [str(pki.ca.cert_path)],
        "crls": [str(pki.ca.crl_path)] if crls else [],
        "store_url": f"sqlite+aiosqlite:///{tmp_path / 'router.db'}",
    }
    path = tmp_path / "router.yaml"
    path.write_text(yaml.safe_dump(values))
    return path


async def test_a_router_without_a_crl_for_its_ca_refuses_to_start(
    tmp_path: Path, pki: DevPki
) -> None:
    config = settings_file(tmp_path, pki, write_directory(tmp_path, {}), crls=False)
    with pytest.raises(RevocationUnknownError) as caught:
        await build_router(Settings.load(config))
    assert caught.value.reason is Reason.REVOCATION_UNKNOWN
    assert "no CRL from" in caught.value.message
    assert "`crls:`" in caught.value.message


async def test_the_same_router_with_the_crl_is_built(tmp_path: Path, pki: DevPki) -> None:
    config = settings_file(tmp_path, pki, write_directory(tmp_path, {}), crls=True)
    router = await build_router(Settings.load(config))
    await router.store.close()


def test_the_router_command_says_so_in_one_error_line(tmp_path: Path, pki: DevPki) -> None:
    config = settings_file(tmp_path, pki, write_directory(tmp_path, {}), crls=False)
    result = run_backbone("router", "run", "--config", str(config))
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: [revocation_unknown] ")


def test_an_expired_crl_is_a_gap_from_the_moment_it_expires(pki: DevPki) -> None:
    validator = pki.validator()
    assert validator.revocation_gaps() == []
    later = utc_now() + timedelta(days=365)
    (gap,) = validator.revocation_gaps(at=later)
    assert "expired on" in gap


async def test_a_directory_certificate_that_cannot_be_read_stops_the_router_and_the_check(
    tmp_path: Path, pki: DevPki
) -> None:
    good = str(pki.agency(DIRECT[0]).cert_path)
    missing = str(tmp_path / "gone.pem")
    directory = write_directory(tmp_path, {DIRECT[0]: good, DIRECT[1]: missing})
    config = settings_file(tmp_path, pki, directory, crls=True)
    with pytest.raises(DirectoryError, match=r"1 certificate\(s\) cannot be used.*gone\.pem"):
        await build_router(Settings.load(config))
    result = run_backbone("directory", "check", str(directory))
    assert result.returncode == 1
    assert "gone.pem" in result.stderr
    assert DIRECT[1] in result.stderr


def test_a_certificate_bound_to_another_agency_is_found_by_the_check(
    tmp_path: Path, pki: DevPki
) -> None:
    other = str(pki.agency(DIRECT[1]).cert_path)
    directory = write_directory(tmp_path, {DIRECT[0]: other})
    result = run_backbone("directory", "check", str(directory))
    assert result.returncode == 1
    assert f"{DIRECT[0]}:" in result.stderr
    assert "presented for" in result.stderr
