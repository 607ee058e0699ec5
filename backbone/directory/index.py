"""The loaded directory: cross-entry validation and constant-time lookups.

Subtree queries walk a precomputed map from each code to the codes one level below it. That
map also holds codes nobody lists (a district abolished in 2025 whose communes remain), so a
subtree reaches everything beneath a code whether or not each intermediate level is listed.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime, tzinfo
from functools import cached_property
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import ValidationError

from backbone.directory.history import (
    history_problems,
    needed_version,
    version_problems,
)
from backbone.directory.model import (
    Agency,
    Connection,
    DirectoryFile,
    Hub,
    Status,
)
from backbone.directory.problems import directory_error, validation_problems
from backbone.directory.timeline import Heir, Resolution, State, Timeline
from backbone.directory.versions import DirectoryVersion, version_of
from backbone.errors import DirectoryError, OrganCodeError, UnknownAgencyError
from backbone.organ import OrganCode, SystemId
from backbone.tiers import DEFAULT_PROFILE, PROFILES, Tier, TierModel

__all__ = ["DEFAULT_ZONE", "ConnectedSystem", "Directory"]

DEFAULT_ZONE = "Asia/Ho_Chi_Minh"  # where the directory's dates are days, as in tracking

ConnectedSystem = Agency | Hub
"""What holds a broker account and an inbox: a direct agency or a hub."""


class Directory:
    """A validated, indexed directory. Build it with :func:`load_directory`,
    :meth:`from_entries` or :class:`DirectoryBuilder`; it never changes afterwards."""

    def __init__(
        self,
        file: DirectoryFile,
        *,
        tiers: TierModel | None = None,
        base_dir: Path | None = None,
        source: str = "directory",
        zone: tzinfo | None = None,
    ) -> None:
        """Validate ``file`` across entries; raise :class:`DirectoryError` listing every problem.

        ``tiers`` overrides the file's own; ``base_dir`` anchors relative certificate paths;
        ``zone`` is where the file's dates are days (default Asia/Ho_Chi_Minh)."""
        self.file = file
        if tiers is None:
            tiers = file.tiers if file.tiers is not None else PROFILES[DEFAULT_PROFILE]
        self.tiers = tiers
        self.base_dir = base_dir
        self.source = source
        self._hubs: dict[SystemId, Hub] = {}
        self._by_code: dict[OrganCode, Agency] = {}
        self._by_text: dict[str, Agency] = {}
        self._systems: dict[str, tuple[ConnectedSystem, str]] = {}  # account → (system, where)
        self._account_agencies: dict[str, list[Agency]] = {}
        self._positions: dict[OrganCode, int] = {}  # each primary code's first position
        problems = version_problems(file)
        self._index_hubs(problems)
        self._index_agencies(problems)
        if file.version >= 2:
            problems += history_problems(file, self._positions, self._by_text)
        if problems:
            raise directory_error(source, problems)
        self._below = self._link_tree()
        self.timeline = Timeline(
            self._by_text,
            self._by_code,
            file.agencies,
            zone if zone is not None else ZoneInfo(DEFAULT_ZONE),
        )

    @cached_property
    def version(self) -> DirectoryVersion:
        """Its revision and content digest (computed once: 0.1 s at country size)."""
        return version_of(self.file)

    @classmethod
    def from_entries(
        cls,
        agencies: Iterable[Agency | Mapping[str, Any]],
        hubs: Iterable[Hub | Mapping[str, Any]] = (),
        *,
        tiers: str | TierModel | list[Any] | None = None,
        source: str = "directory",
        version: int | None = None,
        zone: tzinfo | None = None,
    ) -> Directory:
        """A directory from entries (models or plain dicts shaped like the file's entries).
        ``version`` absent: the oldest one with every field the entries use."""
        agencies, hubs = list(agencies), list(hubs)
        raw = {
            "version": version if version is not None else needed_version(agencies, hubs),
            "tiers": tiers,
            "hubs": hubs,
            "agencies": agencies,
        }
        try:
            file = DirectoryFile.model_validate(raw)
        except ValidationError as error:
            raise directory_error(source, validation_problems(error, raw)) from None
        return cls(file, source=source, zone=zone)

    # -- lookups ------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._by_code)

    def __iter__(self) -> Iterator[Agency]:
        return iter(self.file.agencies)

    def __contains__(self, code: object) -> bool:
        if isinstance(code, str):
            return code in self._by_text
        return code in self._by_code

    @property
    def agencies(self) -> tuple[Agency, ...]:
        return self.file.agencies

    @property
    def hubs(self) -> tuple[Hub, ...]:
        return self.file.hubs

    @property
    def connected_systems(self) -> tuple[ConnectedSystem, ...]:
        """Everything with its own broker account and inbox: hubs, then direct agencies."""
        direct = tuple(a for a in self.agencies if a.connection is Connection.DIRECT)
        return (*self.hubs, *direct)

    def agency(self, code: str | OrganCode) -> Agency:
        """The agency with ``code``; :class:`OrganCodeError` if malformed,
        :class:`UnknownAgencyError` if not listed."""
        found = self.get(code)
        if found is None:
            raise UnknownAgencyError(f"organ code {_parse(code)} is not in the directory")
        return found

    def get(self, code: str | OrganCode) -> Agency | None:
        """The agency with ``code``, or None when it is not listed (or malformed)."""
        return self._by_text.get(code) if isinstance(code, str) else self._by_code.get(code)

    # -- over time (docs/directory.md, "Version 2") ---------------------------------------

    def lookup(self, code: str | OrganCode, at: datetime) -> Resolution | None:
        """What ``code`` (primary, paired or former) names at instant ``at``: the agency, the
        code's role and the agency's state then; None when no agency ever had the code
        (or it is malformed)."""
        return self.timeline.lookup(code, at)

    def resolve(self, code: str | OrganCode, at: datetime) -> Resolution:
        """Like :meth:`lookup`; :class:`UnknownAgencyError` naming the code when no agency
        ever had it, :class:`OrganCodeError` when it is malformed."""
        found = self.lookup(code, at)
        if found is None:
            raise UnknownAgencyError(f"organ code {_parse(code)} is not in the directory")
        return found

    def state_at(self, agency: Agency, at: datetime) -> State:
        return self.timeline.state(agency, at)

    def hub_state_at(self, hub: Hub, at: datetime) -> State:
        return self.timeline.hub_state(hub, at)

    def heirs(self, code: str | OrganCode, at: datetime) -> tuple[Heir, ...]:
        """The agencies in service at ``at`` that took over the agency ``code`` names, through
        successors that closed in turn; empty when it is not closed then."""
        return self.timeline.heirs(self.resolve(code, at).agency, at)

    def hub(self, hub_id: str | SystemId) -> Hub:
        key = hub_id if isinstance(hub_id, SystemId) else SystemId(hub_id)
        found = self._hubs.get(key)
        if found is None:
            raise UnknownAgencyError(f"hub {key} is not in the directory")
        return found

    def serving_system(self, code: str | OrganCode) -> ConnectedSystem:
        """Whose inbox receives this agency's documents: the agency itself when it connects
        directly, else its hub."""
        agency = self.agency(code)
        if agency.hub is None:
            return agency
        return self._hubs[agency.hub]

    def system_of_account(self, broker_account: str) -> ConnectedSystem:
        """The direct agency or hub that logs in with ``broker_account``."""
        try:
            return self._systems[broker_account][0]
        except KeyError:
            raise UnknownAgencyError(
                f"broker account {broker_account!r} belongs to no agency or hub"
            ) from None

    def agencies_of_account(self, broker_account: str) -> tuple[Agency, ...]:
        """The agencies whose documents travel through ``broker_account``: the agency itself
        for a direct account, every agency connected through the hub for a hub's account."""
        self.system_of_account(broker_account)
        return tuple(self._account_agencies.get(broker_account, ()))

    def tier_of(self, code: str | OrganCode) -> Tier:
        """The tier for ``code``'s level; the code need not be listed."""
        return self.tiers.tier_of(_parse(code))

    def children(self, code: str | OrganCode) -> tuple[Agency, ...]:
        """The nearest listed agencies below ``code``: its direct children, or, where a level
        in between is not listed, the agencies under that level."""
        found: list[Agency] = []
        pending = list(reversed(self._below.get(self._node(code), ())))
        while pending:
            node = pending.pop()
            agency = self._by_code.get(node)
            if agency is not None:
                found.append(agency)
            else:
                pending.extend(reversed(self._below[node]))
        return tuple(found)

    def subtree(self, code: str | OrganCode) -> tuple[Agency, ...]:
        """``code``'s agency (if listed) and every listed agency under it, depth first."""
        found: list[Agency] = []
        pending = [self._node(code)]
        while pending:
            node = pending.pop()
            agency = self._by_code.get(node)
            if agency is not None:
                found.append(agency)
            pending.extend(reversed(self._below.get(node, ())))
        return tuple(found)

    def certificate_pem(self, entry: ConnectedSystem) -> bytes | None:
        """The entry's certificate as PEM bytes, read now (inline PEM or a file relative to
        the directory file); None when it has none. Nothing is parsed here."""
        reference = entry.certificate
        if reference is None:
            return None
        if reference.lstrip().startswith("-----BEGIN"):
            return reference.encode()
        path = Path(reference)
        if not path.is_absolute() and self.base_dir is not None:
            path = self.base_dir / path
        try:
            return path.read_bytes()
        except OSError as error:
            raise DirectoryError(
                f"{entry.system_id}: certificate file {path} cannot be read: {error.strerror}"
            ) from None

    # -- building -------------------------------------------------------------------------

    def _index_hubs(self, problems: list[str]) -> None:
        first_seen: dict[SystemId, int] = {}
        for position, hub in enumerate(self.file.hubs):
            where = f"hubs[{position}] ({hub.id})"
            if hub.id in first_seen:
                problems.append(
                    f"{where}.id: duplicate hub id; first listed at hubs[{first_seen[hub.id]}]"
                )
                continue
            first_seen[hub.id] = position
            if _is_organ_code(hub.system_id):
                problems.append(
                    f"{where}.id: {hub.id} is an organ code; a hub id must not be one, or "
                    "it would be taken for an agency"
                )
            self._hubs[hub.id] = hub
            self._claim_account(hub.broker_account, hub, where, problems)

    def _index_agencies(self, problems: list[str]) -> None:
        first_seen = self._positions
        for position, agency in enumerate(self.file.agencies):
            code = agency.organ_code
            where = f"agencies[{position}] ({code})"
            if code in first_seen:
                first = self.file.agencies[first_seen[code]]
                closed = (
                    f" (closed on {first.closes}; a closed code never comes back)"
                    if first.status is Status.CLOSED
                    else ""
                )
                problems.append(
                    f"{where}.organ_code: duplicate organ code; first listed at "
                    f"agencies[{first_seen[code]}]{closed}"
                )
                continue
            first_seen[code] = position
            self._by_code[code] = agency
            self._by_text[str(code)] = agency
            if agency.connection is Connection.DIRECT:
                self._check_direct(agency, where, problems)
            else:
                self._check_via_hub(agency, where, problems)

    def _check_direct(self, agency: Agency, where: str, problems: list[str]) -> None:
        if agency.hub is not None:
            problems.append(f"{where}.hub: set to {agency.hub} but connection is 'direct'")
        if agency.broker_account is None:
            problems.append(f"{where}.broker_account: required when connection is 'direct'")
        else:
            self._claim_account(agency.broker_account, agency, where, problems)
            self._account_agencies[agency.broker_account] = [agency]

    def _check_via_hub(self, agency: Agency, where: str, problems: list[str]) -> None:
        if agency.broker_account is not None:
            problems.append(
                f"{where}.broker_account: set to {agency.broker_account!r} but connection is "
                "'hub'; an agency connected through a hub uses the hub's account"
            )
        if agency.hub is None:
            problems.append(f"{where}.hub: required when connection is 'hub'")
            return
        hub = self._hubs.get(agency.hub)
        if hub is None:
            problems.append(f"{where}.hub: hub {agency.hub} is not listed under hubs")
            return
        if not any(agency.organ_code.is_within(root) for root in hub.serves):
            served = ", ".join(str(root) for root in hub.serves)
            problems.append(
                f"{where}.organ_code: outside every subtree hub {hub.id} serves ({served})"
            )
            return
        self._account_agencies.setdefault(hub.broker_account, []).append(agency)

    def _claim_account(
        self, account: str, system: ConnectedSystem, where: str, problems: list[str]
    ) -> None:
        holder = self._systems.get(account)
        if holder is None:
            self._systems[account] = (system, where)
            return
        problems.append(
            f"{where}.broker_account: {account!r} is already the account of {holder[1]}; "
            "each connected system needs its own"
        )

    def _link_tree(self) -> dict[OrganCode, tuple[OrganCode, ...]]:
        below: dict[OrganCode, list[OrganCode]] = {}
        linked: set[OrganCode] = set()
        for code in self._by_code:
            node: OrganCode | None = code
            while node is not None and node not in linked:
                parent = node.parent
                if parent is not None:
                    below.setdefault(parent, []).append(node)
                linked.add(node)
                node = parent
        return {code: tuple(nodes) for code, nodes in below.items()}

    def _node(self, code: str | OrganCode) -> OrganCode:
        node = _parse(code)
        if node not in self._by_code and node not in self._below:
            raise UnknownAgencyError(
                f"organ code {node} is not in the directory and has no agency under it"
            )
        return node


def _parse(code: str | OrganCode) -> OrganCode:
    return code if isinstance(code, OrganCode) else OrganCode.parse(code)


def _is_organ_code(text: str) -> bool:
    try:
        OrganCode.parse(text)
    except OrganCodeError:
        return False
    return True
