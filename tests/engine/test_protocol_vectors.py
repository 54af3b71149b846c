"""The published test vectors: what the code generates, opened and verified by the engine's
own code, their batch valid against the schema and their message what the Telegram channel
makes of the update. (test_portal_side.py runs the portal's side against them too.)"""

from __future__ import annotations

import base64
import copy
import json
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from channels.base import RawRequest
from channels.registry import build_channel
from engine.api_models import ReplyBody
from engine.errors import AuthError
from engine.portal_side import PortalSide
from engine.protocol.sample_batch import (
    RECEIVED_AT_S,
    ROUTE,
    TELEGRAM_UPDATE,
    customer_message,
    sample_plaintext,
)
from engine.protocol.vectors import render_vectors
from engine.security.keys import ed25519_public_from_b64, raw_key_from_b64
from engine.security.sealing import (
    ENC_BYTES,
    batch_info,
    open_batch,
    seal_and_sign,
    x25519_private_from_b64,
    x25519_public_to_b64,
)
from engine.security.webhook_signature import verify_ed25519
from tests.engine.protocol_kit import PUBLISHED_VECTORS, errors, published_vectors

REGENERATE = "run `openlines protocol vectors --write` and commit the vectors"


def opened_delivery(vectors: dict[str, Any]) -> bytes:
    """The valid delivery verified and opened with the engine's code, as a portal must."""
    keys, delivery = vectors["keys"], vectors["delivery"]
    body = base64.b64decode(delivery["body_base64"])
    engine_public = ed25519_public_from_b64(keys["engine_public_key"])
    verify_ed25519(engine_public, delivery["headers"], body, now_s=delivery["now_s"])
    portal_key = x25519_private_from_b64(keys["portal_private_key"])
    return open_batch(portal_key, keys["portal_id"], delivery["headers"]["webhook-id"], body)


def test_the_published_vectors_are_what_the_code_generates() -> None:
    assert PUBLISHED_VECTORS.read_text(encoding="utf-8") == render_vectors(), REGENERATE


def test_two_runs_give_the_same_bytes() -> None:
    assert render_vectors() == render_vectors()


def test_the_delivery_verifies_and_opens_to_its_plaintext_and_batch() -> None:
    vectors = published_vectors()
    keys, hpke, delivery = vectors["keys"], vectors["hpke"], vectors["delivery"]
    portal_key = x25519_private_from_b64(keys["portal_private_key"])
    assert x25519_public_to_b64(portal_key.public_key()) == keys["portal_public_key"]
    assert (hpke["kem_id"], hpke["kdf_id"], hpke["aead_id"], hpke["mode"]) == (0x20, 1, 2, 0)
    batch_id = delivery["headers"]["webhook-id"]
    assert bytes.fromhex(hpke["info_hex"]) == batch_info(keys["portal_id"], batch_id)
    assert base64.b64decode(delivery["body_base64"])[:ENC_BYTES].hex() == hpke["enc_hex"]
    plaintext = opened_delivery(vectors)
    assert plaintext.decode() == delivery["plaintext"]
    assert json.loads(plaintext) == delivery["batch"]
    assert plaintext == sample_plaintext()


@pytest.mark.parametrize(
    "change",
    [
        lambda v: v["delivery"].update(body_base64=v["delivery_must_fail"][4]["body_base64"]),
        lambda v: v["delivery"]["headers"].update({"webhook-timestamp": "1800000001"}),
        lambda v: v["keys"].update(portal_id="portal_other"),
        lambda v: v["keys"].update(engine_public_key=v["keys"]["portal_public_key"]),
    ],
    ids=["body", "timestamp", "portal", "engine-key"],
)
def test_a_vector_changed_by_hand_no_longer_opens(change: Any) -> None:
    vectors = copy.deepcopy(published_vectors())
    change(vectors)
    with pytest.raises(AuthError):
        opened_delivery(vectors)


def test_the_engine_seal_of_the_vector_batch_opens_with_the_vector_keys() -> None:
    """The engine's own sealing (a fresh ephemeral key) makes the same kind of delivery."""
    vectors = published_vectors()
    keys, delivery = vectors["keys"], vectors["delivery"]
    portal_key = x25519_private_from_b64(keys["portal_private_key"])
    signing_key = Ed25519PrivateKey.from_private_bytes(
        raw_key_from_b64(keys["engine_private_key"], "engine private key")
    )
    headers, body = seal_and_sign(
        keys["portal_id"],
        delivery["headers"]["webhook-id"],
        delivery["plaintext"].encode(),
        portal_key.public_key(),
        signing_key,
        delivery["now_s"],
    )
    signature = "webhook-signature"
    assert {k: v for k, v in headers.items() if k != signature} == {
        k: v for k, v in delivery["headers"].items() if k != signature
    }
    assert len(body) == len(base64.b64decode(delivery["body_base64"]))
    side = PortalSide.from_b64(
        keys["portal_id"],
        keys["portal_private_key"],
        keys["engine_public_key"],
        keys["license_key"],
    )
    assert side.open_delivery(headers, body, now_s=delivery["now_s"]) == delivery["batch"]


def test_the_batch_validates_against_the_schema() -> None:
    vectors = published_vectors()
    assert errors(vectors["delivery"]["batch"]) == []
    assert errors(vectors["delivery"]["headers"], "DeliveryHeaders") == []
    assert errors(vectors["engine_key_document"], "EngineKeyDocument") == []
    for case in vectors["delivery_must_fail"]:
        assert errors(json.loads(case["plaintext"])) == [], case["case"]


def test_the_batch_is_a_new_dialog_offered_at_once_then_its_message() -> None:
    events = published_vectors()["delivery"]["batch"]["events"]
    assert [(e["type"], e["seq"], e["dialog"]["state"]) for e in events] == [
        ("dialog.queued", 1, "waiting"),
        ("dialog.offered", 2, "offered"),
        ("message.received", 3, "offered"),
    ]
    assert len({e["dialog"]["id"] for e in events}) == 1
    assert events[2]["data"]["content"]["text"] == "Здравствуйте! Где мой заказ? 📦"


def test_the_message_is_what_the_telegram_channel_makes_of_the_update() -> None:
    channel = build_channel(ROUTE, {"bot_token": "1:x", "secret_token": "s"})
    request = RawRequest(
        method="POST",
        path=f"/hooks/telegram/{ROUTE.connector_id}",
        headers={"content-type": "application/json"},
        query={},
        body=json.dumps(TELEGRAM_UPDATE).encode(),
    )
    (parsed,) = channel.parse(request, RECEIVED_AT_S).messages
    assert parsed == customer_message()


def test_the_api_request_is_a_real_reply_call() -> None:
    request = published_vectors()["api_request"]
    dialog_id = published_vectors()["delivery"]["batch"]["events"][0]["dialog"]["id"]
    assert (request["method"], request["path"]) == (
        "POST",
        f"/api/v1/dialogs/{dialog_id}/messages",
    )
    ReplyBody.model_validate_json(request["body"])  # what the API parses, extra refused
