"""The published JSON Schema of the envelope header, generated from the pydantic model.

Regenerate the committed copy with ``python -m backbone.envelope.schema``; a test fails
while ``schemas/envelope/envelope-header.schema.json`` differs from what this produces.
"""

from __future__ import annotations

import json
from pathlib import Path

from backbone.envelope.model import EnvelopeHeader

__all__ = ["SCHEMA_PATH", "header_json_schema"]

SCHEMA_PATH = (
    Path(__file__).resolve().parents[2] / "schemas" / "envelope" / "envelope-header.schema.json"
)


def header_json_schema() -> str:
    schema = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "urn:vdx:envelope:header:1",
        **EnvelopeHeader.model_json_schema(),
    }
    return json.dumps(schema, indent=2, ensure_ascii=False) + "\n"


if __name__ == "__main__":
    SCHEMA_PATH.write_text(header_json_schema(), encoding="utf-8")
