"""Sealing batches for their portal and signing them with the engine's key."""

from __future__ import annotations

from typing import Protocol

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey

from engine.config import PortalConfig
from engine.security.sealing import seal_and_sign, x25519_public_from_b64


class BatchSealer(Protocol):
    def seal(
        self, portal: PortalConfig, batch_id: str, plaintext: bytes, now_s: int
    ) -> tuple[dict[str, str], bytes]:
        """The headers and sealed body of one attempt of a batch."""
        ...


class EngineSealer:
    def __init__(self, engine_key: Ed25519PrivateKey) -> None:
        self._engine_key = engine_key
        self._portal_keys: dict[str, tuple[str, X25519PublicKey]] = {}

    def _portal_key(self, portal: PortalConfig) -> X25519PublicKey:
        cached = self._portal_keys.get(portal.id)
        if cached is None or cached[0] != portal.public_key:
            cached = (portal.public_key, x25519_public_from_b64(portal.public_key))
            self._portal_keys[portal.id] = cached
        return cached[1]

    def seal(
        self, portal: PortalConfig, batch_id: str, plaintext: bytes, now_s: int
    ) -> tuple[dict[str, str], bytes]:
        return seal_and_sign(
            portal.id, batch_id, plaintext, self._portal_key(portal), self._engine_key, now_s
        )
