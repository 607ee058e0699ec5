"""Tier models: named profiles and explicit lists from configuration."""

from __future__ import annotations

from typing import Any

import pytest

from backbone.errors import DirectoryError
from backbone.organ import OrganCode
from backbone.tiers import DEFAULT_PROFILE, PROFILES, TierModel

PROVINCE = OrganCode.parse("000.00.00.H53")
DEPARTMENT = OrganCode.parse("000.00.04.H53")
DISTRICT = OrganCode.parse("000.00.32.H53")
COMMUNE = OrganCode.parse("000.21.32.H53")
UNIT = OrganCode.parse("001.01.04.H53")
MINISTRY = OrganCode.parse("000.00.00.G22")


def tier_list(*levels: list[int]) -> list[dict[str, Any]]:
    return [
        {"number": number, "name": f"tier-{number}", "levels": tier_levels}
        for number, tier_levels in enumerate(levels, start=1)
    ]


def test_default_profile_is_four_tier_with_one_level_per_tier() -> None:
    model = TierModel.named(DEFAULT_PROFILE)
    assert DEFAULT_PROFILE == "four-tier"
    assert [(tier.number, tier.name) for tier in model.tiers] == [
        (1, "central-provincial"),
        (2, "department-district"),
        (3, "commune"),
        (4, "unit"),
    ]
    assert model.tier_of(MINISTRY).number == 1
    assert model.tier_of(PROVINCE).number == 1
    assert model.tier_of(DEPARTMENT).number == 2
    assert model.tier_of(DISTRICT).number == 2
    assert model.tier_of(COMMUNE).number == 3
    assert model.tier_of(UNIT).number == 4


def test_two_level_profile_puts_everything_below_level_1_in_tier_2() -> None:
    model = TierModel.from_config("two-level")
    assert model.tier_of(PROVINCE).name == "central-provincial"
    assert model.tier_of(MINISTRY).number == 1
    for code in (DEPARTMENT, DISTRICT, COMMUNE, UNIT):
        assert model.tier_of(code).number == 2
        assert model.tier_of(code).name == "subordinate"


def test_an_explicit_list_is_a_model_of_its_own() -> None:
    model = TierModel.from_config(
        [
            {"number": 1, "name": "provincial", "levels": [1, 2]},
            {"number": 2, "name": "commune", "levels": [3, 4]},
        ]
    )
    assert model.tier_of(DEPARTMENT).name == "provincial"
    assert model.tier_of(COMMUNE).name == "commune"
    assert model.profile_name() is None


def test_an_explicit_list_equal_to_a_profile_is_recognised_as_that_profile() -> None:
    model = TierModel.from_config(
        [
            {"number": 1, "name": "central-provincial", "levels": [1]},
            {"number": 2, "name": "subordinate", "levels": [2, 3, 4]},
        ]
    )
    assert model == PROFILES["two-level"]
    assert model.profile_name() == "two-level"


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (tier_list([1, 2], [2, 3, 4]), "tiers: organ-code level 2 is in tiers [1, 2]"),
        (tier_list([1], [2, 3]), "tiers: organ-code level 4 is in no tier"),
        (tier_list([2], [1, 3, 4]), "tiers must cover levels top-down in contiguous runs"),
        (tier_list([1, 3], [2, 4]), "tiers must cover levels top-down in contiguous runs"),
        (
            [{"number": 2, "name": "all", "levels": [1, 2, 3, 4]}],
            "tiers must be numbered 1..n in order; got [2]",
        ),
        (
            [
                {"number": 1, "name": "same", "levels": [1]},
                {"number": 2, "name": "same", "levels": [2, 3, 4]},
            ],
            "tier name 'same' is used twice",
        ),
        (
            [{"number": 1, "name": "Central Tier", "levels": [1, 2, 3, 4]}],
            "tiers[0].name: String should match pattern",
        ),
        (tier_list([1, 2, 3, 5]), "tiers[0].levels[3]: Input should be less than or equal to 4"),
        (tier_list([1, 2, 3, 4], []), "tiers[1].levels: Tuple should have at least 1 item"),
        ([], "tiers: organ-code level 1 is in no tier"),
        ("three-tier", "unknown tier profile 'three-tier'; known profiles: four-tier, two-level"),
    ],
)
def test_invalid_models_are_rejected_with_the_reason(config: Any, message: str) -> None:
    with pytest.raises(DirectoryError) as caught:
        TierModel.from_config(config)
    assert message in caught.value.message


def test_tier_looks_up_by_number_and_rejects_numbers_out_of_range() -> None:
    model = PROFILES["two-level"]
    assert model.tier(2).name == "subordinate"
    with pytest.raises(DirectoryError, match=r"no tier 3; this model has tiers 1\.\.2"):
        model.tier(3)
