"""A configuration that cannot be read, said in one line: the file or key, and the fix.

Every process reads its settings through :meth:`~backbone.broker.settings.FileSettings.load`;
this turns what goes wrong there (a missing file, broken YAML, pydantic's validation errors)
into a :class:`~backbone.errors.ConfigurationError` with its own reason, never a traceback.
Values are never echoed: a wrong key may be a password.
"""

from __future__ import annotations

import difflib
import os
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError
from pydantic_core import ErrorDetails

from backbone.errors import ConfigurationError, Reason

__all__ = ["read_config_file", "settings_problem"]

ENV_PREFIX = "VDX_"
_ORDER = {"extra_forbidden": 0, "missing": 1}


def read_config_file(path: Path) -> dict[str, Any]:
    """The mapping of keys in a YAML configuration file."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise _unreadable(path, "does not exist") from None
    except IsADirectoryError:
        raise _unreadable(path, "is a directory, not a file") from None
    except PermissionError:
        raise _unreadable(path, "cannot be read by this user (permissions)") from None
    except UnicodeDecodeError as error:
        raise _unreadable(path, f"is not UTF-8 text (byte {error.start})") from None
    try:
        values = yaml.safe_load(text)
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigurationError(
            f"configuration file {path} is not valid YAML{where}: {error.problem}; fix the "
            "YAML there (indentation, an unclosed bracket or quote)",
            reason=Reason.CONFIG_NOT_YAML,
        ) from None
    except yaml.YAMLError as error:
        raise ConfigurationError(
            f"configuration file {path} is not valid YAML: {error}",
            reason=Reason.CONFIG_NOT_YAML,
        ) from None
    if values is None:
        return {}
    if not isinstance(values, dict):
        raise ConfigurationError(
            f"configuration file {path} holds a {type(values).__name__}; it must be a mapping "
            "of keys (`key: value` lines)",
            reason=Reason.CONFIG_NOT_YAML,
        )
    return values


def settings_problem(
    error: ValidationError, known: list[str], path: Path | None
) -> ConfigurationError:
    """The first problem of ``error`` as one line naming the key, where it was set and the fix
    (``known``: the settings' keys, for spelling suggestions)."""
    problems = error.errors(include_url=False, include_input=False)
    # A misspelt key is also a missing one: name the misspelling first, it is the cause.
    first = min(problems, key=lambda problem: _ORDER.get(problem["type"], len(_ORDER)))
    more = f" (and {len(problems) - 1} more problem(s))" if len(problems) > 1 else ""
    key = ".".join(str(part) for part in first["loc"])
    top = str(first["loc"][0]) if first["loc"] else ""
    source = _source(top, path)
    if first["type"] == "extra_forbidden":
        close = difflib.get_close_matches(top, known, n=1)
        fix = f"did you mean `{close[0]}`?" if close else "remove it"
        return ConfigurationError(
            f"unknown key `{key}` {source}: {fix}{more}", reason=Reason.CONFIG_KEY_UNKNOWN
        )
    if first["type"] == "missing":
        where = f"in {path} or " if path else ""
        return ConfigurationError(
            f"missing key `{key}`: set it {where}as {ENV_PREFIX}{top.upper()}{more}",
            reason=Reason.CONFIG_KEY_MISSING,
        )
    return ConfigurationError(
        f"{_subject(key, source)}: {_message(first)}{more}", reason=Reason.CONFIG_VALUE_INVALID
    )


def _unreadable(path: Path, why: str) -> ConfigurationError:
    return ConfigurationError(
        f"configuration file {path} {why}; pass the right path with --config or VDX_CONFIG",
        reason=Reason.CONFIG_FILE_UNREADABLE,
    )


def _source(key: str, path: Path | None) -> str:
    variable = f"{ENV_PREFIX}{key.upper()}"
    if key and variable in os.environ:
        return f"(from the environment variable {variable})"
    return f"in {path}" if path else "(no configuration file given)"


def _subject(key: str, source: str) -> str:
    return f"key `{key}` {source}" if key else f"the configuration {source}"


def _message(problem: ErrorDetails) -> str:
    # pydantic prefixes errors raised by validators with "Value error, ".
    return str(problem["msg"]).removeprefix("Value error, ")
