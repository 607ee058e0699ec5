"""The agency-list operations, answered from the adapter's directory: ``getAgenciesList``,
``getAgenciesListQD20`` and ``getSynchronizeUnit`` (docs/gateway.md).

The directory today holds one code per agency, in either format, and no history: ``code``
is that code, ``code102`` the same code when it is a QCVN 102 one (empty for a Decision
20/2020 code), ``oldCode`` is empty, every unit is at ``version`` 1 and never ``deleted``;
the directory over time fills them in.
"""

from __future__ import annotations

from backbone.directory import Directory
from backbone.organ import CodeFormat, OrganCode

__all__ = ["agencies", "agencies_qd20", "synchronize_units"]


def _parent(code: OrganCode) -> str:
    parent = code.parent
    return str(parent) if parent is not None else ""


def agencies(directory: Directory) -> list[dict[str, object]]:
    return [
        {
            "id": str(agency.organ_code),
            "pid": _parent(agency.organ_code),
            "code": str(agency.organ_code),
            "name": agency.name,
            "mail": "",
            "oldCode": "",
        }
        for agency in directory.agencies
        if agency.active
    ]


def agencies_qd20(directory: Directory, level: str | None) -> list[dict[str, object]]:
    """``level`` (1–4), when given, keeps the agencies of that level."""
    wanted = int(level) if level and level.strip().isdigit() else None
    rows = []
    for row in agencies(directory):
        code = OrganCode.parse(str(row["code"]))
        if wanted is None or code.level == wanted:
            rows.append({**row, "code102": str(code) if code.format is CodeFormat.QCVN102 else ""})
    return rows


def synchronize_units(directory: Directory) -> list[dict[str, object]]:
    return [
        {
            "id": str(agency.organ_code),
            "code": str(agency.organ_code),
            "name": agency.name,
            "mail": "",
            "pid": _parent(agency.organ_code),
            "version": 1,
            "centerCode": str(agency.hub or ""),
            "deleted": not agency.active,
            "modifyDate": "",
            "isAgency": True,
        }
        for agency in directory.agencies
    ]
