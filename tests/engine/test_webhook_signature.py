"""Standard Webhooks signatures: the published vector, tolerance edges, rotation, refusals."""

from __future__ import annotations

import base64

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from engine.errors import AuthError
from engine.security.webhook_signature import (
    api_request_payload,
    ed25519_signature,
    hmac_signature,
    signature_headers,
    signed_content,
    verify_ed25519,
    verify_hmac,
)

# The example in the Standard Webhooks specification (secret given there as whsec_<base64>).
SPEC_SECRET = base64.b64decode("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
SPEC_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
SPEC_TIMESTAMP_S = 1614265330
SPEC_PAYLOAD = b'{"test": 2432232314}'
SPEC_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="

NOW_S = 1_800_000_000
SECRET = b"license-key"
KEY = Ed25519PrivateKey.generate()
BODY = b'{"a":1}'


def _hmac_headers(timestamp_s: int = NOW_S, message_id: str = "msg_1") -> dict[str, str]:
    signature = hmac_signature(SECRET, message_id, timestamp_s, BODY)
    return signature_headers(message_id, timestamp_s, signature)


def _ed25519_headers(timestamp_s: int = NOW_S) -> dict[str, str]:
    return signature_headers(
        "msg_1", timestamp_s, ed25519_signature(KEY, "msg_1", timestamp_s, BODY)
    )


def test_hmac_matches_the_specification_example() -> None:
    assert hmac_signature(SPEC_SECRET, SPEC_ID, SPEC_TIMESTAMP_S, SPEC_PAYLOAD) == SPEC_SIGNATURE
    headers = signature_headers(SPEC_ID, SPEC_TIMESTAMP_S, SPEC_SIGNATURE)
    assert verify_hmac(SPEC_SECRET, headers, SPEC_PAYLOAD, SPEC_TIMESTAMP_S).message_id == SPEC_ID


def test_signed_content_is_id_dot_timestamp_dot_payload() -> None:
    assert signed_content("msg_1", 5, b"body") == b"msg_1.5.body"


def test_round_trips_report_id_and_timestamp() -> None:
    signed = verify_hmac(SECRET, _hmac_headers(), BODY, NOW_S)
    assert (signed.message_id, signed.timestamp_s) == ("msg_1", NOW_S)
    signed = verify_ed25519(KEY.public_key(), _ed25519_headers(), BODY, NOW_S)
    assert (signed.message_id, signed.timestamp_s) == ("msg_1", NOW_S)


@pytest.mark.parametrize("offset_s", [-300, 300])
def test_tolerance_edges_are_inclusive(offset_s: int) -> None:
    verify_hmac(SECRET, _hmac_headers(), BODY, NOW_S + offset_s)
    verify_ed25519(KEY.public_key(), _ed25519_headers(), BODY, NOW_S + offset_s)


@pytest.mark.parametrize("offset_s", [-301, 301])
def test_outside_tolerance_is_refused_even_when_signed(offset_s: int) -> None:
    with pytest.raises(AuthError, match="outside the 300 s tolerance"):
        verify_hmac(SECRET, _hmac_headers(), BODY, NOW_S + offset_s)
    with pytest.raises(AuthError, match="outside the 300 s tolerance"):
        verify_ed25519(KEY.public_key(), _ed25519_headers(), BODY, NOW_S + offset_s)


def test_custom_tolerance() -> None:
    with pytest.raises(AuthError, match="outside the 10 s tolerance"):
        verify_hmac(SECRET, _hmac_headers(), BODY, NOW_S + 11, tolerance_s=10)


def test_timestamp_must_be_an_integer() -> None:
    headers = {**_hmac_headers(), "webhook-timestamp": f"{NOW_S}.0"}
    with pytest.raises(AuthError, match="webhook-timestamp is not an integer"):
        verify_hmac(SECRET, headers, BODY, NOW_S)


@pytest.mark.parametrize("missing", ["webhook-id", "webhook-timestamp", "webhook-signature"])
def test_missing_header_is_refused(missing: str) -> None:
    headers = _hmac_headers()
    headers[missing] = ""
    with pytest.raises(AuthError, match="missing webhook-id"):
        verify_hmac(SECRET, headers, BODY, NOW_S)


def test_overlong_id_is_refused() -> None:
    with pytest.raises(AuthError, match="longer than 200"):
        verify_hmac(SECRET, _hmac_headers(message_id="m" * 201), BODY, NOW_S)


def test_header_names_are_case_insensitive() -> None:
    headers = {name.upper(): value for name, value in _hmac_headers().items()}
    verify_hmac(SECRET, headers, BODY, NOW_S)


@pytest.mark.parametrize(
    ("secret", "body"), [(b"other-key", BODY), (SECRET, b'{"a":2}'), (SECRET, BODY + b" ")]
)
def test_hmac_wrong_key_or_body_is_refused(secret: bytes, body: bytes) -> None:
    with pytest.raises(AuthError, match="no valid v1 signature"):
        verify_hmac(secret, _hmac_headers(), body, NOW_S)


def test_hmac_signed_id_and_timestamp_cannot_be_swapped() -> None:
    headers = {**_hmac_headers(), "webhook-id": "msg_2"}
    with pytest.raises(AuthError, match="no valid v1 signature"):
        verify_hmac(SECRET, headers, BODY, NOW_S)
    headers = {**_hmac_headers(), "webhook-timestamp": str(NOW_S - 1)}
    with pytest.raises(AuthError, match="no valid v1 signature"):
        verify_hmac(SECRET, headers, BODY, NOW_S)


def test_one_valid_among_several_signatures_is_enough() -> None:
    valid = _hmac_headers()["webhook-signature"]
    stale = hmac_signature(b"rotated-out", "msg_1", NOW_S, BODY)
    header = f"{stale} v1,***not-base64*** v1a,{base64.b64encode(bytes(64)).decode()} {valid}"
    verify_hmac(SECRET, {**_hmac_headers(), "webhook-signature": header}, BODY, NOW_S)

    valid_ed = _ed25519_headers()["webhook-signature"]
    other_ed = ed25519_signature(Ed25519PrivateKey.generate(), "msg_1", NOW_S, BODY)
    header = f"{other_ed} {valid} {valid_ed}"
    verify_ed25519(
        KEY.public_key(), {**_ed25519_headers(), "webhook-signature": header}, BODY, NOW_S
    )


def test_scheme_is_fixed_by_the_verifier_not_the_header() -> None:
    """A v1 HMAC value is never checked as v1a, nor the reverse, whatever the header says."""
    ed_value = _ed25519_headers()["webhook-signature"].partition(",")[2]
    with pytest.raises(AuthError, match="no valid v1 signature"):
        verify_hmac(
            SECRET, {**_ed25519_headers(), "webhook-signature": f"v1,{ed_value}"}, BODY, NOW_S
        )
    with pytest.raises(AuthError, match="no valid v1a signature"):
        verify_ed25519(KEY.public_key(), _hmac_headers(), BODY, NOW_S)


def test_ed25519_wrong_key_or_body_is_refused() -> None:
    with pytest.raises(AuthError, match="no valid v1a signature"):
        verify_ed25519(Ed25519PrivateKey.generate().public_key(), _ed25519_headers(), BODY, NOW_S)
    with pytest.raises(AuthError, match="no valid v1a signature"):
        verify_ed25519(KEY.public_key(), _ed25519_headers(), BODY + b"x", NOW_S)


def test_api_request_payload_binds_method_path_and_body() -> None:
    assert api_request_payload("post", "/api/v1/replies?a=1", b"{}") == (
        b"POST /api/v1/replies?a=1\n{}"
    )
    assert api_request_payload("GET", "/api/v1/dialogs", b"") == b"GET /api/v1/dialogs\n"
