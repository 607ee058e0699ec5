"""The agency-list operations, answered from the adapter's directory: ``getAgenciesList``,
``getAgenciesListQD20`` and ``getSynchronizeUnit`` (docs/gateway.md).

The fields come from the version-2 directory (docs/directory.md): ``oldCode`` lists an
agency's former codes, ``code102`` is its QCVN 102 code (its own or the one the directory
pairs with it, never derived from the other format), ``deleted`` marks a closed agency and
``version`` is the directory revision the unit is listed at.

Whether an agency is in service is decided at the instant asked (the gateway's clock), as the
router decides where a document goes (``Directory.state_at``, the same ``Timeline``): an
agency whose closing day has come is closed though the version was applied before it, one
whose closing day is still to come is in service until then, and one whose effective day
is still to come is not listed yet (the router refuses it as a recipient).
"""

from __future__ import annotations

from datetime import datetime

from backbone.directory import Agency, Directory, State
from backbone.organ import CodeFormat, OrganCode

__all__ = ["agencies", "agencies_qd20", "synchronize_units"]


def _parent(agency: Agency) -> str:
    parent = agency.parent_code
    return str(parent) if parent is not None else ""


def _code_in(agency: Agency, form: CodeFormat) -> OrganCode | None:
    """The agency's code of format ``form``: its primary code or its paired one."""
    return next((code for code in agency.codes if code.format is form), None)


def _listed(agency: Agency) -> dict[str, object]:
    return {
        "id": str(agency.organ_code),
        "pid": _parent(agency),
        "code": str(agency.organ_code),
        "name": agency.name,
        "mail": "",
        "oldCode": ",".join(str(code) for code in agency.former_codes),
    }


def _in_service(directory: Directory, agency: Agency, at: datetime) -> bool:
    return directory.state_at(agency, at) is State.ACTIVE


def agencies(directory: Directory, at: datetime) -> list[dict[str, object]]:
    """The agencies in service at ``at``."""
    return [_listed(a) for a in directory.agencies if _in_service(directory, a, at)]


def agencies_qd20(directory: Directory, level: str | None, at: datetime) -> list[dict[str, object]]:
    """The agencies in service at ``at``; ``level`` (1–4), when given, keeps the agencies of
    that level (of the code listed)."""
    wanted = int(level) if level and level.strip().isdigit() else None
    rows = []
    for agency in directory.agencies:
        if not _in_service(directory, agency, at):
            continue
        # A Decision 20/2020 list: the agency's Decision 20 code when it has one.
        code = _code_in(agency, CodeFormat.QD20) or agency.organ_code
        code102 = _code_in(agency, CodeFormat.QCVN102)
        if wanted is None or code.level == wanted:
            rows.append({**_listed(agency), "code": str(code), "code102": str(code102 or "")})
    return rows


def synchronize_units(directory: Directory, at: datetime) -> list[dict[str, object]]:
    """Every agency, ``deleted`` when not in service at ``at`` (closed, or not in effect
    yet): a hub keeps its copy current from it. Each is at the directory's revision (at
    least 1: a file without one is the first)."""
    version = max(directory.version.revision, 1)
    return [
        {
            "id": str(agency.organ_code),
            "code": str(agency.organ_code),
            "name": agency.name,
            "mail": "",
            "pid": _parent(agency),
            "version": version,
            "centerCode": str(agency.hub or ""),
            "deleted": not _in_service(directory, agency, at),
            "modifyDate": str(agency.closes or agency.effective or ""),
            "isAgency": True,
        }
        for agency in directory.agencies
    ]
