"""A version-2 directory's history rules: each hostile history is refused with a precise
error naming the entries involved; a sound merge and split load."""

from __future__ import annotations

import re
from typing import Any

import pytest

from backbone.directory import DirectoryBuilder, Share, Status
from backbone.errors import DirectoryError

HUB = "00.53.W00"
PROVINCE = "000.00.00.H53"
DISTRICT = "000.00.32.H53"
COMMUNE = "000.21.32.H53"
REFORM = "2025-07-01"


def full(code: str) -> list[dict[str, str]]:
    return [{"organ_code": code, "share": "full"}]


def partial(*codes: str) -> list[dict[str, str]]:
    return [{"organ_code": code, "share": "partial"} for code in codes]


def closed(successors: list[dict[str, str]] | None = None, on: str = REFORM) -> dict[str, Any]:
    return {"status": "closed", "closes": on, "successors": successors or []}


def country() -> DirectoryBuilder:
    """Tây Ninh's hub and People's Committee (paired with Decision 20's H53)."""
    return (
        DirectoryBuilder()
        .hub(HUB, PROVINCE, "H53")
        .via_hub(PROVINCE, HUB, paired_code="H53")
        .direct("000.00.00.G22")
    )


def refused(builder: DirectoryBuilder) -> str:
    with pytest.raises(DirectoryError) as caught:
        builder.build()
    return caught.value.message


def test_a_merge_and_a_split_load_with_their_successors() -> None:
    directory = (
        country()
        .via_hub(DISTRICT, HUB, **closed(full(PROVINCE)))
        .via_hub(COMMUNE, HUB, **closed(partial("H53.101", "H53.102")))
        .via_hub("H53.101", HUB, effective=REFORM, former_codes=["000.22.32.H53"])
        .via_hub("H53.102", HUB, effective=REFORM)
        .build()
    )
    assert directory.file.version == 2
    district = directory.agency(DISTRICT)
    assert district.status is Status.CLOSED
    assert district.active is False
    assert [s.share for s in directory.agency(COMMUNE).successors] == [Share.PARTIAL] * 2
    assert directory.agency(PROVINCE).active is True


def test_a_cycle_of_successors_is_refused_naming_the_cycle() -> None:
    message = refused(
        country()
        .via_hub(DISTRICT, HUB, **closed(full("000.00.31.H53")))
        .via_hub("000.00.31.H53", HUB, **closed(full("000.00.30.H53")))
        .via_hub("000.00.30.H53", HUB, **closed(full(DISTRICT)))
    )
    assert (
        "agencies[2] (000.00.32.H53).successors: a cycle of successors: 000.00.32.H53 → "
        "000.00.31.H53 → 000.00.30.H53 → 000.00.32.H53"
    ) in message


def test_an_agency_succeeding_itself_is_a_cycle() -> None:
    message = refused(country().via_hub(DISTRICT, HUB, **closed(full(DISTRICT))))
    assert "a cycle of successors: 000.00.32.H53 → 000.00.32.H53" in message


def test_a_successor_not_in_the_directory_is_named() -> None:
    message = refused(country().via_hub(DISTRICT, HUB, **closed(full("000.00.39.H53"))))
    assert message.endswith(
        "agencies[2] (000.00.32.H53).successors[0]: 000.00.39.H53 is not in the directory"
    )


def test_a_successor_named_by_a_former_code_asks_for_the_current_one() -> None:
    message = refused(
        country()
        .via_hub(DISTRICT, HUB, **closed(full("000.00.31.H53")))
        .via_hub("000.00.30.H53", HUB, former_codes=["000.00.31.H53"])
    )
    assert (
        "agencies[2] (000.00.32.H53).successors[0]: 000.00.31.H53 is a former code of "
        "agencies[3] (000.00.30.H53); name its current code 000.00.30.H53"
    ) in message


def test_a_successor_closed_by_then_without_successors_of_its_own_is_refused() -> None:
    message = refused(
        country()
        .via_hub(DISTRICT, HUB, **closed(full("000.00.31.H53")))
        .via_hub("000.00.31.H53", HUB, **closed(on="2025-06-01"))
    )
    assert (
        "agencies[2] (000.00.32.H53).successors[0]: agencies[3] (000.00.31.H53) is itself "
        "closed on 2025-06-01, by the time this agency closes on 2025-07-01, and has no "
        "successors: documents forwarded to it would end nowhere"
    ) in message


def test_a_successor_closing_later_or_passing_on_to_its_own_successor_is_sound() -> None:
    directory = (
        country()
        .via_hub(DISTRICT, HUB, **closed(full("000.00.31.H53")))
        .via_hub("000.00.31.H53", HUB, **closed(on="2026-01-01"))  # later: abolished then
        .via_hub("000.00.30.H53", HUB, **closed(full("000.00.29.H53")))
        .via_hub("000.00.29.H53", HUB, **closed(full(PROVINCE)))  # same day, passes on
        .build()
    )
    assert len(directory) == 6


def test_a_successor_taking_effect_after_the_closing_is_refused() -> None:
    message = refused(
        country()
        .via_hub(DISTRICT, HUB, **closed(full("H53.101")))
        .via_hub("H53.101", HUB, effective="2025-08-01")
    )
    assert (
        "agencies[2] (000.00.32.H53).successors[0]: agencies[3] (H53.101) takes effect on "
        "2025-08-01, after this agency closes on 2025-07-01"
    ) in message


def test_a_full_successor_beside_others_is_refused() -> None:
    message = refused(
        country().via_hub(DISTRICT, HUB, **closed([*full(PROVINCE), *partial("000.00.00.G22")]))
    )
    assert "agencies[2] (000.00.32.H53).successors: a full successor takes over all" in message


def test_a_successor_named_twice_is_refused() -> None:
    message = refused(country().via_hub(DISTRICT, HUB, **closed(partial(PROVINCE, "H53"))))
    assert "agencies[2] (000.00.32.H53).successors[1]: H53 is named twice" in message


def test_a_hub_closed_under_live_agencies_is_refused_naming_them() -> None:
    message = refused(
        DirectoryBuilder()
        .hub(HUB, PROVINCE, status="closed", closes=REFORM)
        .via_hub(PROVINCE, HUB)
        .via_hub(DISTRICT, HUB, **closed(full(PROVINCE), on="2025-06-01"))
        .via_hub(COMMUNE, HUB, **closed(on="2025-08-01"))
    )
    assert message.endswith(
        "hubs[0] (00.53.W00).status: a hub closed under live agencies: it closes on "
        "2025-07-01 while agencies[0] (000.00.00.H53), agencies[2] (000.21.32.H53) still "
        "connect through it; move them to another hub or close them first"
    )


def test_a_hub_closing_after_its_agencies_loads() -> None:
    directory = (
        DirectoryBuilder()
        .hub(HUB, PROVINCE, status="closed", closes=REFORM)
        .hub("00.99.W00", PROVINCE)
        .via_hub(PROVINCE, "00.99.W00")
        .via_hub(DISTRICT, HUB, **closed(full(PROVINCE)))
        .build()
    )
    assert directory.hub(HUB).status is Status.CLOSED


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        (
            {"organ_code": COMMUNE, "former_codes": [PROVINCE]},
            "agencies[2] (000.21.32.H53).former_codes[0]: 000.00.00.H53 is already the "
            "organ_code of agencies[0] (000.00.00.H53); a code names one agency only",
        ),
        (
            {"organ_code": COMMUNE, "former_codes": ["H53"]},
            "agencies[2] (000.21.32.H53).former_codes[0]: H53 is already the paired_code of "
            "agencies[0] (000.00.00.H53); a code names one agency only",
        ),
        (
            {"organ_code": COMMUNE, "paired_code": "H53"},
            "agencies[2] (000.21.32.H53).paired_code: H53 is already the paired_code of "
            "agencies[0] (000.00.00.H53); a code names one agency only",
        ),
        (
            {"organ_code": COMMUNE, "former_codes": [COMMUNE]},
            "agencies[2] (000.21.32.H53).former_codes[0]: 000.21.32.H53 is this agency's "
            "current code",
        ),
    ],
    ids=[
        "former-is-another-primary",
        "former-is-another-paired",
        "paired-twice",
        "former-is-own-code",
    ],
)
def test_a_code_naming_two_agencies_is_refused(entry: dict[str, Any], expected: str) -> None:
    code = entry.pop("organ_code")
    assert expected in refused(country().via_hub(code, HUB, **entry))


def test_a_paired_code_that_is_another_agencys_primary_code_is_refused() -> None:
    message = refused(country().via_hub("H53", HUB))
    assert (
        "agencies[0] (000.00.00.H53).paired_code: H53 is already the organ_code of "
        "agencies[2] (H53); a code names one agency only"
    ) in message


def test_two_agencies_claiming_one_former_code_are_refused() -> None:
    message = refused(
        country()
        .via_hub("H53.101", HUB, former_codes=[COMMUNE])
        .via_hub("H53.102", HUB, former_codes=[COMMUNE])
    )
    assert (
        "agencies[3] (H53.102).former_codes[0]: 000.21.32.H53 is already a former code of "
        "agencies[2] (H53.101)"
    ) in message


def test_a_closed_code_given_to_a_new_agency_is_refused() -> None:
    message = refused(
        country()
        .via_hub(DISTRICT, HUB, **closed(full(PROVINCE)))
        .via_hub(DISTRICT, HUB, effective="2026-01-01")
    )
    assert (
        "agencies[3] (000.00.32.H53).organ_code: duplicate organ code; first listed at "
        "agencies[2] (closed on 2025-07-01; a closed code never comes back)"
    ) in message


def test_a_closed_code_given_as_a_new_agencys_paired_code_is_refused() -> None:
    message = refused(
        country()
        .via_hub("H53.32", HUB, **closed(full(PROVINCE)))
        .via_hub(DISTRICT, HUB, paired_code="H53.32")
    )
    assert (
        "agencies[3] (000.00.32.H53).paired_code: H53.32 is already the organ_code of "
        "agencies[2] (H53.32); it closed on 2025-07-01, and a closed code never comes back"
    ) in message


def test_a_closing_date_before_the_effective_date_is_refused() -> None:
    message = refused(
        country().via_hub(DISTRICT, HUB, effective="2025-07-01", **closed(on="2025-06-30"))
    )
    assert message.endswith(
        "agencies[2] (000.00.32.H53).closes: 2025-06-30 is not after effective 2025-07-01"
    )


def test_successors_on_an_active_agency_are_refused() -> None:
    message = refused(country().via_hub(DISTRICT, HUB, successors=full(PROVINCE)))
    assert message.endswith(
        "agencies[2] (000.00.32.H53).successors: an active agency has no successors; only a "
        "closed one is taken over"
    )


@pytest.mark.parametrize(
    ("code", "paired", "format_name"),
    [(DISTRICT, "000.00.31.H53", "QCVN 102"), ("H53.32", "H53.31", "Decision 20/2020")],
)
def test_a_paired_code_in_the_primary_codes_format_is_refused(
    code: str, paired: str, format_name: str
) -> None:
    message = refused(country().via_hub(code, HUB, paired_code=paired))
    assert message.endswith(
        f"agencies[2] ({code}).paired_code: {paired} is a {format_name} code like "
        "organ_code; the paired code is the other format's"
    )


def test_a_closed_agency_needs_its_closing_date_and_an_active_one_has_none() -> None:
    message = refused(
        country().via_hub(DISTRICT, HUB, status="closed").via_hub(COMMUNE, HUB, closes=REFORM)
    )
    assert "agencies[2] (000.00.32.H53).closes: required when status is closed" in message
    assert "agencies[3] (000.21.32.H53).closes: set to 2025-07-01 but status is active" in message


def test_a_parent_must_be_a_listed_current_code_and_never_a_cycle() -> None:
    unknown = refused(country().via_hub(COMMUNE, HUB, parent="000.00.39.H53"))
    assert unknown.endswith(
        "agencies[2] (000.21.32.H53).parent: 000.00.39.H53 is not in the directory"
    )
    cycle = refused(
        country()
        .via_hub(DISTRICT, HUB, parent=COMMUNE)
        .via_hub(COMMUNE, HUB)  # its parent from its code: the district
    )
    assert (
        "agencies[2] (000.00.32.H53).parent: a cycle of parents: 000.00.32.H53 → "
        "000.21.32.H53 → 000.00.32.H53"
    ) in cycle


def test_a_parent_given_by_either_code_of_an_agency_loads() -> None:
    directory = country().via_hub(COMMUNE, HUB, parent="H53").via_hub(DISTRICT, HUB).build()
    assert str(directory.agency(COMMUNE).parent_code) == "H53"
    assert str(directory.agency(DISTRICT).parent_code) == PROVINCE  # from its code


def test_every_problem_of_a_broken_history_is_listed_at_once() -> None:
    message = refused(
        country()
        .via_hub(DISTRICT, HUB, successors=full(PROVINCE))
        .via_hub(COMMUNE, HUB, **closed(full("000.00.39.H53")))
    )
    assert re.match(r"directory: 2 problems:\n", message)
