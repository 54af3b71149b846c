"""Standard Webhooks signatures: ``webhook-id``, ``webhook-timestamp``, ``webhook-signature``.

The signed content is ``{id}.{timestamp}.{payload}``. Two schemes are used:

* ``v1``: HMAC-SHA256 with a shared secret (portal API calls keyed by the license key, and
  the custom connector keyed by its signing secret).
* ``v1a``: Ed25519 with the engine's private key (deliveries to portals).

The header may carry several space-separated signatures (key rotation); one valid is enough.
The hash and scheme are fixed in code, never taken from the request. Timestamps outside the
tolerance are refused, so a captured request cannot be replayed later; replays inside the
window are caught by the caller remembering ids.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from engine.errors import AuthError

ID_HEADER = "webhook-id"
TIMESTAMP_HEADER = "webhook-timestamp"
SIGNATURE_HEADER = "webhook-signature"
DEFAULT_TOLERANCE_S = 300


@dataclass(frozen=True)
class SignedRequest:
    """The verified facts of a signed request."""

    message_id: str
    timestamp_s: int


def signed_content(message_id: str, timestamp_s: int, payload: bytes) -> bytes:
    return f"{message_id}.{timestamp_s}.".encode() + payload


def hmac_signature(secret: bytes, message_id: str, timestamp_s: int, payload: bytes) -> str:
    """The ``v1,<base64>`` signature of ``payload``."""
    mac = hmac.new(secret, signed_content(message_id, timestamp_s, payload), hashlib.sha256)
    return "v1," + base64.b64encode(mac.digest()).decode()


def ed25519_signature(
    key: Ed25519PrivateKey, message_id: str, timestamp_s: int, payload: bytes
) -> str:
    """The ``v1a,<base64>`` signature of ``payload``."""
    signature = key.sign(signed_content(message_id, timestamp_s, payload))
    return "v1a," + base64.b64encode(signature).decode()


def signature_headers(message_id: str, timestamp_s: int, signature: str) -> dict[str, str]:
    return {ID_HEADER: message_id, TIMESTAMP_HEADER: str(timestamp_s), SIGNATURE_HEADER: signature}


def _read_headers(
    headers: Mapping[str, str], now_s: float, tolerance_s: int
) -> tuple[str, int, list[str]]:
    lowered = {name.lower(): value for name, value in headers.items()}
    message_id = lowered.get(ID_HEADER, "")
    raw_timestamp = lowered.get(TIMESTAMP_HEADER, "")
    raw_signatures = lowered.get(SIGNATURE_HEADER, "")
    if not message_id or not raw_timestamp or not raw_signatures:
        raise AuthError("missing webhook-id, webhook-timestamp or webhook-signature header")
    if len(message_id) > 200:
        raise AuthError("webhook-id longer than 200 characters")
    try:
        timestamp_s = int(raw_timestamp)
    except ValueError:
        raise AuthError("webhook-timestamp is not an integer") from None
    if abs(now_s - timestamp_s) > tolerance_s:
        raise AuthError(f"webhook-timestamp outside the {tolerance_s} s tolerance")
    return message_id, timestamp_s, raw_signatures.split()


def _signatures_of(scheme: str, candidates: list[str]) -> list[bytes]:
    decoded = []
    for candidate in candidates:
        version, _, value = candidate.partition(",")
        if version != scheme:
            continue
        try:
            decoded.append(base64.b64decode(value, validate=True))
        except (binascii.Error, ValueError):
            continue
    return decoded


def verify_hmac(
    secret: bytes,
    headers: Mapping[str, str],
    payload: bytes,
    now_s: float,
    tolerance_s: int = DEFAULT_TOLERANCE_S,
) -> SignedRequest:
    """Check a ``v1`` signature; raise ``AuthError`` with the reason when it does not hold."""
    message_id, timestamp_s, candidates = _read_headers(headers, now_s, tolerance_s)
    expected = hmac.new(
        secret, signed_content(message_id, timestamp_s, payload), hashlib.sha256
    ).digest()
    for signature in _signatures_of("v1", candidates):
        if hmac.compare_digest(signature, expected):
            return SignedRequest(message_id, timestamp_s)
    raise AuthError("no valid v1 signature")


def verify_ed25519(
    key: Ed25519PublicKey,
    headers: Mapping[str, str],
    payload: bytes,
    now_s: float,
    tolerance_s: int = DEFAULT_TOLERANCE_S,
) -> SignedRequest:
    """Check a ``v1a`` signature; raise ``AuthError`` with the reason when it does not hold."""
    message_id, timestamp_s, candidates = _read_headers(headers, now_s, tolerance_s)
    content = signed_content(message_id, timestamp_s, payload)
    for signature in _signatures_of("v1a", candidates):
        try:
            key.verify(signature, content)
        except InvalidSignature:
            continue
        return SignedRequest(message_id, timestamp_s)
    raise AuthError("no valid v1a signature")


def api_request_payload(method: str, path: str, body: bytes) -> bytes:
    """What a portal signs for an API call: the request line, a newline, then the body.

    Binding method and path (with its query string) keeps a signed call from being replayed
    against another endpoint; the body alone would not.
    """
    return f"{method.upper()} {path}\n".encode() + body
