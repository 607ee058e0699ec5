"""The published JSON Schemas of the envelope headers, generated from the pydantic models.

Regenerate the committed copies with ``python -m backbone.envelope.schema``; a test fails
while ``schemas/envelope/envelope-header.schema.json`` or
``schemas/envelope/chunked-header.schema.json`` differs from what this produces.
"""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel

from backbone.envelope.chunked import ChunkedHeader
from backbone.envelope.model import EnvelopeHeader

__all__ = [
    "CHUNKED_SCHEMA_PATH",
    "SCHEMA_PATH",
    "chunked_header_json_schema",
    "header_json_schema",
]

_SCHEMAS = Path(__file__).resolve().parents[2] / "schemas" / "envelope"
SCHEMA_PATH = _SCHEMAS / "envelope-header.schema.json"
CHUNKED_SCHEMA_PATH = _SCHEMAS / "chunked-header.schema.json"


def _schema(model: type[BaseModel], urn: str) -> str:
    schema = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": urn,
        **model.model_json_schema(),
    }
    return json.dumps(schema, indent=2, ensure_ascii=False) + "\n"


def header_json_schema() -> str:
    return _schema(EnvelopeHeader, "urn:vdx:envelope:header:1")


def chunked_header_json_schema() -> str:
    """The header message of a document in chunks (docs/large-documents.md)."""
    return _schema(ChunkedHeader, "urn:vdx:envelope:chunked-header:1")


if __name__ == "__main__":
    SCHEMA_PATH.write_text(header_json_schema(), encoding="utf-8")
    CHUNKED_SCHEMA_PATH.write_text(chunked_header_json_schema(), encoding="utf-8")
