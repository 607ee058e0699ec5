"""A synthetic, country-size directory shaped like Vietnam before the 2025 reform: about
12,000 agencies over the four tiers, deterministic for a seed.

Conventions (also in docs/directory.md):
- Ministries and central bodies ``000.00.00.G01``…``G31`` (G22 the Government Office), with
  bureaus at level 2, units under some bureaus at level 3 and a few level-4 units.
- Provinces ``000.00.00.H01``…``H63``: departments at level 2 from ``01``, districts at level
  2 from ``30``, communes at level 3 under their district, units under some departments at
  level 3 and a few at level 4.
- Every province has a hub (LGSP) ``00.NN.W00`` (NN the province's number, as in the sample
  id ``00.53.W00`` for H53) serving ``000.00.00.HNN``; all its agencies connect through it.
- Ministries connect directly. About one in four also runs a hub ``10.NN.W00`` through which
  its units connect; the Government Office never does.
- Broker accounts follow :func:`agency_account` and :func:`hub_account`.
- Version 2 (the default) adds paired Decision 20/2020 codes: ``HNN`` for province ``HNN``'s
  People's Committee and ``HNN.NNN`` for its communes, numbered from ``001`` in file order.
  Version 1 is the same country without them, entry for entry.
"""

from __future__ import annotations

import random

from backbone.directory.builder import agency_account, hub_account
from backbone.directory.model import DIRECTORY_VERSION, Agency, Connection, DirectoryFile, Hub
from backbone.directory.vn_names import (
    BUREAUS,
    CENTRAL_CITIES,
    DEPARTMENT_UNITS,
    DEPARTMENTS,
    MINISTRIES,
    PLACE_FIRST,
    PLACE_SECOND,
    PROVINCES,
    SUB_UNITS,
)
from backbone.organ import CodeFormat, OrganCode, SystemId

__all__ = ["FIRST_DISTRICT", "generate_directory"]

_GOVERNMENT_OFFICE = "G22"
_MINISTRY_HUB_SHARE = 0.25
FIRST_DISTRICT = 30  # districts are level-2 units numbered from here; departments below it
_PLACES = tuple(f"{a} {b}" for a in PLACE_FIRST for b in PLACE_SECOND if a != b)


def generate_directory(
    seed: int = 0,
    *,
    certificate_dir: str | None = None,
    version: int = DIRECTORY_VERSION,
    provinces: int = len(PROVINCES),
) -> DirectoryFile:
    """The synthetic directory for ``seed``. With ``certificate_dir`` every agency and hub
    names ``<certificate_dir>/<its id>.pem`` (the files are not created); otherwise none
    has a certificate. ``version`` 2 pairs provinces and communes with Decision 20 codes.
    ``provinces`` below 63 gives a smaller country: the first provinces only."""
    rng = random.Random(seed)  # noqa: S311 - seeded on purpose
    generator = _Generator(rng, certificate_dir, paired=version >= 2)
    for number, name in enumerate(MINISTRIES, start=1):
        generator.ministry(f"G{number:02d}", name)
    for number, name in enumerate(PROVINCES[:provinces], start=1):
        generator.province(f"H{number:02d}", name)
    agencies = tuple(generator.agencies)
    return DirectoryFile(
        version=2 if version >= 2 else 1,
        agency_count=len(agencies) if version >= 2 else None,
        hubs=tuple(generator.hubs),
        agencies=agencies,
    )


class _Generator:
    def __init__(self, rng: random.Random, certificate_dir: str | None, *, paired: bool) -> None:
        self.rng = rng
        self.certificate_dir = certificate_dir
        self.paired = paired
        self.communes = 0  # the province's communes so far, numbering their paired codes
        self.hubs: list[Hub] = []
        self.agencies: list[Agency] = []

    def ministry(self, level_1: str, name: str) -> None:
        rng = self.rng
        head = OrganCode((level_1, "00", "00", "000"))
        self._direct(head, name)
        hub: SystemId | None = None
        if level_1 != _GOVERNMENT_OFFICE and rng.random() < _MINISTRY_HUB_SHARE:
            hub = self._hub(SystemId(f"10.{level_1[1:]}.W00"), f"Trục LGSP {name}", head)
        bureaus = sorted(rng.sample(range(len(BUREAUS)), rng.randint(3, 8)))
        for position, bureau in enumerate(bureaus, start=1):
            bureau_code = OrganCode((level_1, f"{position:02d}", "00", "000"))
            bureau_name = f"{BUREAUS[bureau]}, {name}"
            self._unit(bureau_code, bureau_name, hub)
            if rng.random() < 0.3:
                self._units_below(bureau_code, bureau_name, hub)

    def province(self, level_1: str, name: str) -> None:
        rng = self.rng
        label = f"thành phố {name}" if name in CENTRAL_CITIES else f"tỉnh {name}"
        head = OrganCode((level_1, "00", "00", "000"))
        hub = self._hub(SystemId(f"00.{level_1[1:]}.W00"), f"Trục LGSP {label}", head)
        self.communes = 0
        self._unit(head, f"UBND {label}", hub, self._pair((level_1,)))
        departments = sorted(rng.sample(range(len(DEPARTMENTS)), rng.randint(13, 17)))
        for position, department in enumerate(departments, start=1):
            code = OrganCode((level_1, f"{position:02d}", "00", "000"))
            department_name = f"{DEPARTMENTS[department]} {label}"
            self._unit(code, department_name, hub)
            if rng.random() < 0.2:
                self._units_below(code, department_name, hub, names=DEPARTMENT_UNITS)
        # The first two districts are urban: a city's two "quận", a province's own city and town.
        urban_kinds = ("quận", "quận") if name in CENTRAL_CITIES else ("thành phố", "thị xã")
        for position, place in enumerate(rng.sample(_PLACES, rng.randint(8, 14))):
            kind = urban_kinds[position] if position < len(urban_kinds) else "huyện"
            code = OrganCode((level_1, f"{FIRST_DISTRICT + position:02d}", "00", "000"))
            self._unit(code, f"UBND {kind} {place}, {label}", hub)
            self._communes(code, kind, hub)

    def _communes(self, district: OrganCode, district_kind: str, hub: SystemId) -> None:
        rng = self.rng
        for position, place in enumerate(rng.sample(_PLACES, rng.randint(10, 19)), start=1):
            if district_kind in ("quận", "thành phố"):
                kind = "phường"
            elif position == 1:
                kind = "thị trấn" if district_kind == "huyện" else "phường"
            else:
                kind = "xã"
            code = OrganCode((district.levels[0], district.levels[1], f"{position:02d}", "000"))
            self.communes += 1
            paired = self._pair((district.levels[0], f"{self.communes:03d}"))
            self._unit(code, f"UBND {kind} {place}", hub, paired)

    def _units_below(
        self,
        parent: OrganCode,
        parent_name: str,
        hub: SystemId | None,
        names: tuple[str, ...] = SUB_UNITS,
    ) -> None:
        """One or two level-3 units under ``parent``, some with level-4 units of their own."""
        rng = self.rng
        l1, l2 = parent.levels[0], parent.levels[1]
        for position in range(1, rng.randint(1, 2) + 1):
            code = OrganCode((l1, l2, f"{position:02d}", "000"))
            unit_name = f"{rng.choice(names)}, {parent_name}"
            self._unit(code, unit_name, hub)
            if rng.random() < 0.3:
                for number in range(1, rng.randint(1, 2) + 1):
                    leaf = OrganCode((l1, l2, f"{position:02d}", f"{number:03d}"))
                    self._unit(leaf, f"{rng.choice(SUB_UNITS)}, {unit_name}", hub)

    def _hub(self, hub_id: SystemId, name: str, serves: OrganCode) -> SystemId:
        self.hubs.append(
            Hub(
                id=hub_id,
                name=name,
                serves=(serves,),
                broker_account=hub_account(str(hub_id)),
                certificate=self._certificate(str(hub_id)),
            )
        )
        return hub_id

    def _pair(self, groups: tuple[str, ...]) -> OrganCode | None:
        return OrganCode(groups, CodeFormat.QD20) if self.paired else None

    def _unit(
        self, code: OrganCode, name: str, hub: SystemId | None, paired: OrganCode | None = None
    ) -> None:
        """An agency connected through ``hub``, or directly when there is none."""
        if hub is None:
            self._direct(code, name)
            return
        fields = {
            "organ_code": code,
            "name": name,
            "connection": Connection.HUB,
            "hub": hub,
            "certificate": self._certificate(str(code)),
        }
        if paired is not None:  # only when there is one, as a file would say it
            fields["paired_code"] = paired
        self.agencies.append(Agency.model_validate(fields))

    def _direct(self, code: OrganCode, name: str) -> None:
        self.agencies.append(
            Agency(
                organ_code=code,
                name=name,
                connection=Connection.DIRECT,
                broker_account=agency_account(str(code)),
                certificate=self._certificate(str(code)),
            )
        )

    def _certificate(self, system_id: str) -> str | None:
        if self.certificate_dir is None:
            return None
        return f"{self.certificate_dir}/{system_id}.pem"
