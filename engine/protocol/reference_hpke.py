"""RFC 9180 base-mode sealing written out step by step, with the ephemeral key chosen.

Never used to deliver: the engine seals with ``cryptography``'s HPKE
(``engine.security.sealing``), which draws a fresh ephemeral key for every batch, so its
bytes differ on every run. The test vectors need the same bytes on every run, and portal
authors need the intermediate values of the key schedule to find where their
implementation differs; this gives both. Since it shares no code with ``cryptography``'s
HPKE, the engine opening what it seals also shows that the two agree on the wire format of
docs/protocol.md ("Open the body").
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from engine.security.sealing import AEAD_ID, KDF_ID, KEM_ID

MODE_BASE = 0x00
_KEM_SUITE_ID = b"KEM" + KEM_ID.to_bytes(2, "big")
_HPKE_SUITE_ID = (
    b"HPKE" + KEM_ID.to_bytes(2, "big") + KDF_ID.to_bytes(2, "big") + AEAD_ID.to_bytes(2, "big")
)


def _labeled_extract(suite_id: bytes, salt: bytes, label: bytes, ikm: bytes) -> bytes:
    return hmac.new(salt, b"HPKE-v1" + suite_id + label + ikm, hashlib.sha256).digest()


def _labeled_expand(suite_id: bytes, prk: bytes, label: bytes, info: bytes, length: int) -> bytes:
    labeled_info = length.to_bytes(2, "big") + b"HPKE-v1" + suite_id + label + info
    output, block, counter = b"", b"", 1
    while len(output) < length:
        block = hmac.new(prk, block + labeled_info + bytes([counter]), hashlib.sha256).digest()
        output, counter = output + block, counter + 1
    return output[:length]


@dataclass(frozen=True)
class ReferenceSeal:
    """A sealed body and the intermediate values an implementer can compare against."""

    enc: bytes
    shared_secret: bytes
    key: bytes
    base_nonce: bytes
    sealed: bytes


def reference_seal(
    recipient_public: bytes, ephemeral_private: bytes, info: bytes, plaintext: bytes
) -> ReferenceSeal:
    """SealBase with DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, AES-256-GCM, empty AAD."""
    ephemeral = X25519PrivateKey.from_private_bytes(ephemeral_private)
    enc = ephemeral.public_key().public_bytes_raw()
    dh = ephemeral.exchange(X25519PublicKey.from_public_bytes(recipient_public))
    eae_prk = _labeled_extract(_KEM_SUITE_ID, b"", b"eae_prk", dh)
    shared_secret = _labeled_expand(
        _KEM_SUITE_ID, eae_prk, b"shared_secret", enc + recipient_public, 32
    )
    psk_id_hash = _labeled_extract(_HPKE_SUITE_ID, b"", b"psk_id_hash", b"")
    info_hash = _labeled_extract(_HPKE_SUITE_ID, b"", b"info_hash", info)
    context = bytes([MODE_BASE]) + psk_id_hash + info_hash
    secret = _labeled_extract(_HPKE_SUITE_ID, shared_secret, b"secret", b"")
    key = _labeled_expand(_HPKE_SUITE_ID, secret, b"key", context, 32)
    base_nonce = _labeled_expand(_HPKE_SUITE_ID, secret, b"base_nonce", context, 12)
    # Sequence number 0: the nonce is base_nonce itself.
    ciphertext = AESGCM(key).encrypt(base_nonce, plaintext, b"")
    return ReferenceSeal(enc, shared_secret, key, base_nonce, enc + ciphertext)
