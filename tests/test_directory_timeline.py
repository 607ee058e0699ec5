"""Lookups at an instant: any code an agency has had resolves to it and its state then;
a closed one's successors. Instants are injected; a date is a day in the directory's zone."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from backbone.clock import Clock
from backbone.directory import CodeRole, Directory, DirectoryBuilder, Share, State
from backbone.errors import OrganCodeError, UnknownAgencyError
from tests.test_directory_history import closed, full, partial

HUB = "00.53.W00"
PROVINCE = "000.00.00.H53"
DISTRICT = "000.00.32.H53"  # merged into the province on 2025-07-01
COMMUNE = "000.21.32.H53"  # split between H53.101 and H53.102
# 2025-07-01 begins in Asia/Ho_Chi_Minh (UTC+7) at 2025-06-30 17:00 UTC.
BEFORE = datetime(2025, 6, 30, 16, 59, 59, tzinfo=UTC)
AT = datetime(2025, 6, 30, 17, 0, tzinfo=UTC)
AFTER = datetime(2026, 3, 1, tzinfo=UTC)


def fixed(instant: datetime) -> Clock:
    return lambda: instant


def reform(zone: timezone | None = None) -> Directory:
    builder = (
        DirectoryBuilder()
        .hub(HUB, PROVINCE, "H53", status="closed", closes="2027-01-01")
        .hub("00.99.W00", PROVINCE, "H53")
        .via_hub(PROVINCE, "00.99.W00", paired_code="H53")
        .via_hub(DISTRICT, HUB, **closed(full(PROVINCE)))
        .via_hub(COMMUNE, HUB, **closed(partial("H53.101", "H53.102")))
        .via_hub("H53.101", "00.99.W00", effective="2025-07-01", former_codes=["000.22.32.H53"])
        .via_hub("H53.102", "00.99.W00", effective="2025-07-01", paired_code="000.23.32.H53")
        # Merged into the district in 2024, which then merged into the province.
        .via_hub("000.20.32.H53", HUB, **closed(full(DISTRICT), on="2024-01-01"))
    )
    if zone is None:
        return builder.build()
    return Directory(builder.build().file, zone=zone)


@pytest.fixture(scope="module")
def directory() -> Directory:
    return reform()


@pytest.mark.parametrize(
    ("at", "state"), [(BEFORE, State.ACTIVE), (AT, State.CLOSED), (AFTER, State.CLOSED)]
)
def test_a_merged_code_is_closed_from_the_start_of_its_day_in_vietnam(
    directory: Directory, at: datetime, state: State
) -> None:
    found = directory.resolve(DISTRICT, fixed(at)())
    assert (found.agency.organ_code, found.role, found.state) == (
        directory.agency(DISTRICT).organ_code,
        CodeRole.PRIMARY,
        state,
    )
    assert found.at == at


def test_a_closed_code_has_its_successors_only_once_closed(directory: Directory) -> None:
    assert directory.resolve(DISTRICT, BEFORE).successors == ()
    assert [str(s.organ_code) for s in directory.resolve(DISTRICT, AT).successors] == [PROVINCE]
    assert directory.heirs(DISTRICT, BEFORE) == ()
    (heir,) = directory.heirs(DISTRICT, AT)
    assert (str(heir.agency.organ_code), heir.share) == (PROVINCE, Share.FULL)


def test_a_split_code_has_its_candidates_each_partial(directory: Directory) -> None:
    heirs = directory.heirs(COMMUNE, AFTER)
    assert [(str(h.agency.organ_code), h.share) for h in heirs] == [
        ("H53.101", Share.PARTIAL),
        ("H53.102", Share.PARTIAL),
    ]


def test_heirs_follow_successors_that_closed_in_turn(directory: Directory) -> None:
    # In 2024 the commune went to the district, still open; after the reform, to the province.
    in_2024 = directory.heirs("000.20.32.H53", datetime(2024, 6, 1, tzinfo=UTC))
    assert [str(h.agency.organ_code) for h in in_2024] == [DISTRICT]
    (heir,) = directory.heirs("000.20.32.H53", AFTER)
    assert str(heir.agency.organ_code) == PROVINCE
    assert heir.share is Share.FULL
    assert [str(code) for code in heir.via] == ["000.20.32.H53", DISTRICT]


@pytest.mark.parametrize(
    ("code", "agency", "role"),
    [
        ("H53", PROVINCE, CodeRole.PAIRED),
        ("000.22.32.H53", "H53.101", CodeRole.FORMER),
        ("000.23.32.H53", "H53.102", CodeRole.PAIRED),
        ("H53.101", "H53.101", CodeRole.PRIMARY),
    ],
)
def test_paired_and_former_codes_resolve_to_their_agency(
    directory: Directory, code: str, agency: str, role: CodeRole
) -> None:
    found = directory.resolve(code, AFTER)
    assert (str(found.agency.organ_code), found.role, found.state) == (agency, role, State.ACTIVE)
    assert str(found.code) == code


def test_an_agency_is_pending_before_its_effective_day(directory: Directory) -> None:
    assert directory.resolve("H53.101", BEFORE).state is State.PENDING
    assert directory.resolve("H53.101", AT).state is State.ACTIVE


def test_the_primary_code_lookups_are_unchanged_by_paired_and_former_codes(
    directory: Directory,
) -> None:
    assert directory.get("H53") is None  # the router's lookup stays on primary codes
    assert "000.22.32.H53" not in directory
    assert directory.get(DISTRICT) is directory.agency(DISTRICT)


def test_a_code_nobody_ever_had_is_unknown_and_a_malformed_one_an_organ_code_error(
    directory: Directory,
) -> None:
    assert directory.lookup("000.00.39.H53", AT) is None
    with pytest.raises(UnknownAgencyError, match=r"000\.00\.39\.H53 is not in the directory"):
        directory.resolve("000.00.39.H53", AT)
    with pytest.raises(OrganCodeError):
        directory.resolve("not-a-code", AT)


def test_a_hub_is_closed_from_its_closing_day(directory: Directory) -> None:
    hub = directory.hub(HUB)
    assert directory.hub_state_at(hub, datetime(2026, 12, 31, 16, 59, tzinfo=UTC)) is State.ACTIVE
    assert directory.hub_state_at(hub, datetime(2026, 12, 31, 17, 0, tzinfo=UTC)) is State.CLOSED


def test_another_configured_zone_moves_the_instant_a_day_begins() -> None:
    utc_directory = reform(zone=timezone(timedelta(0)))
    assert utc_directory.resolve(DISTRICT, AT).state is State.ACTIVE  # 17:00 UTC, still 30 June
    assert utc_directory.resolve(DISTRICT, datetime(2025, 7, 1, tzinfo=UTC)).state is State.CLOSED


def test_a_version_1_inactive_agency_is_closed_at_every_instant_without_successors() -> None:
    directory = DirectoryBuilder().direct("000.00.00.G22").direct(PROVINCE, active=False).build()
    assert directory.file.version == 1
    for at in (datetime(1990, 1, 1, tzinfo=UTC), AFTER):
        found = directory.resolve(PROVINCE, at)
        assert (found.state, found.successors) == (State.CLOSED, ())
    assert directory.resolve("000.00.00.G22", AFTER).state is State.ACTIVE
