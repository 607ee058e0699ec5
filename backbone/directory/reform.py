"""The 2025 reform as a worked example: from a pre-reform synthetic country (version 2, the
conventions of :mod:`backbone.directory.synthetic`) to its next version, deterministic for a
seed. Pure: models in, models out; ``backbone directory reform`` writes the file.

What it does (docs/directory.md, "Worked example: the 2025 reform"), on ``Reform.effective``:
- provinces are merged in groups of one to three; each group keeps the name and codes of one
  of its provinces (Decision 09/2025's same-name rule), the others close with it as their one
  full successor, their departments with the keeper's department of the same name (else the
  keeper), the units under a department with the department's heir, and their hubs close;
- every district closes, its province (the keeper) its one full successor;
- the communes of each new province are grouped, neighbours together: a group of one is kept
  (its parent becomes the province; in a province that closed it is recoded ``HKK.NNN`` under
  the keeper, its old codes becoming former codes), a larger group becomes a new commune
  ``HKK.NNN`` (Decision 20's format, a commune directly under the province) that each member
  merges into, except the communes split between two to five new communes (partial
  successors).
The keeper's hub serves the keeper's Decision 20 code too, where the new communes lie.
"""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date

from backbone.directory.builder import agency_account
from backbone.directory.model import (
    Agency,
    Connection,
    DirectoryFile,
    Hub,
    Share,
    Status,
    Successor,
)
from backbone.directory.synthetic import FIRST_DISTRICT
from backbone.errors import DirectoryError
from backbone.organ import CodeFormat, OrganCode, SystemId

__all__ = ["Reform", "ReformSummary", "Reformed", "reform_directory"]


@dataclass(frozen=True, slots=True)
class Reform:
    """What the reform does, as shares so that any size of country scales: the 2025 figures
    (63 provinces → 34, about 10,000 communes → 3,321, about 460 split) by default."""

    effective: date = date(2025, 7, 1)
    provinces_after: float = 34 / 63  # provinces left, per province before
    communes_after: float = 3_321 / 10_000  # communes left, per commune before
    split_share: float = 460 / 10_000  # communes split, per commune before
    largest_merge: int = 3  # provinces in one merged province, at most
    split_parts: tuple[int, int] = (2, 5)  # new communes a split commune goes to, at least/most


@dataclass(frozen=True, slots=True)
class ReformSummary:
    provinces_before: int
    provinces_after: int
    communes_before: int
    communes_after: int
    districts_closed: int
    communes_new: int
    communes_kept: int  # kept with their codes, moved up to their province
    communes_recoded: int  # kept, in a province that closed: recoded under the keeper
    communes_merged: int  # closed with one full successor
    communes_split: int  # closed with partial successors
    merged_provinces: dict[str, tuple[str, ...]] = field(default_factory=dict)  # keeper → closed


@dataclass(frozen=True, slots=True)
class Reformed:
    file: DirectoryFile
    summary: ReformSummary


def reform_directory(pre: DirectoryFile, reform: Reform | None = None, seed: int = 0) -> Reformed:
    """The version after ``reform`` of the country ``pre`` (revision + 1), the same for the
    same seed. :class:`DirectoryError` when ``pre`` is not a version-2 country with
    provinces."""
    if pre.version != 2:
        raise DirectoryError(
            "reform: the pre-reform directory is version 1; a reform writes history, which "
            "needs version 2 (backbone directory generate --version 2)"
        )
    return _Reformer(pre, reform or Reform(), random.Random(seed)).run()  # noqa: S311


@dataclass
class _Province:
    head: Agency
    hub: SystemId | None
    departments: list[Agency] = field(default_factory=list)  # with the units under them
    districts: list[Agency] = field(default_factory=list)  # with anything under them
    communes: list[Agency] = field(default_factory=list)

    @property
    def key(self) -> str:
        return self.head.organ_code.levels[0]

    @property
    def label(self) -> str:
        return self.head.name.removeprefix("UBND ")


class _Reformer:
    def __init__(self, pre: DirectoryFile, reform: Reform, rng: random.Random) -> None:
        self.pre = pre
        self.reform = reform
        self.rng = rng
        self.replaced: dict[OrganCode, Agency] = {}
        self.added: list[Agency] = []
        self.taken = {
            code for agency in pre.agencies for code in (*agency.codes, *agency.former_codes)
        }
        self.counts: dict[str, int] = defaultdict(int)

    def run(self) -> Reformed:
        provinces = self._provinces()
        if not provinces:
            raise DirectoryError(
                "reform: the pre-reform directory has no active province (a level-1 QCVN 102 "
                "code H..); nothing to reform"
            )
        groups = self._groups(provinces)
        closed_hubs: set[SystemId] = set()
        keeper_hubs: set[SystemId] = set()
        merged: dict[str, tuple[str, ...]] = {}
        for keeper, others in groups:
            merged[str(keeper.head.organ_code)] = tuple(str(o.head.organ_code) for o in others)
            for other in others:
                self._merge_province(other, keeper)
                if other.hub is not None and other.hub != keeper.hub:
                    closed_hubs.add(other.hub)
            for province in (keeper, *others):
                for district in province.districts:
                    heir = Successor(organ_code=keeper.head.organ_code, share=Share.FULL)
                    self._close(district, heir)
                    self.counts["districts"] += 1
            self._communes(keeper, [c for p in (keeper, *others) for c in p.communes])
            if keeper.hub is not None:
                keeper_hubs.add(keeper.hub)
        agencies = tuple(self.replaced.get(a.organ_code, a) for a in self.pre.agencies)
        agencies += tuple(self.added)
        hubs = tuple(self._hub(hub, closed_hubs, keeper_hubs) for hub in self.pre.hubs)
        file = self.pre.model_copy(
            update={
                "revision": (self.pre.revision or 0) + 1,
                "agency_count": len(agencies),
                "hubs": hubs,
                "agencies": agencies,
            }
        )
        communes_before = sum(len(p.communes) for p in provinces)
        counts = self.counts
        summary = ReformSummary(
            provinces_before=len(provinces),
            provinces_after=len(groups),
            communes_before=communes_before,
            communes_after=counts["new"] + counts["kept"] + counts["recoded"],
            districts_closed=counts["districts"],
            communes_new=counts["new"],
            communes_kept=counts["kept"],
            communes_recoded=counts["recoded"],
            communes_merged=counts["merged"],
            communes_split=counts["split"],
            merged_provinces=merged,
        )
        return Reformed(file, summary)

    # -- the country as it is -------------------------------------------------------------

    def _provinces(self) -> list[_Province]:
        """Active provinces and their active agencies, sorted by the synthetic conventions:
        departments at level 2 below ``FIRST_DISTRICT``, districts from it, communes at
        level 3 under a district."""
        live = [a for a in self.pre.agencies if a.active]
        found: dict[str, _Province] = {}
        for agency in live:
            code = agency.organ_code
            if code.format is CodeFormat.QCVN102 and code.level == 1 and code.levels[0][0] == "H":
                found[code.levels[0]] = _Province(agency, agency.hub)
        recoded = [str(a.organ_code) for a in live if a.organ_code.format is CodeFormat.QD20]
        if recoded:
            shown = ", ".join(recoded[:3]) + (
                f" and {len(recoded) - 3} more" if len(recoded) > 3 else ""
            )
            raise DirectoryError(
                f"reform: agencies with a Decision 20 primary code are in service ({shown}): "
                "the directory looks reformed already; a reform starts from a pre-reform "
                "synthetic country (backbone directory generate)"
            )
        for agency in live:
            code = agency.organ_code
            province = found.get(code.levels[0])
            if province is None or code.level == 1:
                continue
            district = code.levels[1].isdigit() and int(code.levels[1]) >= FIRST_DISTRICT
            if not district:
                province.departments.append(agency)
            elif code.level == 3 and code.levels[3] == "000":
                province.communes.append(agency)
            else:
                province.districts.append(agency)
        return list(found.values())

    def _groups(self, provinces: list[_Province]) -> list[tuple[_Province, list[_Province]]]:
        """Provinces in groups of one to ``largest_merge``, each with the one keeping its
        name and codes, in the keepers' order."""
        rng = self.rng
        count = max(1, round(len(provinces) * self.reform.provinces_after))
        shuffled = list(provinces)
        rng.shuffle(shuffled)
        groups = [[province] for province in shuffled[:count]]
        largest = max(self.reform.largest_merge, -(-len(provinces) // count))
        for province in shuffled[count:]:
            open_groups = [group for group in groups if len(group) < largest]
            rng.choice(open_groups).append(province)
        result = []
        for group in groups:
            keeper = rng.choice(group)
            result.append((keeper, [p for p in group if p is not keeper]))
        order = {id(p): n for n, p in enumerate(provinces)}
        return sorted(result, key=lambda pair: order[id(pair[0])])

    # -- what changes ---------------------------------------------------------------------

    def _merge_province(self, closing: _Province, keeper: _Province) -> None:
        """``closing`` and its departments close into ``keeper`` (same-name departments)."""
        full = Share.FULL
        self._close(closing.head, Successor(organ_code=keeper.head.organ_code, share=full))
        by_name = {
            agency.name.removesuffix(f" {keeper.label}"): agency.organ_code
            for agency in keeper.departments
            if agency.organ_code.level == 2
        }
        heirs: dict[str, OrganCode] = {}
        for agency in closing.departments:  # a department comes before the units under it
            code = agency.organ_code
            if code.level == 2:
                stem = agency.name.removesuffix(f" {closing.label}")
                heir = by_name.get(stem, keeper.head.organ_code)
                heirs[code.levels[1]] = heir
            else:
                heir = heirs.get(code.levels[1], keeper.head.organ_code)
            self._close(agency, Successor(organ_code=heir, share=full))

    def _communes(self, keeper: _Province, communes: list[Agency]) -> None:
        """The new province's communes, in file order (neighbours together), grouped."""
        if not communes:
            return
        rng, reform = self.rng, self.reform
        count = max(1, round(len(communes) * reform.communes_after))
        sizes = [1] * count
        for _ in range(len(communes) - count):
            sizes[rng.randrange(count)] += 1
        groups: list[list[Agency]] = []
        start = 0
        for size in sizes:
            groups.append(communes[start : start + size])
            start += size
        new_codes: list[OrganCode] = []  # one per group of two or more
        group_of: dict[OrganCode, int] = {}  # commune → its group's position in new_codes
        for group in groups:
            if len(group) == 1:
                self._keep(group[0], keeper)
                continue
            code = self._new_code(keeper.key)
            new_codes.append(code)
            self.added.append(
                Agency(
                    organ_code=code,
                    name=rng.choice(group).name,
                    connection=Connection.HUB if keeper.hub is not None else Connection.DIRECT,
                    hub=keeper.hub,
                    broker_account=None if keeper.hub is not None else agency_account(str(code)),
                    effective=reform.effective,
                )
            )
            self.counts["new"] += 1
            for member in group:
                group_of[member.organ_code] = len(new_codes) - 1
        candidates = [c for c in communes if c.organ_code in group_of]
        splits = round(len(communes) * reform.split_share) if len(new_codes) >= 2 else 0
        split = {c.organ_code for c in rng.sample(candidates, min(splits, len(candidates)))}
        low, high = reform.split_parts
        for commune in candidates:
            own = group_of[commune.organ_code]
            if commune.organ_code in split:
                parts = min(rng.randint(low, high), len(new_codes))
                picked = [new_codes[(own + step) % len(new_codes)] for step in range(parts)]
                parts_of = [Successor(organ_code=c, share=Share.PARTIAL) for c in picked]
                self._close(commune, *parts_of)
                self.counts["split"] += 1
            else:
                self._close(commune, Successor(organ_code=new_codes[own], share=Share.FULL))
                self.counts["merged"] += 1

    def _keep(self, commune: Agency, keeper: _Province) -> None:
        """A commune that stays as it is, moved up to its province; recoded under the keeper
        when its own province closed."""
        if commune.organ_code.levels[0] == keeper.key:
            self.replaced[commune.organ_code] = commune.model_copy(
                update={"parent": keeper.head.organ_code}
            )
            self.counts["kept"] += 1
            return
        code = self._new_code(keeper.key)
        self.replaced[commune.organ_code] = commune.model_copy(
            update={
                "organ_code": code,
                "paired_text": None,
                "hub": keeper.hub,
                "former_codes": (*commune.former_codes, *commune.codes),
            }
        )
        self.counts["recoded"] += 1

    def _new_code(self, province: str) -> OrganCode:
        """The next Decision 20 commune code ``HKK.NNN`` of ``province`` no agency has or had."""
        number = self.counts[f"next.{province}"] or 1
        while (code := OrganCode((province, f"{number:03d}"), CodeFormat.QD20)) in self.taken:
            number += 1
        self.counts[f"next.{province}"] = number + 1
        self.taken.add(code)
        return code

    def _close(self, agency: Agency, *successors: Successor) -> None:
        self.replaced[agency.organ_code] = agency.model_copy(
            update={
                "status": Status.CLOSED,
                "closes": self.reform.effective,
                "successors": successors,
            }
        )

    def _hub(self, hub: Hub, closed: set[SystemId], keepers: set[SystemId]) -> Hub:
        """A merged-away province's hub closes; a keeper's also serves its Decision 20 code,
        under which the new communes lie."""
        if hub.id in closed:
            return hub.model_copy(update={"status": Status.CLOSED, "closes": self.reform.effective})
        if hub.id not in keepers:
            return hub
        roots = {root.levels[0] for root in hub.serves if root.level == 1}
        added = tuple(
            OrganCode((key,), CodeFormat.QD20)
            for key in sorted(roots)
            if OrganCode((key,), CodeFormat.QD20) not in hub.serves
        )
        return hub.model_copy(update={"serves": (*hub.serves, *added)}) if added else hub
