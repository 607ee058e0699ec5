"""Reading and writing directory files, JSON or YAML by extension.

JSON goes straight to pydantic's Rust validator (``model_validate_json``) in one pass: no
intermediate Python objects, which is what keeps a country-size file well under a second.
"""

from __future__ import annotations

import gc
import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import tzinfo
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import ValidationError

from backbone.directory.index import Directory
from backbone.directory.model import DirectoryFile
from backbone.directory.problems import directory_error, validation_problems
from backbone.errors import DirectoryError
from backbone.tiers import TierModel

__all__ = ["Format", "dump_directory", "format_of", "load_directory", "parse_directory"]

Format = Literal["json", "yaml"]
_EXTENSIONS: dict[str, Format] = {".json": "json", ".yaml": "yaml", ".yml": "yaml"}
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_Dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


def format_of(path: Path) -> Format:
    try:
        return _EXTENSIONS[path.suffix.lower()]
    except KeyError:
        raise DirectoryError(
            f"{path}: unknown directory format {path.suffix!r}; use .json, .yaml or .yml"
        ) from None


def load_directory(
    path: str | Path,
    *,
    tiers: str | TierModel | list[Any] | None = None,
    zone: tzinfo | None = None,
) -> Directory:
    """Load, validate and index a directory file. ``tiers`` (a profile name, a model or an
    explicit list) overrides the file's own ``tiers``; ``zone`` is where its dates are days
    (default Asia/Ho_Chi_Minh)."""
    path = Path(path)
    format = format_of(path)
    try:
        data = path.read_bytes()
    except OSError as error:
        raise DirectoryError(f"{path}: cannot be read: {error.strerror}") from None
    return parse_directory(
        data, format=format, source=str(path), base_dir=path.parent, tiers=tiers, zone=zone
    )


def parse_directory(
    data: bytes | str,
    *,
    format: Format,
    source: str = "directory",
    base_dir: Path | None = None,
    tiers: str | TierModel | list[Any] | None = None,
    zone: tzinfo | None = None,
) -> Directory:
    """Like :func:`load_directory` for data already in memory."""
    raw: Any = None
    with _collector_paused():
        try:
            if format == "json":
                file = DirectoryFile.model_validate_json(data)
            else:
                raw = _parse_yaml(data, source)
                file = DirectoryFile.model_validate(raw)
        except ValidationError as error:
            if format == "json":
                _refuse_broken_json(error, source)
                raw = _json_or_none(data)  # only to name the failing entries
            raise directory_error(source, validation_problems(error, raw)) from None
        model = None if tiers is None else TierModel.from_config(tiers)
        return Directory(file, tiers=model, base_dir=base_dir, source=source, zone=zone)


@contextmanager
def _collector_paused() -> Iterator[None]:
    """No cyclic garbage collection while a directory is built: a country is hundreds of
    thousands of new objects, and the collections their allocations trigger walk them
    again and again (measured: 17 % of a version-2 country's load, 8 % of version 1's).
    Reference counting still frees what the load drops; a cycle waits for the next
    collection."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def dump_directory(file: DirectoryFile, path: str | Path, *, format: Format | None = None) -> None:
    """Write ``file`` as ``format`` (by default, by ``path``'s extension), leaving out
    default values. A version-2 file is written with its ``agency_count``, so a copy cut
    short between two entries is refused."""
    path = Path(path)
    if file.version >= 2:
        file = file.model_copy(update={"agency_count": len(file.agencies)})
    if (format or format_of(path)) == "json":
        path.write_text(file.model_dump_json(indent=1, exclude_defaults=True) + "\n", "utf-8")
        return
    data = file.model_dump(mode="json", exclude_defaults=True)
    text = yaml.dump(data, Dumper=_Dumper, allow_unicode=True, sort_keys=False, width=120)
    path.write_text(text, "utf-8")


def _parse_yaml(data: bytes | str, source: str) -> Any:
    try:
        return yaml.load(data, Loader=_Loader)  # noqa: S506 - a safe loader, C or Python
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark
        where = "" if mark is None else f" at line {mark.line + 1}, column {mark.column + 1}"
        what = " ".join(part for part in (error.context, error.problem) if part)
        raise DirectoryError(f"{source}: not valid YAML{where}: {what}") from None
    except yaml.YAMLError as error:
        raise DirectoryError(f"{source}: not valid YAML: {error}") from None


def _refuse_broken_json(error: ValidationError, source: str) -> None:
    """One precise line for text that is not JSON, saying so when it stops mid-way."""
    for problem in error.errors(include_url=False):
        if problem["type"] != "json_invalid":
            continue
        message = str(problem["ctx"]["error"]) if "ctx" in problem else problem["msg"]
        cut = "EOF while parsing" in message
        hint = ": the file ends in the middle of its data, so it was cut short" if cut else ""
        raise DirectoryError(f"{source}: not valid JSON ({message}){hint}") from None


def _json_or_none(data: bytes | str) -> Any:
    try:
        return json.loads(data)
    except ValueError:
        return None
