"""Which agencies may send to which: an ordered list of rules, first match wins.

Each side of a rule is ``"*"`` (everyone), a tier number (every agency in that tier) or an
organ code (that agency and its whole subtree). With no rules, every connected agency may send
to every other. As a YAML section::

    routing_policy:
      default_allow: true
      rules:
        - {from: "000.00.00.H53", to: "000.00.00.H53", allow: true}  # within Tây Ninh: all
        - {from: 3, to: 1, allow: false}  # elsewhere communes do not write to tier 1 directly
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer, PlainValidator, WithJsonSchema
from pydantic_core import PydanticCustomError

from backbone.errors import DirectoryError, OrganCodeError
from backbone.organ import OrganCode
from backbone.tiers import TierModel

__all__ = ["PolicyRule", "RoutingPolicy", "Scope"]


@dataclass(frozen=True, slots=True)
class Scope:
    """One side of a rule: everyone (both fields None), one tier, or one subtree."""

    tier: int | None = None
    subtree: OrganCode | None = None

    def covers(self, code: OrganCode, tier: int) -> bool:
        """``tier`` is ``code``'s tier number, computed once by the caller."""
        if self.subtree is not None:
            return code.is_within(self.subtree)
        return self.tier is None or self.tier == tier

    def __str__(self) -> str:
        if self.subtree is not None:
            return f"subtree {self.subtree}"
        return "*" if self.tier is None else f"tier {self.tier}"


def _parse_scope(value: object) -> Scope:
    if isinstance(value, Scope):
        return value
    if value == "*":
        return Scope()
    # bool is an int to Python; ``from: true`` is a typo, not tier 1.
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 1:
            raise PydanticCustomError(
                "scope_tier", "tier numbers start at 1; got {value}", {"value": value}
            )
        return Scope(tier=value)
    if isinstance(value, str):
        try:
            return Scope(subtree=OrganCode.parse(value))
        except OrganCodeError as error:
            raise PydanticCustomError(
                "scope_malformed",
                "expected '*', a tier number or an organ code: {message}",
                {"message": error.message},
            ) from None
    raise PydanticCustomError(
        "scope_type",
        "expected '*', a tier number or an organ code, not {value}",
        {"value": repr(value)},
    )


def _dump_scope(scope: Scope) -> str | int:
    if scope.subtree is not None:
        return str(scope.subtree)
    return "*" if scope.tier is None else scope.tier


ScopeField = Annotated[
    Scope,
    PlainValidator(_parse_scope),
    PlainSerializer(_dump_scope),
    WithJsonSchema(
        {
            "anyOf": [
                {"const": "*"},
                {"type": "integer", "minimum": 1, "description": "a tier number"},
                {"type": "string", "description": "an organ code: it and its subtree"},
            ]
        }
    ),
]


class PolicyRule(BaseModel):
    """``{from, to, allow}``; in Python the sides are ``sender`` and ``recipient``."""

    model_config = ConfigDict(frozen=True, extra="forbid", validate_by_name=True)

    sender: ScopeField = Field(alias="from")
    recipient: ScopeField = Field(alias="to")
    allow: bool

    def __str__(self) -> str:
        return f"from {self.sender} to {self.recipient}: {'allow' if self.allow else 'deny'}"


class RoutingPolicy(BaseModel):
    """The rules, in order, and what applies when none matches."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    rules: tuple[PolicyRule, ...] = ()
    default_allow: bool = True

    def check(self, tiers: TierModel) -> None:
        """Raise :class:`DirectoryError` for a rule naming a tier ``tiers`` does not have: it
        would silently never match."""
        for position, rule in enumerate(self.rules):
            for side in (rule.sender, rule.recipient):
                if side.tier is not None:
                    try:
                        tiers.tier(side.tier)
                    except DirectoryError as error:
                        raise DirectoryError(
                            f"routing policy rule {position + 1} ({rule}): {error.message}"
                        ) from None

    def allows(self, sender: OrganCode, recipient: OrganCode, tiers: TierModel) -> bool:
        rule = self._match(sender, recipient, tiers)
        return self.default_allow if rule is None else rule[1].allow

    def why(self, sender: OrganCode, recipient: OrganCode, tiers: TierModel) -> str:
        """The rule (or default) that decides ``sender`` → ``recipient``, for messages."""
        rule = self._match(sender, recipient, tiers)
        if rule is None:
            verdict = "allows" if self.default_allow else "denies"
            return f"no routing policy rule matches and the default {verdict}"
        position, found = rule
        return f"routing policy rule {position} ({found})"

    def _match(
        self, sender: OrganCode, recipient: OrganCode, tiers: TierModel
    ) -> tuple[int, PolicyRule] | None:
        if not self.rules:
            return None
        sender_tier = tiers.tier_of(sender).number
        recipient_tier = tiers.tier_of(recipient).number
        for position, rule in enumerate(self.rules, start=1):
            if rule.sender.covers(sender, sender_tier) and rule.recipient.covers(
                recipient, recipient_tier
            ):
                return position, rule
        return None
