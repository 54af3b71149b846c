"""The portal's side, tested against the engine's side (``seal_and_sign``) and the vectors."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from engine.errors import AuthError, ConfigError
from engine.portal_side import PortalSide
from engine.security.keys import ed25519_public_to_b64
from engine.security.sealing import seal_and_sign, seal_batch, x25519_private_to_b64
from engine.security.webhook_signature import (
    api_request_payload,
    ed25519_signature,
    hmac_signature,
    verify_hmac,
)

VECTORS_PATH = Path(__file__).resolve().parents[2] / "docs" / "protocol-vectors.json"
NOW_S = 1_800_000_000
PORTAL = "portal_a"
BATCH = "bat_1"
LICENSE = "lic_secret"
ENGINE_KEY = Ed25519PrivateKey.generate()
PORTAL_KEY = X25519PrivateKey.generate()


def _batch(portal_id: str = PORTAL, batch_id: str = BATCH) -> bytes:
    return json.dumps({"portal_id": portal_id, "batch_id": batch_id, "events": []}).encode()


def _portal(**overrides: object) -> PortalSide:
    arguments: dict[str, object] = {
        "portal_id": PORTAL,
        "private_key": PORTAL_KEY,
        "engine_public_key": ENGINE_KEY.public_key(),
        "license_key": LICENSE,
    }
    arguments.update(overrides)
    return PortalSide(**arguments)  # type: ignore[arg-type]


def _delivery(plaintext: bytes | None = None) -> tuple[dict[str, str], bytes]:
    return seal_and_sign(
        PORTAL,
        BATCH,
        _batch() if plaintext is None else plaintext,
        PORTAL_KEY.public_key(),
        ENGINE_KEY,
        NOW_S,
    )


# --- deliveries ------------------------------------------------------------------------------


def test_delivery_opens_to_the_batch() -> None:
    headers, body = _delivery()
    assert _portal().open_delivery(headers, body, now_s=NOW_S) == {
        "portal_id": PORTAL,
        "batch_id": BATCH,
        "events": [],
    }


def test_header_names_are_case_insensitive() -> None:
    headers, body = _delivery()
    title_case = {name.title(): value for name, value in headers.items()}
    assert _portal().open_delivery(title_case, body, now_s=NOW_S)["batch_id"] == BATCH


def test_from_b64_builds_the_same_portal() -> None:
    headers, body = _delivery()
    portal = PortalSide.from_b64(
        PORTAL,
        x25519_private_to_b64(PORTAL_KEY),
        ed25519_public_to_b64(ENGINE_KEY.public_key()),
        LICENSE,
    )
    assert portal.open_delivery(headers, body, now_s=NOW_S)["portal_id"] == PORTAL
    with pytest.raises(ConfigError, match="X25519 private key"):
        PortalSide.from_b64(PORTAL, "short", ed25519_public_to_b64(ENGINE_KEY.public_key()), "l")


def test_secrets_stay_out_of_repr() -> None:
    text = repr(_portal())
    assert LICENSE not in text and "private_key" not in text


@pytest.mark.parametrize("offset_s", [-300, 0, 300])
def test_timestamps_inside_tolerance_are_accepted(offset_s: int) -> None:
    headers, body = _delivery()
    assert _portal().open_delivery(headers, body, now_s=NOW_S + offset_s)["batch_id"] == BATCH


@pytest.mark.parametrize("offset_s", [-301, 301, 86_400])
def test_timestamps_outside_tolerance_are_refused(offset_s: int) -> None:
    headers, body = _delivery()
    with pytest.raises(AuthError, match="outside the 300 s tolerance"):
        _portal().open_delivery(headers, body, now_s=NOW_S + offset_s)


def test_tolerance_can_be_narrowed() -> None:
    headers, body = _delivery()
    with pytest.raises(AuthError, match="outside the 60 s tolerance"):
        _portal(tolerance_s=60).open_delivery(headers, body, now_s=NOW_S + 61)


def test_signature_by_another_engine_key_is_refused() -> None:
    headers, body = _delivery()
    with pytest.raises(AuthError, match="no valid v1a signature"):
        _portal(engine_public_key=Ed25519PrivateKey.generate().public_key()).open_delivery(
            headers, body, now_s=NOW_S
        )


def test_tampered_body_is_refused_before_opening() -> None:
    headers, body = _delivery()
    tampered = bytes([body[0] ^ 1]) + body[1:]
    with pytest.raises(AuthError, match="no valid v1a signature"):
        _portal().open_delivery(headers, tampered, now_s=NOW_S)


@pytest.mark.parametrize(
    ("header", "value"),
    [("webhook-id", "bat_2"), ("webhook-timestamp", str(NOW_S + 1))],
)
def test_changed_signed_header_is_refused(header: str, value: str) -> None:
    headers, body = _delivery()
    with pytest.raises(AuthError, match="no valid v1a signature"):
        _portal().open_delivery({**headers, header: value}, body, now_s=NOW_S)


@pytest.mark.parametrize("missing", ["webhook-id", "webhook-timestamp", "webhook-signature"])
def test_missing_signature_header_is_refused(missing: str) -> None:
    headers, body = _delivery()
    del headers[missing]
    with pytest.raises(AuthError, match="missing webhook-id, webhook-timestamp or"):
        _portal().open_delivery(headers, body, now_s=NOW_S)


def test_delivery_for_another_portal_is_refused() -> None:
    headers, body = _delivery()
    with pytest.raises(AuthError, match="openlines-portal-id header does not name portal"):
        _portal().open_delivery({**headers, "openlines-portal-id": "portal_b"}, body, now_s=NOW_S)
    del headers["openlines-portal-id"]
    with pytest.raises(AuthError, match="openlines-portal-id header does not name portal"):
        _portal().open_delivery(headers, body, now_s=NOW_S)


def test_body_resent_under_another_batch_id_does_not_open() -> None:
    """The engine's key signs the new id, yet the body was sealed for the old one."""
    _, body = _delivery()
    signature = ed25519_signature(ENGINE_KEY, "bat_2", NOW_S, body)
    headers = {
        "openlines-portal-id": PORTAL,
        "webhook-id": "bat_2",
        "webhook-timestamp": str(NOW_S),
        "webhook-signature": signature,
    }
    with pytest.raises(AuthError, match="sealed batch 'bat_2' does not open"):
        _portal().open_delivery(headers, body, now_s=NOW_S)


def test_portal_with_another_private_key_cannot_open() -> None:
    headers, body = _delivery()
    with pytest.raises(AuthError, match="does not open for portal 'portal_a'"):
        _portal(private_key=X25519PrivateKey.generate()).open_delivery(headers, body, now_s=NOW_S)


def test_portal_with_another_id_cannot_open_even_with_the_right_key() -> None:
    headers, body = _delivery()
    portal_b = _portal(portal_id="portal_b")
    with pytest.raises(AuthError, match="does not open for portal 'portal_b'"):
        portal_b.open_delivery({**headers, "openlines-portal-id": "portal_b"}, body, now_s=NOW_S)


def test_one_valid_signature_among_several_is_enough() -> None:
    headers, body = _delivery()
    retired = ed25519_signature(Ed25519PrivateKey.generate(), BATCH, NOW_S, body)
    hmac_one = hmac_signature(b"other", BATCH, NOW_S, body)
    headers["webhook-signature"] = (
        f"{retired} v1a,!!notbase64 {hmac_one} {headers['webhook-signature']}"
    )
    assert _portal().open_delivery(headers, body, now_s=NOW_S)["batch_id"] == BATCH


def test_only_invalid_signatures_are_refused() -> None:
    headers, body = _delivery()
    retired = ed25519_signature(Ed25519PrivateKey.generate(), BATCH, NOW_S, body)
    headers["webhook-signature"] = f"{retired} {hmac_signature(b'k', BATCH, NOW_S, body)}"
    with pytest.raises(AuthError, match="no valid v1a signature"):
        _portal().open_delivery(headers, body, now_s=NOW_S)


@pytest.mark.parametrize(
    ("plaintext", "message"),
    [
        (b"\xff\xfe not utf-8", "not UTF-8 JSON"),
        (b'{"portal_id": ', "not UTF-8 JSON"),
        (b"[]", "not a JSON object"),
        (_batch(portal_id="portal_b"), "field 'portal_id' does not match 'portal_a'"),
        (_batch(batch_id="bat_2"), "field 'batch_id' does not match 'bat_1'"),
        (b'{"portal_id": "portal_a"}', "field 'batch_id' does not match"),
        (b'{"portal_id": 1, "batch_id": "bat_1"}', "field 'portal_id' does not match"),
    ],
)
def test_batch_content_must_be_an_object_naming_this_portal_and_batch(
    plaintext: bytes, message: str
) -> None:
    headers, body = _delivery(plaintext)
    with pytest.raises(AuthError, match=message):
        _portal().open_delivery(headers, body, now_s=NOW_S)


def test_unsigned_sealed_body_is_refused() -> None:
    body = seal_batch(PORTAL_KEY.public_key(), PORTAL, BATCH, _batch())
    headers = {"openlines-portal-id": PORTAL, "webhook-id": BATCH, "webhook-timestamp": str(NOW_S)}
    with pytest.raises(AuthError, match="missing webhook-id, webhook-timestamp or"):
        _portal().open_delivery(headers, body, now_s=NOW_S)


# --- API requests ----------------------------------------------------------------------------


def test_signed_request_verifies_with_the_license_key() -> None:
    headers = _portal().sign_request("post", "/api/v1/replies?x=1", b"{}", now_s=NOW_S + 0.9)
    assert headers["openlines-portal-id"] == PORTAL
    assert headers["webhook-timestamp"] == str(NOW_S)
    assert re.fullmatch(r"msg_[0-9a-f]{32}", headers["webhook-id"])
    payload = api_request_payload("POST", "/api/v1/replies?x=1", b"{}")
    signed = verify_hmac(LICENSE.encode(), headers, payload, now_s=NOW_S)
    assert signed.message_id == headers["webhook-id"]


def test_message_ids_are_fresh_unless_given() -> None:
    portal = _portal()
    first = portal.sign_request("GET", "/api/v1/dialogs", b"", now_s=NOW_S)
    second = portal.sign_request("GET", "/api/v1/dialogs", b"", now_s=NOW_S)
    assert first["webhook-id"] != second["webhook-id"]
    given = portal.sign_request("GET", "/api/v1/dialogs", b"", now_s=NOW_S, message_id="msg_x")
    assert given["webhook-id"] == "msg_x"


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/api/v1/replies", b"{}"),
        ("POST", "/api/v1/dialogs", b"{}"),
        ("POST", "/api/v1/replies?x=2", b"{}"),
        ("POST", "/api/v1/replies", b"{ }"),
    ],
)
def test_signature_is_bound_to_method_path_and_body(method: str, path: str, body: bytes) -> None:
    headers = _portal().sign_request("POST", "/api/v1/replies", b"{}", now_s=NOW_S)
    with pytest.raises(AuthError, match="no valid v1 signature"):
        verify_hmac(LICENSE.encode(), headers, api_request_payload(method, path, body), NOW_S)


def test_signature_needs_the_right_license_key() -> None:
    headers = _portal().sign_request("POST", "/api/v1/replies", b"{}", now_s=NOW_S)
    payload = api_request_payload("POST", "/api/v1/replies", b"{}")
    with pytest.raises(AuthError, match="no valid v1 signature"):
        verify_hmac(b"lic_other", headers, payload, now_s=NOW_S)


# --- protocol vectors ------------------------------------------------------------------------


def _vector_portal() -> tuple[dict[str, Any], PortalSide]:
    vectors = json.loads(VECTORS_PATH.read_text(encoding="utf-8"))
    keys = vectors["keys"]
    portal = PortalSide.from_b64(
        keys["portal_id"],
        keys["portal_private_key"],
        keys["engine_public_key"],
        keys["license_key"],
    )
    return vectors, portal


def test_vector_delivery_opens() -> None:
    vectors, portal = _vector_portal()
    delivery = vectors["delivery"]
    body = base64.b64decode(delivery["body_base64"])
    batch = portal.open_delivery(delivery["headers"], body, now_s=delivery["now_s"])
    assert batch == json.loads(delivery["plaintext"])


def test_vector_deliveries_that_must_fail_do() -> None:
    vectors, portal = _vector_portal()
    failures = vectors["delivery_must_fail"]
    assert len(failures) >= 4
    for case in failures:
        body = base64.b64decode(case["body_base64"])
        with pytest.raises(AuthError, match=re.escape(case["error_contains"])):
            portal.open_delivery(case["headers"], body, now_s=case["now_s"])


def test_vector_api_request_is_reproduced() -> None:
    vectors, portal = _vector_portal()
    request = vectors["api_request"]
    headers = portal.sign_request(
        request["method"],
        request["path"],
        request["body"].encode(),
        now_s=request["now_s"],
        message_id=request["headers"]["webhook-id"],
    )
    assert headers == request["headers"]
    payload = api_request_payload(request["method"], request["path"], request["body"].encode())
    verify_hmac(portal.license_key.encode(), headers, payload, now_s=request["now_s"])
