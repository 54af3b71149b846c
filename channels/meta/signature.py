"""``X-Hub-Signature-256``: how Meta proves a webhook comes from the app's own subscription.

The header is ``sha256=`` and the lowercase hex HMAC-SHA256 of the raw body keyed by the app
secret (docs/channels/facebook.md, "Signature"). Meta signs the bytes it sends, with
non-ASCII escaped as ``\\uXXXX``: the digest is taken over the body exactly as received, never
over re-encoded JSON, and compared in constant time. The SHA-1 ``X-Hub-Signature`` Meta also
sends is not accepted on its own.
"""

from __future__ import annotations

import hashlib
import hmac

from channels.base import RawRequest
from engine.errors import AuthError

SIGNATURE_HEADER = "x-hub-signature-256"
LEGACY_HEADER = "x-hub-signature"
_PREFIX = "sha256="


def hub_signature(app_secret: str, body: bytes) -> str:
    """The header value Meta sends for ``body``."""
    return _PREFIX + hmac.new(app_secret.encode(), body, hashlib.sha256).hexdigest()


def verify_hub_signature(app_secret: str, request: RawRequest) -> None:
    """Raise ``AuthError`` unless ``request`` carries the app's signature of its raw body."""
    presented = request.headers.get(SIGNATURE_HEADER)
    if presented is None:
        if request.headers.get(LEGACY_HEADER) is not None:
            raise AuthError("only the SHA-1 X-Hub-Signature was sent; X-Hub-Signature-256 needed")
        raise AuthError("missing X-Hub-Signature-256 header")
    expected = hub_signature(app_secret, request.body).encode()
    if not hmac.compare_digest(presented.strip().lower().encode("utf-8", "replace"), expected):
        raise AuthError("X-Hub-Signature-256 does not match the body")
