"""The public API is small and explicit: every package says what it exports in ``__all__``."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import pytest

import adapters
import backbone

# Modules whose API is checked besides every package (found below, never listed by hand).
MODULES = [
    "backbone",
    "backbone.clock",
    "backbone.errors",
    "backbone.organ",
    "backbone.tiers",
    "backbone.edxml",
    "backbone.directory",
    "backbone.envelope",
    "backbone.pki",
    "backbone.store.abc",
    "backbone.store",
    "backbone.broker.settings",
    "backbone.router.settings",
    "backbone.router.abc",
    "backbone.tracking.settings",
    "backbone.replica",
    "backbone.wire",
    "backbone.tracking",
    "adapters",
    "adapters.client",
    "adapters.connection",
    "adapters.opening",
    "adapters.receiving",
    "adapters.redeliveries",
    "adapters.sending",
    "adapters.statuses",
    "adapters.dropfolder",
]


def _packages() -> list[str]:
    """Every package of the project, so a new one cannot escape these checks."""
    found = {backbone.__name__, adapters.__name__}
    for root in (backbone, adapters):
        for info in pkgutil.walk_packages(root.__path__, f"{root.__name__}."):
            if info.ispkg:
                found.add(info.name)
    return sorted(found)


PACKAGES = sorted({*MODULES, *_packages()})


def test_every_package_says_what_it_exports() -> None:
    silent = [name for name in _packages() if "__all__" not in vars(importlib.import_module(name))]
    assert silent == []


@pytest.mark.parametrize("name", PACKAGES)
def test_every_name_in_all_resolves(name: str) -> None:
    # ruff (RUF022) keeps each __all__ sorted; this proves each name is really there.
    module = importlib.import_module(name)
    for symbol in module.__all__:
        assert hasattr(module, symbol), f"{name}.__all__ names missing {symbol}"


@pytest.mark.parametrize("name", PACKAGES)
def test_every_public_class_and_function_is_exported(name: str) -> None:
    module = importlib.import_module(name)
    public = {
        symbol
        for symbol, value in vars(module).items()
        if symbol.isidentifier()  # pydantic registers parametrised generics by their repr
        and not symbol.startswith("_")
        and (inspect.isclass(value) or inspect.isfunction(value))
        and getattr(value, "__module__", "").startswith(name)
    }
    missing = public - set(module.__all__)
    assert not missing, f"{name} defines but does not export {missing}"


def test_every_error_in_the_tree_carries_a_stable_reason() -> None:
    errors = importlib.import_module("backbone.errors")
    for symbol in errors.__all__:
        value = getattr(errors, symbol)
        if inspect.isclass(value) and issubclass(value, errors.BackboneError):
            assert isinstance(value.reason, errors.Reason)
            assert symbol in errors.__doc__, f"{symbol} missing from the tree in the docstring"
