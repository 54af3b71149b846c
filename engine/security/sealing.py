"""Batches sealed to a portal's public key, and the signed request that delivers them.

Each batch is encrypted with HPKE (RFC 9180) in base mode, suite DHKEM(X25519, HKDF-SHA256),
HKDF-SHA256, AES-256-GCM, to the portal's X25519 public key. Only the portal holds the
private key, so a copy of the engine's database or of its outgoing traffic does not open.

HPKE's ``info`` binds the portal id and the batch id. A sealed batch therefore opens only
for the portal and under the batch id it was sealed for: a body moved to another portal, or
replayed under another ``webhook-id``, fails to open rather than being read as valid.

Wire format of a sealed body (what ``cryptography``'s single-shot HPKE produces)::

    enc (32 bytes: the ephemeral X25519 public key) || AES-256-GCM ciphertext || tag (16 bytes)

with empty AAD and the first nonce of the context (sequence number 0). The engine side of
the delivery, ``seal_and_sign``, lives here too, so both sides are tested against each other.
"""

from __future__ import annotations

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hpke
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

from engine.errors import AuthError, ConfigError
from engine.security.keys import raw_key_from_b64, raw_key_to_b64
from engine.security.webhook_signature import ed25519_signature, signature_headers

SUITE = hpke.Suite(hpke.KEM.X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.AES_256_GCM)
# RFC 9180 registry ids of the suite above, for portals written with other libraries.
KEM_ID = 0x0020
KDF_ID = 0x0001
AEAD_ID = 0x0002
ENC_BYTES = 32
TAG_BYTES = 16

INFO_PREFIX = b"openlines/v1 batch\x00"
CONTENT_TYPE = "application/openlines-sealed+hpke"
PORTAL_ID_HEADER = "openlines-portal-id"


def _id_problem(portal_id: str, batch_id: str) -> str | None:
    """Why these ids cannot be bound in ``info``, or None.

    NUL separates the two ids in ``info``; an id containing NUL would let two different
    (portal, batch) pairs produce the same ``info``.
    """
    if not portal_id or not batch_id:
        return "portal id and batch id must not be empty"
    if "\x00" in portal_id or "\x00" in batch_id:
        return "portal id and batch id must not contain NUL"
    return None


def batch_info(portal_id: str, batch_id: str) -> bytes:
    """HPKE ``info``: the prefix, the portal id, NUL, the batch id (UTF-8)."""
    return INFO_PREFIX + portal_id.encode() + b"\x00" + batch_id.encode()


def seal_batch(
    portal_public_key: X25519PublicKey, portal_id: str, batch_id: str, plaintext: bytes
) -> bytes:
    """Encrypt ``plaintext`` so that only this portal can open it, and only as this batch."""
    problem = _id_problem(portal_id, batch_id)
    if problem is not None:
        raise ConfigError(f"cannot seal batch {batch_id!r} for portal {portal_id!r}: {problem}")
    try:
        return SUITE.encrypt(plaintext, portal_public_key, info=batch_info(portal_id, batch_id))
    except ValueError as error:
        # A low-order public key gives no shared secret; x25519_public_from_b64 refuses it.
        raise ConfigError(f"portal {portal_id!r}: unusable X25519 public key ({error})") from None


def open_batch(
    portal_private_key: X25519PrivateKey, portal_id: str, batch_id: str, sealed: bytes
) -> bytes:
    """Decrypt a sealed batch; ``AuthError`` if it was not sealed to this key, portal and batch.

    AEAD failure cannot tell a wrong key from a wrong id or a flipped bit, so the message
    names all the possibilities.
    """
    problem = _id_problem(portal_id, batch_id)
    if problem is not None:
        raise AuthError(f"sealed batch refused: {problem}")
    if len(sealed) < ENC_BYTES + TAG_BYTES:
        raise AuthError(
            f"sealed batch refused: {len(sealed)} bytes, shorter than enc and tag"
            f" ({ENC_BYTES + TAG_BYTES} bytes)"
        )
    try:
        return SUITE.decrypt(sealed, portal_private_key, info=batch_info(portal_id, batch_id))
    except (InvalidTag, ValueError):
        raise AuthError(
            f"sealed batch {batch_id!r} does not open for portal {portal_id!r}: wrong key,"
            " wrong portal or batch id, or altered bytes"
        ) from None


def seal_and_sign(
    portal_id: str,
    batch_id: str,
    plaintext: bytes,
    portal_public_key: X25519PublicKey,
    engine_key: Ed25519PrivateKey,
    now_s: int,
) -> tuple[dict[str, str], bytes]:
    """The headers and body of a delivery request: sealed, then signed over the sealed bytes.

    Signing the ciphertext (not the plaintext) lets the portal refuse a forged request
    before spending a decryption on it. A retry calls this again with a new ``now_s`` and
    the same ``batch_id``, so the portal can recognise the batch it already has.
    """
    body = seal_batch(portal_public_key, portal_id, batch_id, plaintext)
    return delivery_headers(portal_id, batch_id, body, engine_key, now_s), body


def delivery_headers(
    portal_id: str, batch_id: str, body: bytes, engine_key: Ed25519PrivateKey, now_s: int
) -> dict[str, str]:
    """The headers of a delivery of the sealed ``body``, signed at ``now_s``."""
    signature = ed25519_signature(engine_key, batch_id, now_s, body)
    return {
        "content-type": CONTENT_TYPE,
        PORTAL_ID_HEADER: portal_id,
        **signature_headers(batch_id, now_s, signature),
    }


def x25519_public_to_b64(key: X25519PublicKey) -> str:
    return raw_key_to_b64(key.public_bytes_raw())


_TRIAL_KEY = X25519PrivateKey.generate()
"""The private half of the trial agreements below, one per process: the trial only asks
whether the public key agrees with anything, and 10,000 portals' keys are checked at load."""


def x25519_public_from_b64(text: str) -> X25519PublicKey:
    """Read a portal's public key from config; ``ConfigError`` when it cannot be sealed to.

    A trial key agreement refuses low-order points here, at load, instead of at the first
    delivery.
    """
    key = X25519PublicKey.from_public_bytes(raw_key_from_b64(text, "X25519 public key"))
    try:
        _TRIAL_KEY.exchange(key)
    except ValueError:
        raise ConfigError("X25519 public key: a low-order point, no key can be agreed") from None
    return key


def x25519_private_to_b64(key: X25519PrivateKey) -> str:
    return raw_key_to_b64(key.private_bytes_raw())


def x25519_private_from_b64(text: str) -> X25519PrivateKey:
    """Read a portal's private key; any 32 bytes are a valid X25519 private key."""
    return X25519PrivateKey.from_private_bytes(raw_key_from_b64(text, "X25519 private key"))
