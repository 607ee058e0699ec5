"""Administrative tiers, from configuration.

A tier groups one or more organ-code levels; its ``name`` ends up in exchange names, so it
is a slug. Vietnam's own tiers changed in July 2025 (districts abolished), so the mapping
from levels to tiers is data: a named profile or an explicit list, never code.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, RootModel, ValidationError, model_validator
from pydantic_core import PydanticCustomError

from backbone.errors import DirectoryError
from backbone.organ import OrganCode

__all__ = ["DEFAULT_PROFILE", "PROFILES", "Tier", "TierModel", "error_path"]

_LEVELS = (1, 2, 3, 4)


class Tier(BaseModel):
    """Tier ``number`` (1 is the top) covering the organ-code ``levels`` listed."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    number: Annotated[int, Field(ge=1)]
    name: Annotated[str, Field(pattern=r"^[a-z0-9]+(-[a-z0-9]+)*$", max_length=64)]
    levels: Annotated[tuple[Annotated[int, Field(ge=1, le=4)], ...], Field(min_length=1)]


class TierModel(RootModel[tuple[Tier, ...]]):
    """The tiers, top first. Every level 1–4 lies in exactly one tier, and the tiers cover the
    levels in order (tier 1 the top levels), because a tier's agencies sit under the tier
    above: levels ``[[1], [2, 3, 4]]`` is a model, ``[[2], [1, 3, 4]]`` is not."""

    model_config = ConfigDict(frozen=True)

    @model_validator(mode="after")
    def _check_partition(self) -> TierModel:
        tiers = self.root
        numbers = [tier.number for tier in tiers]
        if numbers != list(range(1, len(tiers) + 1)):
            raise PydanticCustomError(
                "tier_numbers",
                "tiers must be numbered 1..n in order; got {numbers}",
                {"numbers": numbers},
            )
        names = [tier.name for tier in tiers]
        for name in names:
            if names.count(name) > 1:
                raise PydanticCustomError(
                    "tier_name_duplicate", "tier name {name} is used twice", {"name": repr(name)}
                )
        for level in _LEVELS:
            owners = [tier.number for tier in tiers if level in tier.levels]
            if len(owners) != 1:
                where = f"in tiers {owners}" if owners else "in no tier"
                raise PydanticCustomError(
                    "tier_level_coverage",
                    "organ-code level {level} is {where}; every level 1-4 must be in exactly "
                    "one tier",
                    {"level": level, "where": where},
                )
        covered = [level for tier in tiers for level in sorted(tier.levels)]
        if covered != list(_LEVELS):
            raise PydanticCustomError(
                "tier_level_order",
                "tiers must cover levels top-down in contiguous runs (tier 1 the top levels); "
                "got {levels}",
                {"levels": [list(tier.levels) for tier in tiers]},
            )
        return self

    @property
    def tiers(self) -> tuple[Tier, ...]:
        return self.root

    def tier(self, number: int) -> Tier:
        if not 1 <= number <= len(self.root):
            raise DirectoryError(f"no tier {number}; this model has tiers 1..{len(self.root)}")
        return self.root[number - 1]

    def tier_of(self, code: OrganCode) -> Tier:
        """The tier of the agency with ``code``: the tier covering the code's level."""
        level = code.level
        # Validation guarantees exactly one match.
        return next(tier for tier in self.root if level in tier.levels)

    def profile_name(self) -> str | None:
        """The name of the profile this model equals, if any."""
        return next((name for name, model in PROFILES.items() if model == self), None)

    @classmethod
    def named(cls, profile: str) -> TierModel:
        try:
            return PROFILES[profile]
        except KeyError:
            raise DirectoryError(
                f"unknown tier profile {profile!r}; known profiles: {', '.join(PROFILES)}"
            ) from None

    @classmethod
    def from_config(cls, value: str | TierModel | Any) -> TierModel:
        """A profile name, a model, or an explicit list of ``{number, name, levels}``."""
        if isinstance(value, TierModel):
            return value
        if isinstance(value, str):
            return cls.named(value)
        try:
            return cls.model_validate(value)
        except ValidationError as error:
            problems = (
                f"{error_path(problem['loc'], 'tiers')}: {problem['msg']}"
                for problem in error.errors(include_url=False)
            )
            raise DirectoryError("; ".join(problems)) from None


def error_path(loc: tuple[int | str, ...], prefix: str = "") -> str:
    """A pydantic error location as a path: ``('agencies', 3, 'hub')`` → ``agencies[3].hub``."""
    path = prefix
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else part)
    return path or "(top level)"


def _profile(*tiers: tuple[str, tuple[int, ...]]) -> TierModel:
    return TierModel(
        tuple(
            Tier(number=number, name=name, levels=levels)
            for number, (name, levels) in enumerate(tiers, start=1)
        )
    )


DEFAULT_PROFILE = "four-tier"
PROFILES: Mapping[str, TierModel] = MappingProxyType(
    {
        # One tier per level: central bodies and provinces, departments and districts,
        # communes and units under departments, level-4 units.
        "four-tier": _profile(
            ("central-provincial", (1,)),
            ("department-district", (2,)),
            ("commune", (3,)),
            ("unit", (4,)),
        ),
        # Since July 2025: provinces and communes, no districts. Whether new communes keep
        # level-3 codes under a former district or are recoded at level 2 is unconfirmed;
        # putting every level below 1 in tier 2 is right either way (see docs/directory.md).
        "two-level": _profile(
            ("central-provincial", (1,)),
            ("subordinate", (2, 3, 4)),
        ),
    }
)
