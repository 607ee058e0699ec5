"""The configuration tables in the docs list every key the code reads, so they stay true."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic import BaseModel

from adapters.config import AdapterConfig, ServedAgency
from backbone.replica import Settings

ROOT = Path(__file__).resolve().parents[1]


def documented_keys(text: str) -> set[str]:
    # First column of a table row: `key`, or several, or `key` (alias).
    keys: set[str] = set()
    for line in text.splitlines():
        if line.startswith("| `"):
            first = line.split("|")[1]
            keys.update(re.findall(r"`([a-z_]+)`", first))
    return keys


@pytest.mark.parametrize(
    ("model", "doc"),
    [(Settings, "README.md"), (AdapterConfig, "docs/adapter.md")],
)
def test_every_configuration_key_is_in_its_table(model: type[BaseModel], doc: str) -> None:
    keys = documented_keys((ROOT / doc).read_text(encoding="utf-8"))
    missing = sorted(set(model.model_fields) - keys)
    assert missing == [], f"{doc} has no table row for {missing}"


def test_every_served_agency_key_is_named_in_the_adapter_docs() -> None:
    text = (ROOT / "docs" / "adapter.md").read_text(encoding="utf-8")
    row = next(line for line in text.splitlines() if line.startswith("| `agencies` |"))
    assert all(f"`{key}`" in row for key in ServedAgency.model_fields)
