"""Lookups, subtrees and serving systems in a loaded directory."""

from __future__ import annotations

import pytest

from backbone.directory import Agency, Connection, Directory, DirectoryBuilder, Hub
from backbone.errors import DirectoryError, OrganCodeError, UnknownAgencyError
from backbone.organ import OrganCode, SystemId


@pytest.fixture(scope="module")
def directory() -> Directory:
    """Tây Ninh through its hub, with one district left out (as after the 2025 reform), a
    department connected directly, and the Government Office."""
    return (
        DirectoryBuilder()
        .direct("000.00.00.G22", name="Văn phòng Chính phủ")
        .hub("00.53.W00", "000.00.00.H53", name="Trục LGSP tỉnh Tây Ninh")
        .via_hub("000.00.00.H53", "00.53.W00", name="UBND tỉnh Tây Ninh")
        .direct("000.00.04.H53", name="Sở Tài chính tỉnh Tây Ninh")
        .via_hub("000.01.04.H53", "00.53.W00", name="Chi cục thuộc Sở Tài chính")
        .via_hub("001.01.04.H53", "00.53.W00", name="Trạm thuộc Chi cục")
        .via_hub("000.00.32.H53", "00.53.W00", name="UBND huyện Tân Châu")
        .via_hub("000.21.32.H53", "00.53.W00", name="UBND xã Tân Hòa")
        .via_hub("000.22.32.H53", "00.53.W00", name="UBND xã Tân Hưng", active=False)
        # District 31 is not listed; its communes are.
        .via_hub("000.01.31.H53", "00.53.W00", name="UBND phường 1")
        .via_hub("000.02.31.H53", "00.53.W00", name="UBND phường 2")
        .build()
    )


def codes(agencies: tuple[Agency, ...]) -> list[str]:
    return [str(agency.organ_code) for agency in agencies]


def test_agency_is_found_by_text_or_by_parsed_code(directory: Directory) -> None:
    by_text = directory.agency("000.21.32.H53")
    assert by_text.name == "UBND xã Tân Hòa"
    assert directory.agency(OrganCode.parse("000.21.32.H53")) is by_text
    assert directory.get(OrganCode.parse("000.21.32.H53")) is by_text


def test_an_unlisted_code_raises_unknown_agency_naming_the_code(directory: Directory) -> None:
    with pytest.raises(UnknownAgencyError, match=r"000\.00\.31\.H53 is not in the directory"):
        directory.agency("000.00.31.H53")
    with pytest.raises(UnknownAgencyError, match=r"000\.00\.00\.H01"):
        directory.agency(OrganCode.parse("000.00.00.H01"))
    assert directory.get("000.00.31.H53") is None


def test_a_malformed_code_raises_the_organ_code_error(directory: Directory) -> None:
    with pytest.raises(OrganCodeError, match="3 part"):
        directory.agency("28.22.H17")


def test_hub_is_found_by_id_and_an_unknown_hub_is_named(directory: Directory) -> None:
    assert directory.hub("00.53.W00").name == "Trục LGSP tỉnh Tây Ninh"
    assert directory.hub(SystemId("00.53.W00")) is directory.hub("00.53.W00")
    with pytest.raises(UnknownAgencyError, match=r"hub 00\.99\.W00 is not in the directory"):
        directory.hub("00.99.W00")


def test_a_direct_agency_serves_itself(directory: Directory) -> None:
    department = directory.agency("000.00.04.H53")
    assert directory.serving_system("000.00.04.H53") is department
    assert directory.serving_system("000.00.04.H53").system_id == "000.00.04.H53"


def test_a_hub_agency_is_served_by_its_hub(directory: Directory) -> None:
    system = directory.serving_system("001.01.04.H53")
    assert isinstance(system, Hub)
    assert system.system_id == "00.53.W00"
    assert system.broker_account == "hub-00.53.W00"


def test_children_are_the_nearest_listed_agencies_below(directory: Directory) -> None:
    assert codes(directory.children("000.00.00.H53")) == [
        "000.00.04.H53",
        "000.00.32.H53",
        "000.01.31.H53",  # through the unlisted district 31
        "000.02.31.H53",
    ]
    assert codes(directory.children("000.00.04.H53")) == ["000.01.04.H53"]
    assert directory.children("000.21.32.H53") == ()


def test_subtree_lists_the_root_and_everything_under_it_depth_first(
    directory: Directory,
) -> None:
    assert codes(directory.subtree("000.00.04.H53")) == [
        "000.00.04.H53",
        "000.01.04.H53",
        "001.01.04.H53",
    ]
    assert codes(directory.subtree("000.00.32.H53")) == [
        "000.00.32.H53",
        "000.21.32.H53",
        "000.22.32.H53",
    ]
    assert len(directory.subtree("000.00.00.H53")) == 9
    assert codes(directory.subtree("000.00.00.G22")) == ["000.00.00.G22"]


def test_an_unlisted_intermediate_code_still_has_a_subtree(directory: Directory) -> None:
    assert codes(directory.subtree("000.00.31.H53")) == ["000.01.31.H53", "000.02.31.H53"]
    assert codes(directory.children(OrganCode.parse("000.00.31.H53"))) == [
        "000.01.31.H53",
        "000.02.31.H53",
    ]


def test_a_code_with_nothing_at_or_under_it_is_unknown(directory: Directory) -> None:
    with pytest.raises(UnknownAgencyError, match=r"000\.00\.33\.H53 is not in the directory"):
        directory.subtree("000.00.33.H53")
    with pytest.raises(UnknownAgencyError, match=r"000\.00\.00\.H01"):
        directory.children("000.00.00.H01")


def test_a_hub_account_carries_every_agency_connected_through_the_hub(
    directory: Directory,
) -> None:
    carried = directory.agencies_of_account("hub-00.53.W00")
    assert len(carried) == 8
    assert all(agency.connection is Connection.HUB for agency in carried)
    assert "000.00.04.H53" not in codes(carried)
    assert directory.system_of_account("hub-00.53.W00") is directory.hub("00.53.W00")


def test_a_direct_account_carries_only_its_agency(directory: Directory) -> None:
    account = directory.agency("000.00.04.H53").broker_account
    assert account == "agency-000.00.04.H53"
    assert codes(directory.agencies_of_account(account)) == ["000.00.04.H53"]
    assert directory.system_of_account(account) is directory.agency("000.00.04.H53")


def test_an_unknown_account_is_named(directory: Directory) -> None:
    with pytest.raises(UnknownAgencyError, match="broker account 'nobody'"):
        directory.agencies_of_account("nobody")


def test_tier_of_follows_the_code_level(directory: Directory) -> None:
    assert directory.tier_of("000.00.00.G22").number == 1
    assert directory.tier_of("000.00.32.H53").name == "department-district"
    assert directory.tier_of("000.21.32.H53").name == "commune"
    assert directory.tier_of(OrganCode.parse("001.01.04.H53")).name == "unit"


def test_iteration_keeps_file_order_and_includes_inactive_agencies(
    directory: Directory,
) -> None:
    listed = list(directory)
    assert len(directory) == len(listed) == 10
    assert str(listed[0].organ_code) == "000.00.00.G22"
    assert directory.agency("000.22.32.H53").active is False
    assert "000.22.32.H53" in directory
    assert "000.00.31.H53" not in directory
    assert directory.agencies == tuple(listed)
    assert len(directory.hubs) == 1


def test_the_builder_reports_invalid_entries_like_a_file() -> None:
    builder = (
        DirectoryBuilder().hub("00.53.W00", "000.00.00.H53").via_hub("000.00.00.H54", "00.53.W00")
    )
    with pytest.raises(DirectoryError, match=r"agencies\[0\] \(000\.00\.00\.H54\)\.organ_code"):
        builder.build()


def test_the_builder_takes_a_tier_profile() -> None:
    directory = DirectoryBuilder(tiers="two-level").direct("000.21.32.H53").build()
    assert directory.tier_of("000.21.32.H53").number == 2


def test_a_hub_may_serve_several_subtrees() -> None:
    directory = (
        DirectoryBuilder()
        .hub("vxp.saas.02", "000.00.00.H01", "000.00.00.H02")
        .via_hub("000.00.05.H01", "vxp.saas.02")
        .via_hub("000.00.05.H02", "vxp.saas.02")
        .build()
    )
    assert directory.serving_system("000.00.05.H02").system_id == "vxp.saas.02"
