"""The routing policy: ordered rules over tiers and subtrees, first match wins."""

from __future__ import annotations

import itertools
import re

import pytest
import yaml
from pydantic import ValidationError

from backbone.errors import DirectoryError
from backbone.organ import OrganCode
from backbone.router.policy import PolicyRule, RoutingPolicy, Scope
from backbone.tiers import TierModel

FOUR_TIER = TierModel.named("four-tier")
TWO_LEVEL = TierModel.named("two-level")

MINISTRY = OrganCode.parse("000.00.00.G22")  # tier 1
DISTRICT = OrganCode.parse("000.00.32.H53")  # tier 2
COMMUNE = OrganCode.parse("000.21.32.H53")  # tier 3
UNIT = OrganCode.parse("001.21.32.H53")  # tier 4
OTHER_COMMUNE = OrganCode.parse("000.05.11.H41")  # tier 3, another province


def _policy(*rules: dict[str, object], default_allow: bool = True) -> RoutingPolicy:
    return RoutingPolicy.model_validate({"rules": list(rules), "default_allow": default_allow})


@pytest.mark.parametrize(
    ("sender", "recipient"), list(itertools.permutations([MINISTRY, DISTRICT, COMMUNE, UNIT], 2))
)
def test_the_default_policy_lets_every_tier_send_to_every_other(
    sender: OrganCode, recipient: OrganCode
) -> None:
    assert RoutingPolicy().allows(sender, recipient, FOUR_TIER)


def test_a_deny_default_refuses_what_no_rule_allows_and_says_so() -> None:
    policy = _policy({"from": 1, "to": "*", "allow": True}, default_allow=False)
    assert policy.allows(MINISTRY, COMMUNE, FOUR_TIER)
    assert not policy.allows(COMMUNE, MINISTRY, FOUR_TIER)
    assert policy.why(COMMUNE, MINISTRY, FOUR_TIER) == (
        "no routing policy rule matches and the default denies"
    )


def test_the_first_matching_rule_wins() -> None:
    exception_first = _policy(
        {"from": "000.00.00.H53", "to": "*", "allow": True},
        {"from": 3, "to": 1, "allow": False},
    )
    assert exception_first.allows(COMMUNE, MINISTRY, FOUR_TIER)
    assert not exception_first.allows(OTHER_COMMUNE, MINISTRY, FOUR_TIER)
    assert exception_first.why(OTHER_COMMUNE, MINISTRY, FOUR_TIER) == (
        "routing policy rule 2 (from tier 3 to tier 1: deny)"
    )
    exception_last = _policy(
        {"from": 3, "to": 1, "allow": False},
        {"from": "000.00.00.H53", "to": "*", "allow": True},
    )
    assert not exception_last.allows(COMMUNE, MINISTRY, FOUR_TIER)
    assert exception_last.why(COMMUNE, MINISTRY, FOUR_TIER) == (
        "routing policy rule 1 (from tier 3 to tier 1: deny)"
    )


def test_a_rule_only_applies_in_its_direction() -> None:
    policy = _policy({"from": 3, "to": 1, "allow": False})
    assert not policy.allows(COMMUNE, MINISTRY, FOUR_TIER)
    assert policy.allows(MINISTRY, COMMUNE, FOUR_TIER)


@pytest.mark.parametrize(
    ("recipient", "inside"),
    [
        ("000.00.32.H53", True),  # the root itself
        ("000.21.32.H53", True),
        ("001.21.32.H53", True),
        ("000.00.00.H53", False),  # its parent
        ("000.00.33.H53", False),  # a sibling
        ("000.00.32.H41", False),  # same district number, other province
    ],
)
def test_an_organ_code_scope_covers_its_whole_subtree_and_nothing_else(
    recipient: str, inside: bool
) -> None:
    policy = _policy({"from": "*", "to": "000.00.32.H53", "allow": False})
    assert policy.allows(MINISTRY, OrganCode.parse(recipient), FOUR_TIER) is not inside


def test_tier_numbers_follow_the_tier_model_in_use() -> None:
    policy = _policy({"from": 2, "to": 1, "allow": False})
    # A level-4 unit is tier 4 in the four-tier model but tier 2 after the 2025 reform.
    assert policy.allows(UNIT, MINISTRY, FOUR_TIER)
    assert not policy.allows(UNIT, MINISTRY, TWO_LEVEL)


def test_a_policy_loads_from_a_yaml_section_and_dumps_back_the_same() -> None:
    text = """
    routing_policy:
      default_allow: false
      rules:
        - {from: "000.00.00.H53", to: "000.00.00.H53", allow: true}
        - {from: 1, to: "*", allow: true}
        - {from: "*", to: 1, allow: true}
    """
    section = yaml.safe_load(text)["routing_policy"]
    policy = RoutingPolicy.model_validate(section)
    assert policy.rules[0].sender == Scope(subtree=OrganCode.parse("000.00.00.H53"))
    assert policy.rules[1].sender == Scope(tier=1)
    assert policy.rules[1].recipient == Scope()
    assert policy.model_dump(mode="json", by_alias=True) == section
    assert policy.allows(COMMUNE, DISTRICT, FOUR_TIER)
    assert not policy.allows(OTHER_COMMUNE, DISTRICT, FOUR_TIER)


def test_a_policy_loads_from_json() -> None:
    policy = RoutingPolicy.model_validate_json(
        '{"rules": [{"from": 4, "to": "000.00.00.G22", "allow": false}]}'
    )
    assert not policy.allows(UNIT, MINISTRY, FOUR_TIER)
    assert policy.default_allow


def test_rules_can_be_built_in_python_by_field_name() -> None:
    rule = PolicyRule(sender=Scope(tier=3), recipient=Scope(), allow=False)
    assert not RoutingPolicy(rules=(rule,)).allows(COMMUNE, UNIT, FOUR_TIER)


@pytest.mark.parametrize(
    ("scope", "message"),
    [
        ("53", "expected '*', a tier number or an organ code: organ code '53' has 1 part"),
        (0, "tier numbers start at 1; got 0"),
        (True, "expected '*', a tier number or an organ code, not True"),
        (1.5, "expected '*', a tier number or an organ code, not 1.5"),
    ],
)
def test_a_malformed_scope_is_refused_with_what_was_expected(scope: object, message: str) -> None:
    with pytest.raises(ValidationError, match=re.escape(message)):
        _policy({"from": scope, "to": "*", "allow": False})


def test_an_unknown_rule_key_is_refused() -> None:
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        _policy({"from": "*", "to": "*", "allow": False, "why": "typo"})


def test_a_rule_naming_a_tier_the_model_lacks_fails_the_check() -> None:
    policy = _policy({"from": "*", "to": "*", "allow": True}, {"from": 3, "to": 1, "allow": False})
    policy.check(FOUR_TIER)
    with pytest.raises(DirectoryError) as caught:
        policy.check(TWO_LEVEL)
    assert caught.value.message == (
        "routing policy rule 2 (from tier 3 to tier 1: deny): no tier 3; this model has tiers 1..2"
    )
