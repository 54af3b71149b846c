"""What a portal written in Python needs to talk to the engine, and nothing more.

A portal receives deliveries (sealed to its X25519 key, signed with the engine's Ed25519
key) and makes API calls (signed with HMAC over its license key). This module checks the
first and signs the second. It depends only on ``cryptography``, the standard library and
``engine.security``, so a portal can vendor it without pulling in Ray or the engine.

The wire format it implements is specified in ``docs/protocol.md``.
"""

from __future__ import annotations

import hmac
import json
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from engine.errors import AuthError
from engine.security.keys import ed25519_public_from_b64
from engine.security.sealing import PORTAL_ID_HEADER, open_batch, x25519_private_from_b64
from engine.security.webhook_signature import (
    DEFAULT_TOLERANCE_S,
    api_request_payload,
    hmac_signature,
    signature_headers,
    verify_ed25519,
)


def _same(left: str, right: str) -> bool:
    return hmac.compare_digest(left.encode(), right.encode())


@dataclass(frozen=True)
class PortalSide:
    """One portal's keys and identity, checking deliveries and signing API calls.

    The engine retries a delivery until the portal answers 2xx, always under the same
    batch id (``webhook-id``). ``open_delivery`` does not remember ids: the portal stores
    the batch id with the events it keeps and treats a repeated id as already handled.
    """

    portal_id: str
    private_key: X25519PrivateKey = field(repr=False)
    engine_public_key: Ed25519PublicKey = field(repr=False)
    license_key: str = field(repr=False)
    tolerance_s: int = DEFAULT_TOLERANCE_S

    @classmethod
    def from_b64(
        cls, portal_id: str, private_key_b64: str, engine_public_key_b64: str, license_key: str
    ) -> PortalSide:
        """Build from config text; ``ConfigError`` if a key does not decode."""
        return cls(
            portal_id,
            x25519_private_from_b64(private_key_b64),
            ed25519_public_from_b64(engine_public_key_b64),
            license_key,
        )

    def open_delivery(
        self,
        headers: Mapping[str, str],
        body: bytes,
        now_s: float | None = None,
        loads: Callable[[bytes], Any] = json.loads,
    ) -> dict[str, Any]:
        """Verify, open and parse a delivery; ``AuthError`` naming the first check that fails.

        The order matters: the signature over the raw body is checked before anything is
        decrypted or parsed, so a forged request costs one signature check. ``loads`` is the
        JSON parser: the standard library's by default, a faster one (orjson) where a portal
        receives a lot.
        """
        now = time.time() if now_s is None else now_s
        signed = verify_ed25519(self.engine_public_key, headers, body, now, self.tolerance_s)
        lowered = {name.lower(): value for name, value in headers.items()}
        if not _same(lowered.get(PORTAL_ID_HEADER, ""), self.portal_id):
            raise AuthError(f"{PORTAL_ID_HEADER} header does not name portal {self.portal_id!r}")
        batch_id = signed.message_id
        plaintext = open_batch(self.private_key, self.portal_id, batch_id, body)
        return self._parse_batch(plaintext, batch_id, loads)

    def _parse_batch(
        self, plaintext: bytes, batch_id: str, loads: Callable[[bytes], Any]
    ) -> dict[str, Any]:
        """The batch object, after checking it names the portal and batch it came as."""
        try:
            batch = loads(plaintext)
        except ValueError as error:  # JSONDecodeError and UnicodeDecodeError both
            raise AuthError(f"batch {batch_id!r} opened but is not UTF-8 JSON ({error})") from None
        if not isinstance(batch, dict):
            raise AuthError(f"batch {batch_id!r} opened but is not a JSON object")
        for name, expected in (("portal_id", self.portal_id), ("batch_id", batch_id)):
            found = batch.get(name)
            if not isinstance(found, str) or not _same(found, expected):
                raise AuthError(f"batch {batch_id!r}: field {name!r} does not match {expected!r}")
        return batch

    def sign_request(
        self,
        method: str,
        path: str,
        body: bytes,
        now_s: float | None = None,
        message_id: str | None = None,
    ) -> dict[str, str]:
        """Headers for an API call to the engine; ``path`` includes the query string as sent.

        Each call needs a fresh ``message_id``: the engine refuses an id it has seen within
        the timestamp tolerance, so a captured call cannot be replayed.
        """
        timestamp_s = int(time.time() if now_s is None else now_s)
        request_id = "msg_" + secrets.token_hex(16) if message_id is None else message_id
        payload = api_request_payload(method, path, body)
        signature = hmac_signature(self.license_key.encode(), request_id, timestamp_s, payload)
        return {
            PORTAL_ID_HEADER: self.portal_id,
            **signature_headers(request_id, timestamp_s, signature),
        }
