"""The protocol test vectors (docs/protocol-vectors.json), the same bytes on every run.

What a portal author checks an implementation against (docs/protocol.md, "Test vectors"):
fixed keys, a delivery to open (the exact headers and body a portal receives, and the batch
inside), deliveries to refuse, an API call to sign the same way, and the engine key
document. Every key derives from a fixed label (``seed``) and every time is fixed; the
batch is the engine's own (``engine.protocol.sample_batch``), the headers and signatures
come from the engine's signing code (Ed25519 signatures are deterministic), and the body
is sealed by ``reference_seal`` with a fixed ephemeral key, since the engine's HPKE draws a
new one every time. The keys are published: never use them outside tests.
"""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from typing import Any, NamedTuple

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from engine.api_models import EngineKeyDocument, ReplyBody
from engine.models import OutboundText
from engine.protocol.reference_hpke import MODE_BASE, ReferenceSeal, reference_seal
from engine.protocol.sample_batch import BATCH_ID, OPERATOR_ID, PORTAL_ID, sample_plaintext
from engine.security.keys import ed25519_public_to_b64, raw_key_to_b64
from engine.security.sealing import AEAD_ID, KDF_ID, KEM_ID, PORTAL_ID_HEADER, batch_info
from engine.security.sealing import delivery_headers as signed_headers
from engine.security.webhook_signature import (
    api_request_payload,
    hmac_signature,
    signature_headers,
    signed_content,
)

VECTORS_PATH = Path("docs/protocol-vectors.json")
"""Where the vectors are published, from the repository's root."""

NOW_S = 1_800_000_000
"""The portal's clock when it checks them: the whole second the delivery was signed in."""
LICENSE_KEY = "lic_example_0123456789abcdef"
OTHER_PORTAL_ID = "portal_other"
OTHER_BATCH_ID = "bat_00000000000000000000000000000002"


def seed(label: str) -> bytes:
    """32 bytes fixed by a label: SHA-256 of ``openlines test vector: <label>``."""
    return hashlib.sha256(f"openlines test vector: {label}".encode()).digest()


def _delivery(
    engine_key: Ed25519PrivateKey,
    portal_public: bytes,
    sealed_for: tuple[str, str],
    sent_as: tuple[str, str],
    signed_at_s: int,
    flip_byte: int | None = None,
) -> tuple[dict[str, Any], ReferenceSeal]:
    """A delivery sealed for ``sealed_for`` (portal, batch), sent as ``sent_as``, signed."""
    plaintext = sample_plaintext(*sealed_for)
    seal = reference_seal(portal_public, seed("ephemeral key"), batch_info(*sealed_for), plaintext)
    body = bytearray(seal.sealed)
    if flip_byte is not None:
        body[flip_byte] ^= 0x01
    portal_id, batch_id = sent_as
    delivery = {
        "headers": signed_headers(portal_id, batch_id, bytes(body), engine_key, signed_at_s),
        "body_base64": base64.b64encode(bytes(body)).decode(),
        "plaintext": plaintext.decode(),
    }
    return delivery, seal


class _Refused(NamedTuple):
    """A delivery a portal must refuse, and a phrase its error message contains."""

    case: str
    phrase: str
    sealed_for: tuple[str, str]
    sent_as: tuple[str, str]
    signed_after_s: int = 0
    flip_byte: int | None = None


def _failures(engine_key: Ed25519PrivateKey, portal_public: bytes) -> list[dict[str, Any]]:
    this, other_batch = (PORTAL_ID, BATCH_ID), (PORTAL_ID, OTHER_BATCH_ID)
    other_portal = (OTHER_PORTAL_ID, BATCH_ID)
    refused = [
        _Refused(
            "signed 301 s before now_s: outside the 300 s tolerance", "tolerance", this, this, -301
        ),
        _Refused(
            f"sealed for batch {OTHER_BATCH_ID}, sent as this batch",
            "does not open",
            other_batch,
            this,
        ),
        _Refused(
            f"sealed for portal {OTHER_PORTAL_ID} (to this portal's key)",
            "does not open",
            other_portal,
            this,
        ),
        _Refused(
            f"{PORTAL_ID_HEADER} names portal {OTHER_PORTAL_ID}",
            "does not name portal",
            this,
            other_portal,
        ),
        _Refused(
            "byte 40 of the sealed body flipped, then signed",
            "does not open",
            this,
            this,
            flip_byte=40,
        ),
    ]
    return [
        {"case": r.case, "error_contains": r.phrase, "now_s": NOW_S}
        | _delivery(
            engine_key,
            portal_public,
            r.sealed_for,
            r.sent_as,
            NOW_S + r.signed_after_s,
            r.flip_byte,
        )[0]
        for r in refused
    ]


def _api_request(dialog_id: str) -> dict[str, Any]:
    """An operator's reply in the sample dialog, signed as a portal signs API calls."""
    method, path = "POST", f"/api/v1/dialogs/{dialog_id}/messages"
    # The body the API takes (``ReplyBody``), not the stored ``ReplyRequest``: that one has
    # fields the engine fills in (keyboard, sender) which a portal's call may not carry.
    reply = ReplyBody(
        content=OutboundText(text="Добрый день! Заказ в пути 🚚"),
        client_id="reply-0001",
        operator_id=OPERATOR_ID,
    )
    body = reply.model_dump_json().encode()
    message_id = "msg_00000000000000000000000000000001"
    payload = api_request_payload(method, path, body)
    signature = hmac_signature(LICENSE_KEY.encode(), message_id, NOW_S, payload)
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
    batch = json.loads(delivery["plaintext"])
    return {
        "about": "Open Lines protocol test vectors, see docs/protocol.md. Public keys: test only.",
        "generator": "openlines protocol vectors --write",
        "schema": "docs/schema/openlines-events.schema.json",
        "keys": {
            "portal_id": PORTAL_ID,
            "portal_private_key": raw_key_to_b64(portal_key.private_bytes_raw()),
            "portal_public_key": raw_key_to_b64(portal_public),
            "engine_private_key": raw_key_to_b64(engine_key.private_bytes_raw()),
            "engine_public_key": ed25519_public_to_b64(engine_key.public_key()),
            "license_key": LICENSE_KEY,
        },
        "hpke": {
            "mode": MODE_BASE,
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
        "delivery": {"now_s": NOW_S, **delivery, "batch": batch},
        "delivery_must_fail": _failures(engine_key, portal_public),
        "api_request": _api_request(batch["events"][0]["dialog"]["id"]),
        "engine_key_document": EngineKeyDocument.for_key(engine_key.public_key()).model_dump(),
    }


def render_vectors() -> str:
    """The vectors as published: indented, UTF-8 text as it is (no ``\\u`` escapes)."""
    return json.dumps(build_vectors(), indent=2, ensure_ascii=False) + "\n"
