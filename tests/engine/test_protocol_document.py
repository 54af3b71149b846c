"""``docs/protocol.md`` against what the engine really sends: a portal typed from the
document must not break on real traffic. The batch example's fields, the dialog's fields and
every event type are checked against a batch the engine delivers and its event models."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import orjson

from engine.events import EVENT_TYPES, DialogView
from tests.engine.conftest import HostKit
from tests.standins.portal import PortalStandIn

DOCUMENT = Path(__file__).parents[2] / "docs" / "protocol.md"


def json_examples() -> list[Any]:
    text = DOCUMENT.read_text(encoding="utf-8")
    return [orjson.loads(block) for block in re.findall(r"```json\n(.*?)```", text, re.S)]


def documented_batch() -> dict[str, Any]:
    (batch,) = [example for example in json_examples() if "batch_id" in example]
    assert isinstance(batch, dict)
    return batch


async def test_the_documented_batch_has_the_fields_the_engine_sends(
    kit: HostKit, portal: PortalStandIn
) -> None:
    host = await kit.host(kit.config(portal, linger_ms=0))
    await host.append([kit.record("42", 1)])
    await portal.wait_for_events(2)
    (sent,) = portal.batches

    documented = documented_batch()
    assert set(documented) == set(sent)
    (documented_event,) = documented["events"]
    for event in sent["events"]:
        assert set(documented_event) == set(event)
        assert isinstance(event["seq"], int) and isinstance(documented_event["seq"], int)
    assert type(documented["stream"]) is type(sent["stream"])  # an integer, not a name
    assert type(documented["sent_at"]) is type(sent["sent_at"])  # Unix seconds, a float


def test_the_document_names_every_dialog_field_and_event_type() -> None:
    text = DOCUMENT.read_text(encoding="utf-8")
    for name in DialogView.model_fields:
        assert f'"{name}"' in text, f"dialog field {name} is not in docs/protocol.md"
    for event_type, model in EVENT_TYPES.items():
        assert f"`{event_type}`" in text, f"{event_type} is not in docs/protocol.md"
        if event_type.startswith(("dialog.", "reply.", "customer.")):
            for field in model.model_fields:
                assert f'"{field}"' in text, f"{event_type}.{field} is not in docs/protocol.md"
