"""The directory file's schema: agencies, the hubs (LGSP) some of them connect through, and
the tier model. Entries are frozen pydantic models; cross-entry rules live in the index."""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum
from typing import Annotated, Any, Literal, TypeVar

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    PlainValidator,
    WithJsonSchema,
)
from pydantic_core import PydanticCustomError

from backbone.errors import DirectoryError, OrganCodeError
from backbone.organ import OrganCode, SystemId
from backbone.tiers import TierModel

__all__ = [
    "DIRECTORY_VERSION",
    "Agency",
    "Connection",
    "DirectoryFile",
    "Hub",
    "OrganCodeField",
    "SystemIdField",
    "TierModelField",
]

DIRECTORY_VERSION = 1


_Identifier = TypeVar("_Identifier", OrganCode, SystemId)


def _parser(kind: type[_Identifier], what: str) -> Callable[[object], _Identifier]:
    """A pydantic validator reporting the parser's own sentence (no "Value error, " prefix)."""

    def parse(value: object) -> _Identifier:
        if isinstance(value, kind):
            return value
        if not isinstance(value, str):
            raise PydanticCustomError("identifier_type", "{what} must be a string", {"what": what})
        try:
            return kind.parse(value)
        except OrganCodeError as error:
            raise PydanticCustomError(
                "identifier_malformed", "{message}", {"message": error.message}
            ) from None

    return parse


def _tier_spec(value: object) -> object:
    # A profile name stands for that profile; anything else is validated as an explicit list.
    if not isinstance(value, str):
        return value
    try:
        return TierModel.named(value)
    except DirectoryError as error:
        raise PydanticCustomError(
            "tier_profile_unknown", "{message}", {"message": error.message}
        ) from None


def _dump_tiers(model: TierModel) -> str | list[dict[str, Any]]:
    # Written back as its profile name when it is one, else as the explicit list.
    return model.profile_name() or [tier.model_dump() for tier in model.tiers]


OrganCodeField = Annotated[
    OrganCode,
    PlainValidator(_parser(OrganCode, "an organ code")),
    PlainSerializer(str, return_type=str),
    WithJsonSchema({"type": "string", "examples": ["000.00.32.H53"]}),
]
SystemIdField = Annotated[
    SystemId,
    PlainValidator(_parser(SystemId, "a system id")),
    PlainSerializer(str, return_type=str),
    WithJsonSchema({"type": "string", "examples": ["00.53.W00"]}),
]
TierModelField = Annotated[TierModel, BeforeValidator(_tier_spec), PlainSerializer(_dump_tiers)]
_Text = Annotated[str, Field(min_length=1)]


class Connection(StrEnum):
    DIRECT = "direct"  # the agency's own software holds a broker account
    HUB = "hub"  # documents reach the agency through a hub's inbox


class Hub(BaseModel):
    """A hub (provincial or ministerial integration platform, LGSP) with one broker account,
    serving the agencies connected through it that lie in the subtrees of ``serves``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: SystemIdField
    name: _Text
    serves: Annotated[tuple[OrganCodeField, ...], Field(min_length=1)]
    broker_account: _Text
    certificate: str | None = None

    @property
    def system_id(self) -> str:
        return str(self.id)


class Agency(BaseModel):
    """One agency. ``certificate`` is a PEM file path (relative to the directory file) or
    inline PEM, kept as text: the PKI module parses it when it needs it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    organ_code: OrganCodeField
    name: _Text
    connection: Connection
    hub: SystemIdField | None = None
    certificate: str | None = None
    broker_account: Annotated[str, Field(min_length=1)] | None = None
    active: bool = True

    @property
    def system_id(self) -> str:
        return str(self.organ_code)


class DirectoryFile(BaseModel):
    """The whole file, as written. ``tiers`` absent means the default profile."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    version: Literal[1]
    tiers: TierModelField | None = None
    hubs: tuple[Hub, ...] = ()
    agencies: tuple[Agency, ...]
