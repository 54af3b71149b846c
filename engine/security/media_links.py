"""Signed, expiring links to a customer's media (docs/channels/media.md, "The token").

A link names one file of one connector of one portal and when it stops working; it is its
own credential, so it is MAC'd with a key only the engine holds, derived from the engine's
signing key: every channel actor derives the same one, and no key is stored beside it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from dataclasses import dataclass

import orjson
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from engine.errors import MediaLinkError

KEY_INFO = b"openlines media links v1"


@dataclass(frozen=True)
class MediaLink:
    portal_id: str
    connector_id: str
    file_id: str
    expires_at: float


def media_link_key(signing_key: Ed25519PrivateKey) -> bytes:
    """The links' MAC key: HKDF-SHA256 of the engine's Ed25519 private key."""
    raw = signing_key.private_bytes(
        serialization.Encoding.Raw,
        serialization.PrivateFormat.Raw,
        serialization.NoEncryption(),
    )
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=KEY_INFO).derive(raw)


def seal_link(key: bytes, link: MediaLink) -> str:
    """The token of ``link``: ``<payload>.<mac>``, both base64url without padding."""
    payload = orjson.dumps(
        {"p": link.portal_id, "c": link.connector_id, "f": link.file_id, "x": link.expires_at}
    )
    return f"{_b64(payload)}.{_b64(_mac(key, payload))}"


def open_link(key: bytes, token: str, now: float) -> MediaLink:
    """The link a token names, checked: its MAC (constant time), then its expiry."""
    payload_b64, _, mac_b64 = token.partition(".")
    try:
        payload, mac = _unb64(payload_b64), _unb64(mac_b64)
    except (binascii.Error, ValueError):
        raise MediaLinkError("not a media link", "bad_link") from None
    if not hmac.compare_digest(mac, _mac(key, payload)):
        raise MediaLinkError("not a media link", "bad_link")
    fields = orjson.loads(payload)  # ours: the MAC holds
    link = MediaLink(fields["p"], fields["c"], fields["f"], float(fields["x"]))
    if now >= link.expires_at:
        raise MediaLinkError(f"the link expired at {link.expires_at:.0f}", "link_expired")
    return link


def _mac(key: bytes, payload: bytes) -> bytes:
    return hmac.new(key, payload, hashlib.sha256).digest()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    if not text or len(text) > 4096:
        raise ValueError("empty or too long")
    return base64.b64decode(text + "=" * (-len(text) % 4), altchars=b"-_", validate=True)
