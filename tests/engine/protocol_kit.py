"""What the protocol tests share: the published files and validators of the schema.

Tests validate with every object closed (``events_schema(closed=True)``): the published
schema lets unknown fields through for portals' sake, which would let a field the engine
sends and its models do not describe through too (docs/protocol.md, "Schema").
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator

from engine.protocol.schema import SCHEMA_PATH, events_schema
from engine.protocol.vectors import VECTORS_PATH

ROOT = Path(__file__).resolve().parents[2]
PUBLISHED_SCHEMA = ROOT / SCHEMA_PATH
PUBLISHED_VECTORS = ROOT / VECTORS_PATH
DOCUMENT = ROOT / "docs" / "protocol.md"


def validator(definition: str | None = None, *, closed: bool = True) -> Draft202012Validator:
    """A validator of the schema's root, or of one of its ``$defs``."""
    schema = _schema(closed)
    if definition is not None:
        schema = {**schema, "$ref": f"#/$defs/{definition}"}
    return Draft202012Validator(schema)


@functools.cache
def _schema(closed: bool) -> dict[str, Any]:
    return events_schema(closed=closed)


def errors(instance: object, definition: str | None = None, *, closed: bool = True) -> list[str]:
    """Every way ``instance`` fails the schema, as ``path: message`` lines."""
    found = validator(definition, closed=closed).iter_errors(instance)
    return sorted(f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in found)


def published_vectors() -> dict[str, Any]:
    vectors: dict[str, Any] = json.loads(PUBLISHED_VECTORS.read_text(encoding="utf-8"))
    return vectors
