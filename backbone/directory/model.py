"""The directory file's schema: agencies, the hubs (LGSP) some of them connect through, and
the tier model. Entries are frozen pydantic models; cross-entry rules live in the index."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from enum import StrEnum
from typing import Annotated, Any, Literal, TypeVar

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    GetPydanticSchema,
    PlainSerializer,
    PlainValidator,
    WithJsonSchema,
)
from pydantic_core import PydanticCustomError, core_schema

from backbone.errors import DirectoryError, OrganCodeError
from backbone.organ import MAX_CODE_LENGTH, WELL_FORMED_CODE, OrganCode, SystemId
from backbone.tiers import TierModel

__all__ = [
    "DIRECTORY_VERSION",
    "Agency",
    "Connection",
    "DirectoryFile",
    "Hub",
    "OrganCodeField",
    "OrganCodeTextField",
    "Share",
    "Status",
    "Successor",
    "SystemIdField",
    "TierModelField",
    "code_text_message",
]

DIRECTORY_VERSION = 2  # what new files are written as; version 1 files still load


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
_parse_organ_code = _parser(OrganCode, "an organ code")


def _code_text(value: object) -> str:
    # Python input (YAML, entries built in code): checked by the parser, kept as text.
    code = _parse_organ_code(value)
    return value if isinstance(value, str) else str(code)


# The JSON errors of a code kept as text, which ``code_text_message`` words as the parser does.
_CODE_TEXT_ERRORS = frozenset({"string_type", "string_pattern_mismatch", "string_too_long"})


# The fields that are OrganCodeTextField (by their name in the file).
_CODE_TEXT_FIELDS = frozenset({"paired_code"})


def code_text_message(field: object, error_type: str, value: object) -> str | None:
    """The parser's own sentence for what pydantic's Rust core found wrong with a code kept
    as text (:data:`OrganCodeTextField`, read from JSON); None for any other error."""
    if field not in _CODE_TEXT_FIELDS or error_type not in _CODE_TEXT_ERRORS:
        return None
    try:
        _parse_organ_code(value)
    except PydanticCustomError as error:
        return error.message()
    return None


# An organ code kept as its text, for the codes a file has many of and a load need not parse:
# read from JSON, it is checked by a pattern in pydantic's Rust core (no Python call per
# code; the parser words its errors, ``code_text_message``); from Python, by the parser.
# Either way the text is the code's own (``str(OrganCode.parse(text)) == text``).
OrganCodeTextField = Annotated[
    str,
    GetPydanticSchema(
        lambda _source, _handler: core_schema.json_or_python_schema(
            json_schema=core_schema.str_schema(
                pattern=WELL_FORMED_CODE, max_length=MAX_CODE_LENGTH
            ),
            python_schema=core_schema.no_info_plain_validator_function(_code_text),
        )
    ),
    WithJsonSchema({"type": "string", "examples": ["H53.01.01"]}),
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


class Status(StrEnum):
    """Where an entry is in its life, as the file says in the end; what it is at a given
    instant also depends on its dates (``Directory.resolve``)."""

    ACTIVE = "active"
    CLOSED = "closed"  # from its ``closes`` date on; a closed code never comes back


class Share(StrEnum):
    FULL = "full"  # the successor takes over all of the closed agency's business
    PARTIAL = "partial"  # one of several taking a part (a split); nobody can forward blindly


class Successor(BaseModel):
    """An agency taking over (part of) a closed one, named by its current code."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    organ_code: OrganCodeField
    share: Share


class Hub(BaseModel):
    """A hub (provincial or ministerial integration platform, LGSP) with one broker account,
    serving the agencies connected through it that lie in the subtrees of ``serves``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: SystemIdField
    name: _Text
    serves: Annotated[tuple[OrganCodeField, ...], Field(min_length=1)]
    broker_account: _Text
    certificate: str | None = None
    status: Status = Status.ACTIVE  # version 2
    closes: date | None = None  # version 2; required when closed

    @property
    def system_id(self) -> str:
        return str(self.id)


class Agency(BaseModel):
    """One agency. ``certificate`` is a PEM file path (relative to the directory file) or
    inline PEM, kept as text: the PKI module parses it when it needs it.

    ``organ_code`` is the agency's primary code (either format): the one its certificate,
    broker account and inbox use. ``paired_code`` is the one code of the other format that
    names the same agency, as the directory says (never derived). Dates are calendar days
    in the directory's zone: in effect from the start of ``effective``, closed from the
    start of ``closes``."""

    model_config = ConfigDict(
        frozen=True, extra="forbid", populate_by_name=True, serialize_by_alias=True
    )

    organ_code: OrganCodeField
    name: _Text
    connection: Connection
    hub: SystemIdField | None = None
    certificate: str | None = None
    broker_account: Annotated[str, Field(min_length=1)] | None = None
    # Version 1's ``active: false`` (listed, not receiving): read as closed with no dates.
    listed_active: bool = Field(default=True, alias="active")
    # Version 2 from here on.
    # Kept as text (``paired_code`` parses it): a country has some 10,000, and parsing each
    # at load made a version-2 file load 1.4 times as slowly as version 1.
    paired_text: OrganCodeTextField | None = Field(default=None, alias="paired_code")
    parent: OrganCodeField | None = None  # absent: the code's own parent
    status: Status = Status.ACTIVE
    effective: date | None = None  # absent: in effect since before the directory's history
    closes: date | None = None  # required when closed, forbidden when active
    former_codes: tuple[OrganCodeField, ...] = ()
    successors: tuple[Successor, ...] = ()

    @property
    def system_id(self) -> str:
        return str(self.organ_code)

    @property
    def active(self) -> bool:
        """Whether the file's last word on the agency is that it is in service (dates
        aside: ``Directory.resolve`` answers for an instant)."""
        return self.listed_active and self.status is Status.ACTIVE

    @property
    def paired_code(self) -> OrganCode | None:
        """The one code of the other format naming the agency, parsed (and cached) when
        asked for."""
        text = self.paired_text
        return None if text is None else OrganCode.parse(text)

    @property
    def parent_code(self) -> OrganCode | None:
        """The administrative parent: as given, else the code's own."""
        return self.parent if self.parent is not None else self.organ_code.parent

    @property
    def codes(self) -> tuple[OrganCode, ...]:
        """The codes naming the agency now: its primary code, then its paired code."""
        if self.paired_code is None:
            return (self.organ_code,)
        return (self.organ_code, self.paired_code)


class DirectoryFile(BaseModel):
    """The whole file, as written. ``tiers`` absent means the default profile."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    version: Literal[1, 2]
    # Version 2, optional: how many agencies the file lists, so a file cut short between
    # two entries (still valid YAML) is refused. Written by ``dump_directory``.
    agency_count: int | None = None
    # Version 2, optional: orders the versions an operator applies (``backbone directory
    # apply``): each applied version carries a higher one; none reads as revision 0.
    revision: int | None = Field(default=None, ge=1)
    tiers: TierModelField | None = None
    hubs: tuple[Hub, ...] = ()
    agencies: tuple[Agency, ...]
