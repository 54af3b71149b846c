"""``docs/protocol.md`` against what the engine really sends: a portal typed from the
document must not break on real traffic. Every JSON example names what it shows and
validates as that; the batch example is the test vectors' batch; every event type and every
field of its data is described; and batches the engine delivers validate against the schema.
The checks are functions, run once on the real document and once on broken copies, so each
is seen to fail."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import orjson
import pytest
from pydantic import BaseModel, ValidationError

from engine.events import EVENT_TYPES, DialogOffered, DialogView
from engine.models import ReplyRequest
from engine.protocol.schema import events_schema
from tests.engine.conftest import HostKit, eventually
from tests.engine.protocol_kit import DOCUMENT, errors, published_vectors
from tests.standins.portal import PortalStandIn

API_BODIES: dict[str, type[BaseModel]] = {"ReplyRequest": ReplyRequest}
"""Examples of what a portal sends, checked by the model the engine reads them with."""

_JSON_BLOCK = re.compile(r"^```json([^\n]*)\n(.*?)^```", re.S | re.M)
_TAG = re.compile(r"\s+schema=(\w+)")


def json_examples(text: str) -> list[tuple[str | None, str]]:
    """Each ```json block as (what its ``schema=`` tag names, its text)."""
    examples = []
    for info, body in _JSON_BLOCK.findall(text):
        tag = _TAG.fullmatch(info)
        examples.append((tag.group(1) if tag else None, body))
    return examples


def example_problems(text: str) -> list[str]:
    """Why JSON examples of ``text`` are wrong: untagged, unknown tag, not JSON, invalid."""
    definitions = events_schema(closed=True)["$defs"]
    problems = []
    for number, (tag, body) in enumerate(json_examples(text), start=1):
        where = f"JSON example {number} ({tag})"
        if tag is None:
            problems.append(f"JSON example {number}: no schema=<definition> after ```json")
            continue
        try:
            value = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            problems.append(f"{where}: not JSON: {exc}")
            continue
        if tag in API_BODIES:
            try:
                API_BODIES[tag].model_validate(value)
            except ValidationError as exc:
                problems.append(f"{where}: {exc}")
        elif tag in definitions:
            problems.extend(f"{where}: {error}" for error in errors(value, tag))
        else:
            problems.append(f"{where}: no such definition in the schema or API_BODIES")
    return problems


def undescribed(text: str, event_types: Mapping[str, type[BaseModel]]) -> list[str]:
    """Event types, and fields of their data, that ``text`` does not name."""
    missing = [f"dialog field {f}" for f in DialogView.model_fields if f'"{f}"' not in text]
    for event_type, model in event_types.items():
        if f"`{event_type}`" not in text:
            missing.append(f"event type {event_type}")
        for field, info in model.model_fields.items():
            if info.exclude:  # kept by the engine, never in what the portal receives
                continue
            if f'"{field}"' not in text and f"`{field}`" not in text:
                missing.append(f"{event_type}: field {field}")
    return missing


def documented_batch(text: str) -> Any:
    (batch,) = [orjson.loads(body) for tag, body in json_examples(text) if tag == "Batch"]
    return batch


@pytest.fixture
def document() -> str:
    return DOCUMENT.read_text(encoding="utf-8")


# -- the document -------------------------------------------------------------------------


def test_every_json_example_validates_as_what_it_shows(document: str) -> None:
    assert len(json_examples(document)) >= 3
    assert example_problems(document) == []


def test_the_batch_example_is_the_vectors_batch(document: str) -> None:
    assert documented_batch(document) == published_vectors()["delivery"]["batch"]


def test_the_engine_key_example_is_the_vectors_document(document: str) -> None:
    (example,) = [body for tag, body in json_examples(document) if tag == "EngineKeyDocument"]
    assert orjson.loads(example) == published_vectors()["engine_key_document"]


def test_every_event_type_and_field_is_described(document: str) -> None:
    assert undescribed(document, EVENT_TYPES) == []


def test_the_document_names_the_published_files(document: str) -> None:
    for path in ("schema/openlines-events.schema.json", "protocol-vectors.json"):
        assert f"]({path})" in document, path
    assert "openlines protocol schema --write" in document
    assert "openlines protocol vectors --write" in document


# -- the checks fail on a drifted document -----------------------------------------------


@pytest.mark.parametrize(
    ("old", "new", "problem"),
    [
        ('"stream": 0', '"stream": "support"', "'support' is not of type 'integer'"),
        ('"sent_at": 1800000000.125', '"sent_at": "2027-01-15T08:00:00Z"', "not of type 'number'"),
        ('"attempt": 1,\n', "", "'attempt' is a required property"),
        ('"algorithm": "Ed25519"', '"algorithm": "RSA"', "'Ed25519' was expected"),
        ('"client_id": "op-17"', '"client": "op-17"', "Extra inputs are not permitted"),
        ("```json schema=Batch", "```json", "no schema=<definition>"),
        ("```json schema=Batch", "```json schema=Bath", "no such definition"),
    ],
    ids=["stream", "sent_at", "attempt", "algorithm", "reply", "untagged", "unknown"],
)
def test_a_drifted_example_is_reported(document: str, old: str, new: str, problem: str) -> None:
    assert old in document
    problems = example_problems(document.replace(old, new, 1))
    assert any(problem in found for found in problems), problems


def test_an_event_type_missing_from_the_document_is_reported(document: str) -> None:
    assert undescribed(document.replace("`dialog.answered`", "`dialog.answer`"), EVENT_TYPES) == [
        "event type dialog.answered"
    ]

    class OperatorJoined(BaseModel):
        operator_id: str
        joined_via: str

    registry = {**EVENT_TYPES, "operator.joined": OperatorJoined}
    assert undescribed(document, registry) == [
        "event type operator.joined",
        "operator.joined: field joined_via",
    ]


# -- real traffic -------------------------------------------------------------------------


async def test_batches_the_engine_delivers_validate_and_match_the_example(
    kit: HostKit, portal: PortalStandIn, document: str
) -> None:
    """A dialog's life through the real host (store, router, mailbox, sealing, HTTP): every
    batch the portal opens validates against the closed schema."""
    host = await kit.host(kit.config(portal, linger_ms=0))
    router = await host.router("p1")
    await router.set_operator("op-a", "online", True)
    await host.append([kit.record("42", 1, text="Привет! 👋")])
    (offered,) = await portal.wait_for_events(1, "dialog.offered")
    dialog_id = offered["dialog"]["id"]
    await router.accept(dialog_id, "op-a")
    await router.finish(dialog_id, "op-a")
    await portal.wait_for_events(1, "dialog.closed")
    await eventually(lambda: len(portal.messages()) == 1, what="the message")

    types = [event["type"] for event in portal.events]
    assert set(types) >= {"dialog.queued", "dialog.offered", "message.received"}
    assert {"dialog.assigned", "dialog.closed"} <= set(types)
    assert DialogOffered.model_validate(offered["data"]).operator_ids == ("op-a",)
    for batch in portal.batches:
        assert errors(batch) == []
    documented = documented_batch(document)
    for batch in portal.batches:
        assert set(batch) == set(documented)
        for event in batch["events"]:
            assert set(event) == set(documented["events"][0])
    (message,) = portal.messages()
    assert message["data"]["content"]["text"] == "Привет! 👋"
