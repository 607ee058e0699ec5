"""Organ codes in both formats (QCVN 102 and Decision 20/2020) and hub/system ids."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from backbone.errors import OrganCodeError, Reason
from backbone.organ import MAX_CODE_LENGTH, CodeFormat, OrganCode, SystemId, parse_identifier


def code(text: str) -> OrganCode:
    return OrganCode.parse(text)


@pytest.mark.parametrize(
    ("text", "levels", "level"),
    [
        ("000.00.00.H53", ("H53", "00", "00", "000"), 1),
        ("000.00.32.H53", ("H53", "32", "00", "000"), 2),
        ("000.21.32.H53", ("H53", "32", "21", "000"), 3),
        ("001.01.07.H53", ("H53", "07", "01", "001"), 4),
        ("000.00.00.G22", ("G22", "00", "00", "000"), 1),
    ],
)
def test_parse_reads_levels_right_to_left_and_finds_the_deepest_set_level(
    text: str, levels: tuple[str, ...], level: int
) -> None:
    parsed = code(text)
    assert parsed.levels == levels
    assert parsed.level == level
    assert str(parsed) == text


def test_parent_chain_climbs_one_level_at_a_time_to_the_level_1_body() -> None:
    unit = code("001.01.07.H53")
    assert unit.parent == code("000.01.07.H53")
    assert unit.ancestors == (code("000.01.07.H53"), code("000.00.07.H53"), code("000.00.00.H53"))
    assert code("000.00.00.H53").parent is None
    assert code("000.00.00.H53").ancestors == ()


def test_routing_key_lists_levels_from_level_1_down_and_round_trips() -> None:
    commune = code("000.21.32.H53")
    assert commune.routing_key == "H53.32.21.000"
    assert OrganCode.from_routing_key("H53.32.21.000") == commune


@pytest.mark.parametrize(
    ("text", "pattern"),
    [
        ("000.00.00.H53", "H53.#"),
        ("000.00.32.H53", "H53.32.#"),
        ("000.21.32.H53", "H53.32.21.#"),
        ("001.01.07.H53", "H53.07.01.001.#"),
    ],
)
def test_subtree_pattern_binds_the_code_and_everything_under_it(text: str, pattern: str) -> None:
    assert code(text).subtree_pattern == pattern


def test_is_within_holds_for_the_root_and_its_descendants_only() -> None:
    district = code("000.00.32.H53")
    assert code("000.21.32.H53").is_within(district)
    assert code("000.21.32.H53").is_within(code("000.00.00.H53"))
    assert district.is_within(district)
    assert not code("000.21.31.H53").is_within(district)
    assert not district.is_within(code("000.21.32.H53"))
    assert not code("000.00.32.H54").is_within(code("000.00.00.H53"))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("28.22.H17", "organ code '28.22.H17' has 3 part(s); expected 4 dot-separated parts"),
        ("28.22.H17", "or a Decision 20/2020 code starting with its level-1 letter"),
        ("000.00.00.00.H53", "has 5 part(s)"),
        ("", "has 1 part(s)"),
        ("000.00.00.h53", "level 1 is 'h53'; expected a capital letter and two digits"),
        ("000.00.00.H5", "level 1 is 'H5'; expected a capital letter and two digits"),
        ("000.00.00.531", "level 1 is '531'; expected a capital letter"),
        ("000.00.321.H53", "level 2 is '321'; expected two digits"),
        ("000.0.32.H53", "level 3 is '0'; expected two digits"),
        ("00.21.32.H53", "level 4 is '00'; expected three digits"),
        ("000.2a.32.H53", "level 3 is '2a'; expected two digits"),
    ],
)
def test_malformed_codes_are_rejected_with_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(OrganCodeError) as caught:
        code(text)
    assert message in caught.value.message
    assert caught.value.reason is Reason.ORGAN_CODE_MALFORMED


@pytest.mark.parametrize("hub_id", ["00.53.W00", "vxp.saas.02"])
def test_hub_ids_are_not_organ_codes_but_parse_as_system_ids(hub_id: str) -> None:
    with pytest.raises(OrganCodeError):
        code(hub_id)
    identifier = parse_identifier(hub_id)
    assert identifier == SystemId(hub_id)
    assert str(identifier) == hub_id


def test_parse_identifier_prefers_an_organ_code() -> None:
    assert parse_identifier("000.00.32.H53") == code("000.00.32.H53")


@pytest.mark.parametrize("text", ["", "-lgsp", "has space", "a" * 65, "hub/53"])
def test_malformed_system_ids_are_rejected(text: str) -> None:
    with pytest.raises(OrganCodeError, match="system id"):
        SystemId.parse(text)


_digits = st.text("0123456789", min_size=1, max_size=1)


@st.composite
def organ_codes(draw: st.DrawFn) -> OrganCode:
    """Any well-formed code: levels below the deepest set one are zeros."""
    head = draw(st.sampled_from("GHK")) + draw(_digits) + draw(_digits)
    depth = draw(st.integers(1, 4))
    parts = [head]
    for level, width in ((2, 2), (3, 2), (4, 3)):
        part = "0" * width
        if level <= depth:
            part = str(draw(st.integers(1, 10**width - 1))).zfill(width)
        parts.append(part)
    return OrganCode((parts[0], parts[1], parts[2], parts[3]))


@given(organ_codes())
def test_text_and_routing_key_round_trip(organ: OrganCode) -> None:
    assert OrganCode.parse(str(organ)) == organ
    assert OrganCode.from_routing_key(organ.routing_key) == organ


@given(organ_codes())
def test_every_ancestor_contains_the_code_and_sits_one_level_higher(organ: OrganCode) -> None:
    levels = [organ.level]
    for ancestor in organ.ancestors:
        assert organ.is_within(ancestor)
        levels.append(ancestor.level)
    assert levels == list(range(organ.level, 0, -1))


def test_a_level_under_an_empty_level_is_accepted_and_its_parent_skips_the_gap() -> None:
    # Real vendor data: a unit (level 4) directly under district 20, level 3 left empty.
    unit = code("002.00.20.H13")
    assert unit.level == 4
    assert unit.routing_key == "H13.20.00.002"
    assert unit.parent == code("000.00.20.H13")
    assert unit.is_within(code("000.00.20.H13"))


# -- Decision 20/2020 codes -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "levels", "level", "key"),
    [
        ("H01", ("H01",), 1, "qd20.H01"),
        ("H01.151", ("H01", "151"), 2, "qd20.H01.151"),
        ("H01.151.01", ("H01", "151", "01"), 3, "qd20.H01.151.01"),
        ("G09.20", ("G09", "20"), 2, "qd20.G09.20"),
        ("H01.151.01.02", ("H01", "151", "01", "02"), 4, "qd20.H01.151.01.02"),
        ("H01.151.01.02.7", ("H01", "151", "01", "02", "7"), 4, "qd20.H01.151.01.02.7"),
    ],
)
def test_a_decision_20_code_reads_left_to_right_one_group_per_level(
    text: str, levels: tuple[str, ...], level: int, key: str
) -> None:
    parsed = code(text)
    assert parsed.format is CodeFormat.QD20
    assert parsed.levels == levels
    assert parsed.level == level  # groups past the fourth stay in level 4's tier
    assert str(parsed) == text
    assert parsed.routing_key == key
    assert OrganCode.from_routing_key(key) == parsed


def test_a_decision_20_parent_chain_drops_one_group_at_a_time() -> None:
    unit = code("H01.151.01")
    assert unit.ancestors == (code("H01.151"), code("H01"))
    assert code("H01").parent is None


def test_a_decision_20_subtree_pattern_binds_the_code_and_what_is_under_it() -> None:
    assert code("H01.151").subtree_pattern == "qd20.H01.151.#"
    assert code("H01.151.01").is_within(code("H01.151"))
    assert code("H01.151").is_within(code("H01.151"))
    assert not code("H01.1510").is_within(code("H01.151"))  # a group, not a string prefix
    assert not code("H01").is_within(code("H01.151"))


def test_the_two_formats_never_contain_each_other_nor_share_routing_keys() -> None:
    # QCVN 102's H53 and Decision 20's H53 may name different bodies: only the directory
    # pairs codes, so neither is inside the other and no key or pattern of one matches the other.
    qcvn, qd20 = code("000.00.00.H53"), code("H53")
    assert qcvn != qd20
    assert not qcvn.is_within(qd20)
    assert not qd20.is_within(qcvn)
    assert not code("H53.32").is_within(qcvn)
    assert qcvn.routing_key.split(".")[0] != qd20.routing_key.split(".")[0]
    assert not qd20.subtree_pattern.startswith(qcvn.subtree_pattern.removesuffix("#"))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("h01.151", "level 1 is 'h01'; expected a capital letter and two digits, e.g. H01"),
        ("H1.151", "level 1 is 'H1'; expected a capital letter and two digits"),
        ("H01..151", "level 2 is ''; expected capital letters and digits"),
        ("H01.151.", "level 3 is ''; expected capital letters and digits"),
        ("H01.15a", "level 2 is '15a'; expected capital letters and digits"),
        ("H01." + "1" * 32, "36 characters; a Decision 20/2020 code has at most 35"),
    ],
)
def test_malformed_decision_20_codes_are_rejected_with_what_is_wrong(
    text: str, message: str
) -> None:
    with pytest.raises(OrganCodeError) as caught:
        code(text)
    assert message in caught.value.message
    assert caught.value.reason is Reason.ORGAN_CODE_MALFORMED


def test_the_longest_decision_20_code_is_accepted() -> None:
    longest = "H01." + "1" * (MAX_CODE_LENGTH - 4)
    assert str(code(longest)) == longest


@st.composite
def qd20_codes(draw: st.DrawFn) -> OrganCode:
    head = draw(st.sampled_from("GHK")) + draw(_digits) + draw(_digits)
    groups = draw(st.lists(st.from_regex(r"[0-9A-Z]{1,3}", fullmatch=True), max_size=7))
    return OrganCode((head, *groups), CodeFormat.QD20)


@given(qd20_codes())
def test_decision_20_text_and_routing_key_round_trip(organ: OrganCode) -> None:
    assert OrganCode.parse(str(organ)) == organ
    assert OrganCode.from_routing_key(organ.routing_key) == organ
    assert all(organ.is_within(ancestor) for ancestor in organ.ancestors)
