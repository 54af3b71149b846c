"""Print or write the protocol test vectors (tests/data/protocol_vectors.json).

Every key and the HPKE ephemeral key are derived from fixed labels, so a run produces the
same file byte for byte; tests/engine/test_sealing.py checks that the stored file equals a
fresh run, so docs/protocol.md and the vectors cannot drift from the code.

The sealed bodies are made by ``reference_seal`` below: RFC 9180 written out step by step
from HMAC-SHA256 and AES-256-GCM, with a chosen ephemeral key. The engine opens them with

``cryptography``'s HPKE, so the vectors also show that the two implementations agree on the
wire format the protocol document describes. The keys are public: never use them for real.

Usage (from the repository root)::

    python bench/make_protocol_vectors.py           # print the vectors
    python bench/make_protocol_vectors.py --write   # rewrite tests/data/protocol_vectors.json
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import (
    X25519PrivateKey,
    X25519PublicKey,
)
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from engine.security.keys import ed25519_public_to_b64, raw_key_to_b64
from engine.security.sealing import (
    AEAD_ID,
    CONTENT_TYPE,
    KDF_ID,
    KEM_ID,
    PORTAL_ID_HEADER,
    batch_info,
)
from engine.security.webhook_signature import (
    api_request_payload,
    ed25519_signature,
    hmac_signature,
    signature_headers,
    signed_content,
)

ROOT = Path(__file__).resolve().parent.parent
VECTORS_PATH = ROOT / "tests" / "data" / "protocol_vectors.json"

NOW_S = 1_800_000_000
PORTAL_ID = "portal_example"
BATCH_ID = "bat_0000000000000001"
LICENSE_KEY = "lic_example_0123456789abcdef"

_KEM_SUITE_ID = b"KEM" + KEM_ID.to_bytes(2, "big")
_HPKE_SUITE_ID = (
    b"HPKE" + KEM_ID.to_bytes(2, "big") + KDF_ID.to_bytes(2, "big") + AEAD_ID.to_bytes(2, "big")
)
_MODE_BASE = 0x00


def seed(label: str) -> bytes:
    """32 bytes fixed by a label: SHA-256 of ``openlines test vector: <label>``."""
    return hashlib.sha256(f"openlines test vector: {label}".encode()).digest()


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
    """RFC 9180 base-mode SealBase with DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, AES-256-GCM."""
    ephemeral = X25519PrivateKey.from_private_bytes(ephemeral_private)
    enc = ephemeral.public_key().public_bytes_raw()
    dh = ephemeral.exchange(X25519PublicKey.from_public_bytes(recipient_public))
    eae_prk = _labeled_extract(_KEM_SUITE_ID, b"", b"eae_prk", dh)
    shared_secret = _labeled_expand(
        _KEM_SUITE_ID, eae_prk, b"shared_secret", enc + recipient_public, 32
    )
    psk_id_hash = _labeled_extract(_HPKE_SUITE_ID, b"", b"psk_id_hash", b"")
    info_hash = _labeled_extract(_HPKE_SUITE_ID, b"", b"info_hash", info)
    context = bytes([_MODE_BASE]) + psk_id_hash + info_hash
    secret = _labeled_extract(_HPKE_SUITE_ID, shared_secret, b"secret", b"")
    key = _labeled_expand(_HPKE_SUITE_ID, secret, b"key", context, 32)
    base_nonce = _labeled_expand(_HPKE_SUITE_ID, secret, b"base_nonce", context, 12)
    # Sequence number 0: the nonce is base_nonce itself. AAD is empty.
    ciphertext = AESGCM(key).encrypt(base_nonce, plaintext, b"")
    return ReferenceSeal(enc, shared_secret, key, base_nonce, enc + ciphertext)


def sample_batch(portal_id: str, batch_id: str) -> bytes:
    """An illustrative batch; the event fields are specified in docs/protocol.md, Events."""
    batch = {
        "portal_id": portal_id,
        "batch_id": batch_id,
        "stream": "support",
        "events": [
            {
                "id": "evt_00000000000000000000000000000001",
                "seq": 1,
                "type": "message.received",
                "dialog": {"id": "dlg_example"},
                "occurred_at": "2027-01-15T08:00:00Z",
                "data": {"text": "Hello, I have a question about my order"},
            }
        ],
    }
    return json.dumps(batch, ensure_ascii=False, separators=(",", ":")).encode()


def _delivery(
    engine_key: Ed25519PrivateKey,
    portal_public: bytes,
    sealed_for: tuple[str, str],
    sent_as: tuple[str, str],
    signed_at_s: int,
    flip_byte: int | None = None,
) -> tuple[dict[str, Any], ReferenceSeal]:
    """A delivery sealed for ``sealed_for`` (portal, batch), sent as ``sent_as``, signed."""
    plaintext = sample_batch(*sealed_for)
    seal = reference_seal(portal_public, seed("ephemeral key"), batch_info(*sealed_for), plaintext)
    body = bytearray(seal.sealed)
    if flip_byte is not None:
        body[flip_byte] ^= 0x01
    portal_id, batch_id = sent_as
    signature = ed25519_signature(engine_key, batch_id, signed_at_s, bytes(body))
    headers = {
        "content-type": CONTENT_TYPE,
        PORTAL_ID_HEADER: portal_id,
        **signature_headers(batch_id, signed_at_s, signature),
    }
    delivery = {
        "headers": headers,
        "body_base64": base64.b64encode(bytes(body)).decode(),
        "plaintext": plaintext.decode(),
    }
    return delivery, seal


def _failure(
    case: str, error_contains: str, made: tuple[dict[str, Any], ReferenceSeal]
) -> dict[str, Any]:
    """A delivery a portal must refuse, with a phrase its error message contains."""
    return {"case": case, "error_contains": error_contains, "now_s": NOW_S, **made[0]}


def _api_request(license_key: str) -> dict[str, Any]:
    method, path, body = "POST", "/api/v1/replies?example=1", b'{"dialog_id":"dlg_example"}'
    message_id = "msg_00000000000000000000000000000001"
    payload = api_request_payload(method, path, body)
    signature = hmac_signature(license_key.encode(), message_id, NOW_S, payload)
    return {
        "method": method,
        "path": path,
        "body": body.decode(),
        "now_s": NOW_S,
        "signed_content": signed_content(message_id, NOW_S, payload).decode(),
        "headers": {PORTAL_ID_HEADER: PORTAL_ID, **signature_headers(message_id, NOW_S, signature)},
    }


def build_vectors() -> dict[str, Any]:
    """The whole vectors document, identical on every run."""
    portal_key = X25519PrivateKey.from_private_bytes(seed("portal key"))
    portal_public = portal_key.public_key().public_bytes_raw()
    engine_key = Ed25519PrivateKey.from_private_bytes(seed("engine signing key"))
    this = (PORTAL_ID, BATCH_ID)
    delivery, seal = _delivery(engine_key, portal_public, this, this, NOW_S)
    other_batch, other_portal = (PORTAL_ID, "bat_other"), ("portal_other", BATCH_ID)
    failures = [
        _failure(
            "signed 301 s before now_s: outside the 300 s tolerance",
            "tolerance",
            _delivery(engine_key, portal_public, this, this, NOW_S - 301),
        ),
        _failure(
            "sealed for batch bat_other, sent as this batch",
            "does not open",
            _delivery(engine_key, portal_public, other_batch, this, NOW_S),
        ),
        _failure(
            "sealed for portal portal_other (to this portal's key)",
            "does not open",
            _delivery(engine_key, portal_public, other_portal, this, NOW_S),
        ),
        _failure(
            "byte 40 of the sealed body flipped, then signed",
            "does not open",
            _delivery(engine_key, portal_public, this, this, NOW_S, flip_byte=40),
        ),
    ]
    return {
        "about": "Open Lines protocol test vectors, see docs/protocol.md. Public keys: test only.",
        "generator": "bench/make_protocol_vectors.py",
        "keys": {
            "portal_id": PORTAL_ID,
            "portal_private_key": raw_key_to_b64(portal_key.private_bytes_raw()),
            "portal_public_key": raw_key_to_b64(portal_public),
            "engine_private_key": raw_key_to_b64(engine_key.private_bytes_raw()),
            "engine_public_key": ed25519_public_to_b64(engine_key.public_key()),
            "license_key": LICENSE_KEY,
        },
        "hpke": {
            "mode": _MODE_BASE,
            "kem_id": KEM_ID,
            "kdf_id": KDF_ID,
            "aead_id": AEAD_ID,
            "info_hex": batch_info(PORTAL_ID, BATCH_ID).hex(),
            "aad_hex": "",
            "ephemeral_private_key": raw_key_to_b64(seed("ephemeral key")),
            "enc_hex": seal.enc.hex(),
            "shared_secret_hex": seal.shared_secret.hex(),
            "key_hex": seal.key.hex(),
            "base_nonce_hex": seal.base_nonce.hex(),
        },
        "delivery": {"now_s": NOW_S, **delivery},
        "delivery_must_fail": failures,
        "api_request": _api_request(LICENSE_KEY),
    }


def render() -> str:
    return json.dumps(build_vectors(), indent=2, ensure_ascii=False) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help=f"write {VECTORS_PATH}")
    arguments = parser.parse_args()
    if arguments.write:
        VECTORS_PATH.parent.mkdir(parents=True, exist_ok=True)
        VECTORS_PATH.write_text(render(), encoding="utf-8")
        print(f"wrote {VECTORS_PATH}")
    else:
        sys.stdout.write(render())


if __name__ == "__main__":
    main()
