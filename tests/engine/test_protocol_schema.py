"""The published JSON Schema: equal to what the models generate, driven by the registry of
event types, telling events apart by ``type``, open for portals and closed for our tests."""

from __future__ import annotations

import base64
import copy
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from jsonschema import Draft202012Validator
from pydantic import Field

from engine.api_models import EngineKeyDocument
from engine.events import EVENT_TYPES
from engine.models import Frozen
from engine.protocol.schema import events_schema, model_name, render_schema
from engine.security.sealing import seal_and_sign
from tests.engine.protocol_kit import PUBLISHED_SCHEMA, errors, published_vectors

REGENERATE = "run `openlines protocol schema --write` and commit the schema"


class OperatorJoined(Frozen):
    """A type another branch might register: the schema must show it with no other change."""

    operator_id: str = Field(description="Who joined.")


def vector_batch() -> dict[str, Any]:
    batch: dict[str, Any] = published_vectors()["delivery"]["batch"]
    return copy.deepcopy(batch)


def test_the_published_schema_is_what_the_models_generate() -> None:
    assert PUBLISHED_SCHEMA.read_text(encoding="utf-8") == render_schema(), REGENERATE


@pytest.mark.parametrize("closed", [False, True], ids=["published", "closed"])
def test_the_schema_is_a_valid_draft_2020_12_schema(closed: bool) -> None:
    schema = events_schema(closed=closed)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    Draft202012Validator.check_schema(schema)


def test_every_registered_type_is_a_variant_of_the_event() -> None:
    schema = events_schema()
    items = schema["$defs"]["Batch"]["properties"]["events"]["items"]
    mapping = items["discriminator"]["mapping"]
    assert set(mapping) == set(EVENT_TYPES)
    assert len(items["oneOf"]) == len(EVENT_TYPES)
    for event_type, data_model in EVENT_TYPES.items():
        assert mapping[event_type] == f"#/$defs/{model_name(event_type)}"
        variant = schema["$defs"][model_name(event_type)]
        assert variant["properties"]["type"]["const"] == event_type
        assert variant["properties"]["data"]["$ref"] == f"#/$defs/{data_model.__name__}"
        assert set(variant["required"]) == {
            "id", "seq", "type", "best_effort", "occurred_at", "dialog", "data"
        }  # fmt: skip


def test_a_type_registered_later_is_in_the_schema_and_the_published_one_is_then_stale() -> None:
    registry = {**EVENT_TYPES, "operator.joined": OperatorJoined}
    schema = events_schema(registry)
    mapping = schema["$defs"]["Batch"]["properties"]["events"]["items"]["discriminator"]
    assert mapping["mapping"]["operator.joined"] == "#/$defs/OperatorJoinedEvent"
    assert schema["$defs"]["OperatorJoined"]["required"] == ["operator_id"]
    # The check of the published file fails until it is regenerated.
    assert PUBLISHED_SCHEMA.read_text(encoding="utf-8") != render_schema(registry)


def test_model_names_follow_the_type() -> None:
    assert model_name("dialog.offer_withdrawn") == "DialogOfferWithdrawnEvent"
    assert model_name("message.received") == "MessageReceivedEvent"


def test_every_field_is_required_defaults_included() -> None:
    """The engine writes every field; a portal can rely on each being there (maybe null)."""
    defs = events_schema()["$defs"]
    for name in ("InboundMessage", "DialogQueued", "DialogView", "Customer", "FileRef"):
        assert set(defs[name]["required"]) == set(defs[name]["properties"]), name


def test_the_vector_batch_validates() -> None:
    assert errors(vector_batch()) == []


def test_data_is_checked_by_the_event_type() -> None:
    batch = vector_batch()
    queued, _, message = batch["events"]
    queued["data"] = message["data"]  # a message's data under dialog.queued
    assert errors(batch), "a dialog.queued event with a message's data validated"
    batch = vector_batch()
    batch["events"][2]["type"] = "message.unknown"
    assert errors(batch), "an unknown event type validated"


@pytest.mark.parametrize(
    ("where", "change"),
    [
        ("stream as a name", lambda b: b.update(stream="support")),
        ("attempt missing", lambda b: b.pop("attempt")),
        ("sent_at as ISO text", lambda b: b.update(sent_at="2027-01-15T08:00:00Z")),
        ("occurred_at as ISO text", lambda b: b["events"][2].update(occurred_at="2027-01-15")),
        ("seq zero", lambda b: b["events"][0].update(seq=0)),
        ("dialog with only its id", lambda b: b["events"][2].update(dialog={"id": "dlg_1"})),
        ("dialog state unknown", lambda b: b["events"][1]["dialog"].update(state="open")),
        ("data not the universal message", lambda b: b["events"][2].update(data={"text": "Hi"})),
        ("content kind unknown", lambda b: b["events"][2]["data"]["content"].update(kind="poll")),
        ("queued reason unknown", lambda b: b["events"][0]["data"].update(reason="later")),
    ],
)
def test_what_the_old_document_showed_does_not_validate(where: str, change: Any) -> None:
    """The drifted example of issue 8, one mistake at a time: each is caught."""
    batch = vector_batch()
    change(batch)
    assert errors(batch, closed=False), where


@pytest.mark.parametrize(
    "change",
    [
        lambda b: b.update(priority="high"),
        lambda b: b["events"][0].update(trace_id="t-1"),
        lambda b: b["events"][0]["dialog"].update(tags=["vip"]),
        lambda b: b["events"][2]["data"]["customer"].update(avatar_url="https://a.example/a.png"),
    ],
    ids=["batch", "event", "dialog", "data"],
)
def test_the_published_schema_lets_new_fields_through_and_the_closed_one_does_not(
    change: Any,
) -> None:
    batch = vector_batch()
    change(batch)
    assert errors(batch, closed=False) == []
    assert errors(batch)


def test_raw_and_extras_stay_free_form_in_the_closed_schema() -> None:
    batch = vector_batch()
    batch["events"][2]["data"]["raw"]["anything"] = {"at": "all"}
    batch["events"][2]["data"]["extras"]["topic"] = "orders"
    assert errors(batch) == []
    batch["events"][2]["data"]["extras"]["count"] = 3  # extras are strings
    assert errors(batch)


def test_the_engine_delivery_headers_validate() -> None:
    headers, _ = seal_and_sign(
        "portal_a",
        "bat_1",
        b"{}",
        X25519PrivateKey.generate().public_key(),
        Ed25519PrivateKey.generate(),
        1_800_000_000,
    )
    assert errors(headers, "DeliveryHeaders") == []
    assert errors(published_vectors()["delivery"]["headers"], "DeliveryHeaders") == []
    hmac_signed = {**headers, "webhook-signature": "v1," + base64.b64encode(bytes(32)).decode()}
    assert errors(hmac_signed, "DeliveryHeaders")


def test_the_engine_key_document_validates() -> None:
    document = EngineKeyDocument.for_key(Ed25519PrivateKey.generate().public_key())
    assert errors(document.model_dump(), "EngineKeyDocument") == []
    assert errors({"algorithm": "RSA", "public_key": document.public_key}, "EngineKeyDocument")
