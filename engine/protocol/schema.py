"""The JSON Schema (draft 2020-12) of what the engine sends portals, made from its models.

One document (docs/schema/openlines-events.schema.json): its root is the batch a portal reads
after opening a sealed body; ``$defs`` hold every event type, ``DialogView``, each type's
``data`` model, the delivery request's headers and the engine key document. The event
types come from the registry ``engine.events.EVENT_TYPES``, so a type registered there is
in the schema without a change here: each becomes a variant of the event envelope with
``type`` fixed to its name and ``data`` its model, and the variants form a ``oneOf`` with
an OpenAPI-style ``discriminator`` on ``type`` (validators of plain JSON Schema ignore that
keyword; code generators use it).

Two readings of the same models (docs/protocol.md, "Schema"):

* published, ``closed=False``: objects stay open to fields they do not name, because the
  protocol promises new fields may be added and a portal must ignore them;
* ``closed=True``: every object of ours refuses unknown fields (``additionalProperties:
  false``, from the models' ``extra="forbid"``), so the engine's tests catch a field the
  code sends and the models do not describe.

Every field is required in both: the engine writes every field of a model, defaults
included (``model_dump_json``, ``DialogState.view_json``, ``batch_plaintext``).
"""

from __future__ import annotations

import functools
import json
import operator
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, create_model
from pydantic.json_schema import GenerateJsonSchema, models_json_schema
from pydantic_core import core_schema

from engine.api_models import EngineKeyDocument
from engine.delivery.envelope import DeliveredBatch, DeliveredEvent, DeliveryHeaders
from engine.events import EVENT_TYPES

SCHEMA_PATH = Path("docs/schema/openlines-events.schema.json")
"""Where the schema is published, from the repository's root."""

DRAFT = "https://json-schema.org/draft/2020-12/schema"
ROOT = "Batch"
EventTypes = Mapping[str, type[BaseModel]]


class _EveryFieldWritten(GenerateJsonSchema):
    """Marks every field required: what the engine writes always has all of them."""

    def field_is_required(
        self,
        field: core_schema.ModelField | core_schema.DataclassField | core_schema.TypedDictField,
        total: bool,
    ) -> bool:
        return True


def model_name(event_type: str) -> str:
    """``dialog.offer_withdrawn`` → ``DialogOfferWithdrawnEvent``: the variant's name."""
    words = event_type.replace(".", "_").split("_")
    return "".join(word.capitalize() for word in words) + "Event"


def event_variant(event_type: str, data_model: type[BaseModel]) -> type[DeliveredEvent]:
    """The envelope of one event type: ``type`` fixed to it, ``data`` its model."""
    fixed_type: Any = Literal[event_type]  # a Literal of a name known at run time only
    variant: type[DeliveredEvent] = create_model(
        model_name(event_type),
        __base__=DeliveredEvent,
        __doc__=f"A {event_type} event; data is {data_model.__name__}.",
        type=(fixed_type, Field(description="The event type.")),
        data=(data_model, Field(description=f"The fields of {event_type}.")),
    )
    return variant


def batch_model(event_types: EventTypes) -> type[DeliveredBatch]:
    """The batch whose events are any of ``event_types``, told apart by ``type``."""
    variants = [event_variant(name, model) for name, model in event_types.items()]
    event = functools.reduce(operator.or_, variants)
    model: type[DeliveredBatch] = create_model(
        ROOT,
        __base__=DeliveredBatch,
        __doc__=DeliveredBatch.__doc__,
        events=(
            tuple[Annotated[event, Field(discriminator="type")], ...],  # type: ignore[valid-type]
            Field(description="The events in delivery order."),
        ),
    )
    return model


def _tidy(node: Any, closed: bool) -> Any:
    """``node`` without per-property titles (pydantic derives them from the field names; they
    only get in code generators' way) and, unless ``closed``, without
    ``additionalProperties: false``."""
    if isinstance(node, list):
        return [_tidy(item, closed) for item in node]
    if not isinstance(node, dict):
        return node
    tidy = {
        key: _tidy(value, closed)
        for key, value in node.items()
        if closed or not (key == "additionalProperties" and value is False)
    }
    if isinstance(tidy.get("properties"), dict):
        tidy["properties"] = {
            name: {key: value for key, value in prop.items() if key != "title"}
            for name, prop in tidy["properties"].items()
        }
    return tidy


def events_schema(event_types: EventTypes = EVENT_TYPES, *, closed: bool = False) -> dict[str, Any]:
    """The schema document; ``closed`` refuses fields the models do not name (tests)."""
    models = [(batch_model(event_types), "serialization"), (DeliveryHeaders, "serialization")]
    models.append((EngineKeyDocument, "serialization"))
    _, definitions = models_json_schema(
        models,  # type: ignore[arg-type]
        by_alias=True,
        ref_template="#/$defs/{model}",
        schema_generator=_EveryFieldWritten,
    )
    defs = definitions["$defs"]
    return {
        "$schema": DRAFT,
        "title": "Open Lines: what the engine delivers to a portal",
        "description": (
            "The root is the batch a portal reads after opening a sealed body (docs/protocol.md)."
            " $defs also hold the delivery request's headers (DeliveryHeaders) and the body"
            " of GET /api/v1/engine-key (EngineKeyDocument). Ignore fields you do not know."
        ),
        "$ref": f"#/$defs/{ROOT}",
        "$defs": {name: _tidy(defs[name], closed) for name in sorted(defs)},
    }


def render_schema(event_types: EventTypes = EVENT_TYPES) -> str:
    """The published schema as text: indented, keys in pydantic's stable order."""
    return json.dumps(events_schema(event_types), indent=2, ensure_ascii=False) + "\n"
