"""``backbone directory``: check, query and generate directory files."""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import date
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from backbone.directory.certificates import certificate_problems
from backbone.directory.diff import DirectoryDiff, diff_directories
from backbone.directory.index import Directory
from backbone.directory.loader import Format, dump_directory, load_directory
from backbone.directory.model import Connection, Status
from backbone.directory.reform import Reform, reform_directory
from backbone.directory.succession import succession
from backbone.directory.synthetic import generate_directory
from backbone.errors import DirectoryError, OrganCodeError

app = typer.Typer(no_args_is_help=True)


class _Format(StrEnum):
    JSON = "json"
    YAML = "yaml"


_FORMATS: dict[_Format, Format] = {_Format.JSON: "json", _Format.YAML: "yaml"}


_File = Annotated[Path, typer.Argument(help="Directory file (.json, .yaml or .yml).")]
_Code = Annotated[str, typer.Argument(help="Organ code, e.g. 000.00.32.H53.")]
_Tiers = Annotated[
    str | None, typer.Option(help="Tier profile overriding the file's (four-tier, two-level).")
]


@contextmanager
def _exit_on_error() -> Iterator[None]:
    try:
        yield
    except (DirectoryError, OrganCodeError) as error:
        typer.echo(f"error: {error.message}", err=True)
        raise typer.Exit(1) from error


@app.command()
def check(file: _File, tiers: _Tiers = None) -> None:
    """Load and validate FILE, and read every certificate it names as the router and
    adapters will at start; print counts per tier, hubs and direct agencies."""
    with _exit_on_error():
        directory = load_directory(file, tiers=tiers)
    problems = certificate_problems(directory)
    if problems:
        typer.echo(f"error: {file}: {len(problems)} certificate(s) cannot be used:", err=True)
        for problem in problems:
            typer.echo(f"  {problem}", err=True)
        raise typer.Exit(1)
    per_tier = Counter(directory.tier_of(agency.organ_code).number for agency in directory)
    direct = sum(agency.connection is Connection.DIRECT for agency in directory)
    inactive = sum(not agency.active for agency in directory)
    profile = directory.tiers.profile_name() or "custom"
    typer.echo(
        f"{file}: valid, version {directory.file.version}, {len(directory)} agencies, "
        f"tiers {profile}"
    )
    for tier in directory.tiers.tiers:
        typer.echo(f"  tier {tier.number} {tier.name}: {per_tier[tier.number]}")
    typer.echo(f"  hubs: {len(directory.hubs)}")
    typer.echo(f"  direct agencies: {direct}")
    typer.echo(f"  agencies through a hub: {len(directory) - direct}")
    typer.echo(f"  inactive: {inactive}")
    if directory.file.version >= 2:
        paired = sum(agency.paired_text is not None for agency in directory)
        former = sum(len(agency.former_codes) for agency in directory)
        closed_hubs = sum(hub.status is Status.CLOSED for hub in directory.hubs)
        typer.echo(f"  paired codes: {paired}")
        typer.echo(f"  former codes: {former}")
        typer.echo(f"  closed hubs: {closed_hubs}")


@app.command()
def show(file: _File, organ_code: _Code, tiers: _Tiers = None) -> None:
    """Print one agency as JSON: its entry, tier, routing key, parents and serving system."""
    with _exit_on_error():
        directory = load_directory(file, tiers=tiers)
        agency = directory.agency(organ_code)
        system = directory.serving_system(organ_code)
    tier = directory.tier_of(agency.organ_code)
    parents = [
        {"organ_code": str(code), "name": listed.name if (listed := directory.get(code)) else None}
        for code in agency.organ_code.ancestors
    ]
    report: dict[str, Any] = {
        "agency": agency.model_dump(mode="json"),
        "tier": {"number": tier.number, "name": tier.name},
        "routing_key": agency.organ_code.routing_key,
        "subtree_pattern": agency.organ_code.subtree_pattern,
        "parents": parents,
        "serving_system": {
            "kind": "agency" if system is agency else "hub",
            "id": system.system_id,
            "name": system.name,
            "broker_account": system.broker_account,
        },
    }
    typer.echo(json.dumps(report, ensure_ascii=False, indent=2))


@app.command()
def subtree(file: _File, organ_code: _Code) -> None:
    """List ORGAN_CODE's agency and every agency under it: code, tier, name (tab-separated)."""
    with _exit_on_error():
        directory = load_directory(file)
        agencies = directory.subtree(organ_code)
    for agency in agencies:
        tier = directory.tier_of(agency.organ_code)
        typer.echo(f"{agency.organ_code}\t{tier.number}\t{agency.name}")


@app.command()
def diff(
    old: Annotated[Path, typer.Argument(help="The version in force (.json, .yaml or .yml).")],
    new: Annotated[Path, typer.Argument(help="The version to compare with it.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the changes as JSON.")] = False,
) -> None:
    """Check OLD and NEW and show what changes: agencies added, closed, merged, split,
    recoded, renamed, moved to another hub, paired with another code; hubs added and closed.
    Exit 1 when either is invalid, or NEW drops a code or reopens a closed one."""
    with _exit_on_error():
        before = load_directory(old)
        after = load_directory(new)
    result = diff_directories(before, after)
    if as_json:
        typer.echo(json.dumps(result.as_json(), ensure_ascii=False, indent=2))
    else:
        echo_changes(result, f"{old} → {new}")
    exit_on_problems(result.problems, new=new, old=old)


def echo_changes(result: DirectoryDiff, title: str) -> None:
    """``title: <counts per kind>``, then each change on a line of its own."""
    typer.echo(f"{title}: {_counts(result)}")
    for change in result.changes:
        typer.echo(f"  {change.line()}")


def _counts(result: DirectoryDiff) -> str:
    counts = ", ".join(f"{count} {kind}" for kind, count in result.counts().items())
    return counts or "no changes"


def exit_on_problems(problems: Sequence[str], *, new: Path, old: Path) -> None:
    """Every problem of ``new`` against ``old`` on stderr, then exit 1; nothing if none."""
    if problems:
        typer.echo(f"error: {new}: {len(problems)} problem(s) against {old}:", err=True)
        for problem in problems:
            typer.echo(f"  {problem}", err=True)
        raise typer.Exit(1)


@app.command()
def generate(
    out: Annotated[Path, typer.Argument(help="File to write (.json, .yaml or .yml).")],
    seed: Annotated[int, typer.Option(help="The same seed gives the same directory.")] = 0,
    format: Annotated[
        _Format | None, typer.Option("--format", help="By default from OUT's extension.")
    ] = None,
    certificate_dir: Annotated[
        str | None,
        typer.Option(
            help="Folder, relative to OUT, where each entry's <id>.pem is to be found; "
            "by default entries carry no certificate."
        ),
    ] = None,
    version: Annotated[
        int,
        typer.Option(
            min=1,
            max=2,
            help="File version; 2 pairs provinces and communes with Decision 20 codes.",
        ),
    ] = 2,
    provinces: Annotated[
        int, typer.Option(min=1, max=63, help="A smaller country: the first N provinces.")
    ] = 63,
) -> None:
    """Write a synthetic country-size directory (about 12,000 agencies) to OUT."""
    with _exit_on_error():
        directory = generate_directory(
            seed, certificate_dir=certificate_dir, version=version, provinces=provinces
        )
        dump_directory(directory, out, format=None if format is None else _FORMATS[format])
    typer.echo(f"{out}: {len(directory.agencies)} agencies, {len(directory.hubs)} hubs")


@app.command()
def reform(
    pre: Annotated[Path, typer.Argument(help="The pre-reform country, version 2.")],
    out: Annotated[Path, typer.Argument(help="The next version to write (.json, .yaml or .yml).")],
    seed: Annotated[int, typer.Option(help="The same seed gives the same reform.")] = 0,
    effective: Annotated[
        str, typer.Option(help="The day the reform takes effect (YYYY-MM-DD).")
    ] = "2025-07-01",
) -> None:
    """The 2025 reform as a worked example: provinces merged (same-name rule), districts
    closed with their communes moved up, communes merged and split. Writes PRE's next
    revision to OUT after checking it may follow PRE, as `directory apply` would."""
    try:
        day = date.fromisoformat(effective)
    except ValueError:
        typer.echo(f"error: --effective: {effective!r} is not a day (YYYY-MM-DD)", err=True)
        raise typer.Exit(1) from None
    with _exit_on_error():
        before = load_directory(pre)
        started = time.perf_counter()
        reformed = reform_directory(before.file, Reform(effective=day), seed)
        produced = time.perf_counter()
        result = succession(before, Directory(reformed.file, source=str(out)))
        checked = time.perf_counter()
    exit_on_problems(result.problems, new=out, old=pre)
    with _exit_on_error():
        dump_directory(reformed.file, out)
    summary = reformed.summary
    typer.echo(
        f"{out}: revision {reformed.file.revision}, {len(reformed.file.agencies)} agencies; "
        f"provinces {summary.provinces_before} → {summary.provinces_after}, communes "
        f"{summary.communes_before} → {summary.communes_after} ({summary.communes_split} "
        f"split), {summary.districts_closed} districts closed"
    )
    typer.echo(f"{pre} → {out}: {_counts(result.diff)} (backbone directory diff lists each)")
    typer.echo(
        f"produced in {produced - started:.2f} s, checked in {checked - produced:.2f} s",
        err=True,
    )
