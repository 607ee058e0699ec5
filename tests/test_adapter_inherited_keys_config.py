"""``inherited_keys`` checked at start against the directory (no broker needed): a closed
code taken over in full by a served agency, with its own key; anything else is one precise
error naming the key and the fix, never the key itself."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from adapters.config import AdapterConfig
from backbone.directory import agency_account, dump_directory, hub_account
from backbone.errors import BackboneError, Reason
from testkit import DIRECT, HUB, VIA_HUB, DevPki, build_directory, make_pki
from tests.support.cli_process import run_backbone
from tests.support.reform import G01, G22, H41, H41_COMMUNE, REFORM, reformed

H53, CLOSED_VIA_HUB = "000.00.00.H53", "H53.318.02"  # both served by the hub


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> tuple[DevPki, Path]:
    """The reformed test directory as a file, every agency with a certificate in it."""
    root = tmp_path_factory.mktemp("inherited")
    pki = make_pki(root / "pki")
    certificates = {code: str(pki.agency(code).cert_path) for code in [*DIRECT, *VIA_HUB]}
    directory = root / "directory.yaml"
    dump_directory(reformed(build_directory(certificates)).file, directory)
    return pki, directory


def _settings(
    world: tuple[DevPki, Path], system: str, inherited: list[dict[str, Any]]
) -> dict[str, Any]:
    pki, directory = world
    return {
        "amqp_url": f"amqp://{agency_account(system)}:secret@127.0.0.1/",
        "system": system,
        "directory": str(directory),
        "trust_anchors": [str(pki.ca.cert_path)],
        "agencies": [
            {
                "organ_code": system,
                "key": str(pki.agency(system).key_path),
                "certificate": str(pki.agency(system).cert_path),
            }
        ],
        "inherited_keys": inherited,
    }


def _resolve(world: tuple[DevPki, Path], system: str, *inherited: dict[str, Any]) -> Any:
    return AdapterConfig.model_validate(_settings(world, system, list(inherited))).resolve()


def _key(world: tuple[DevPki, Path], code: str) -> str:
    return str(world[0].agency(code).key_path)


def test_the_successor_holds_the_closed_agencys_key_for_its_heir(
    world: tuple[DevPki, Path],
) -> None:
    resolved = _resolve(world, H41, {"organ_code": H41_COMMUNE, "key": _key(world, H41_COMMUNE)})
    [inherited] = resolved.inherited.values()
    assert (inherited.organ_code, inherited.heir) == (H41_COMMUNE, H41)
    assert "key" not in repr(inherited).replace("organ_code", "")  # never in a repr
    assert resolved.agencies.keys() == {H41}


@pytest.mark.parametrize(
    ("system", "entry", "reason", "says"),
    [
        (
            H41,
            {"organ_code": G22, "key": G22},
            Reason.DIRECTORY_INVALID,
            f"inherited_keys: {G22} is in service in the directory, not closed: remove it",
        ),
        (
            H41,
            {"organ_code": "000.99.99.H41", "key": H41_COMMUNE},
            Reason.DIRECTORY_INVALID,
            "inherited_keys: 000.99.99.H41 is not in the directory",
        ),
        (
            G22,  # the commune merged into H41, not into G22
            {"organ_code": H41_COMMUNE, "key": H41_COMMUNE},
            Reason.DIRECTORY_INVALID,
            f"inherited_keys: {H41_COMMUNE} was not taken over in full by an agency this "
            f"adapter serves (its successors: {H41} (full))",
        ),
        (
            H41,  # a split: the router never forwards it
            {"organ_code": G01, "key": G01},
            Reason.DIRECTORY_INVALID,
            f"(its successors: {G22} (partial), {H41} (partial)): the router forwards its "
            "documents to its one full successor only",
        ),
        (
            H41,
            {"organ_code": H41_COMMUNE, "key": G22},
            Reason.CERT_WRONG_BINDING,
            "is not the key of its certificate in the directory: give the key the closed "
            "agency's certificate was issued for",
        ),
        (
            H41,
            {"organ_code": H41_COMMUNE, "key": H41_COMMUNE, "certificate": G22},
            Reason.CERT_WRONG_BINDING,
            "is not its certificate in the directory, which senders encrypt to",
        ),
    ],
)
def test_an_inherited_key_that_cannot_serve_is_refused_naming_the_code_and_the_fix(
    world: tuple[DevPki, Path], system: str, entry: dict[str, str], reason: Reason, says: str
) -> None:
    pki = world[0]
    given = {"organ_code": entry["organ_code"], "key": _key(world, entry["key"])}
    if "certificate" in entry:
        given["certificate"] = str(pki.agency(entry["certificate"]).cert_path)
    with pytest.raises(BackboneError) as caught:
        _resolve(world, system, given)
    assert caught.value.reason is reason
    assert says in caught.value.message
    assert "BEGIN" not in caught.value.message


def test_a_missing_or_repeated_inherited_key_is_refused(
    world: tuple[DevPki, Path], tmp_path: Path
) -> None:
    absent = {"organ_code": H41_COMMUNE, "key": str(tmp_path / "gone.pem")}
    with pytest.raises(BackboneError) as caught:
        _resolve(world, H41, absent)
    assert caught.value.reason is Reason.PKI_ERROR
    assert caught.value.message.startswith(
        f"inherited_keys: {H41_COMMUNE}: cannot read the key {tmp_path / 'gone.pem'}"
    )
    twice = {"organ_code": H41_COMMUNE, "key": _key(world, H41_COMMUNE)}
    with pytest.raises(BackboneError, match="is listed twice: keep one entry"):
        _resolve(world, H41, twice, twice)


def test_a_bad_inherited_key_refuses_the_adapters_start_with_one_error_line(
    world: tuple[DevPki, Path], tmp_path: Path
) -> None:
    settings = _settings(world, H41, [{"organ_code": H41_COMMUNE, "key": _key(world, G22)}])
    settings["agencies"][0]["folder"] = str(tmp_path / "h41")
    config = tmp_path / "adapter.yaml"
    config.write_text(yaml.safe_dump(settings), encoding="utf-8")

    result = run_backbone("adapter", "run", "--config", str(config))

    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"error: [cert_wrong_binding] inherited_keys: {H41_COMMUNE}: ")
    assert "secret" not in result.stderr + result.stdout
    assert "PRIVATE KEY" not in result.stderr + result.stdout


def test_a_hub_holds_the_key_of_a_closed_agency_one_of_its_agencies_took_over(
    tmp_path: Path,
) -> None:
    pki = make_pki(tmp_path / "pki")
    certificates = {code: str(pki.agency(code).cert_path) for code in [*DIRECT, *VIA_HUB]}
    merged = {
        "status": "closed",
        "closes": REFORM,
        "successors": [{"organ_code": H53, "share": "full"}],
    }
    directory = reformed(build_directory(certificates), {CLOSED_VIA_HUB: merged})
    file = tmp_path / "directory.yaml"
    dump_directory(directory.file, file)
    inherited = [{"organ_code": CLOSED_VIA_HUB, "key": str(pki.agency(CLOSED_VIA_HUB).key_path)}]
    hub = {"amqp_url": f"amqp://{hub_account(HUB)}:secret@127.0.0.1/", "system": HUB}
    config = AdapterConfig.model_validate(_settings((pki, file), H53, inherited) | hub)

    [inherited] = config.resolve().inherited.values()

    assert (inherited.organ_code, inherited.heir) == (CLOSED_VIA_HUB, H53)
