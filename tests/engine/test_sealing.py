"""Sealing to a portal's key, the delivery request, key encodings, and the engine key file.
(The protocol vectors are tested in test_protocol_vectors.py.)"""

from __future__ import annotations

import base64
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ec import SECP256R1, generate_private_key
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

from engine.api_models import EngineKeyDocument
from engine.errors import AuthError, ConfigError
from engine.protocol.reference_hpke import reference_seal
from engine.security.keys import (
    EngineSigningKey,
    ed25519_public_from_b64,
    ed25519_public_to_b64,
    generate_portal_keypair,
    load_or_create_signing_key,
)
from engine.security.sealing import (
    CONTENT_TYPE,
    ENC_BYTES,
    TAG_BYTES,
    batch_info,
    open_batch,
    seal_and_sign,
    seal_batch,
    x25519_private_from_b64,
    x25519_private_to_b64,
    x25519_public_from_b64,
    x25519_public_to_b64,
)
from engine.security.webhook_signature import verify_ed25519

PORTAL = "portal_a"
BATCH = "bat_1"
PLAINTEXT = b'{"portal_id":"portal_a","batch_id":"bat_1","events":[]}'
NOT_OPEN = "does not open for portal"


@pytest.fixture
def portal_key() -> X25519PrivateKey:
    return X25519PrivateKey.generate()


@pytest.fixture
def sealed(portal_key: X25519PrivateKey) -> bytes:
    return seal_batch(portal_key.public_key(), PORTAL, BATCH, PLAINTEXT)


# --- sealing ---------------------------------------------------------------------------------


def test_round_trip_and_layout(portal_key: X25519PrivateKey, sealed: bytes) -> None:
    assert open_batch(portal_key, PORTAL, BATCH, sealed) == PLAINTEXT
    assert len(sealed) == ENC_BYTES + len(PLAINTEXT) + TAG_BYTES
    assert PLAINTEXT not in sealed


def test_each_seal_uses_a_fresh_ephemeral_key(portal_key: X25519PrivateKey) -> None:
    first = seal_batch(portal_key.public_key(), PORTAL, BATCH, PLAINTEXT)
    second = seal_batch(portal_key.public_key(), PORTAL, BATCH, PLAINTEXT)
    assert first[:ENC_BYTES] != second[:ENC_BYTES]


def test_empty_plaintext_round_trips(portal_key: X25519PrivateKey) -> None:
    sealed = seal_batch(portal_key.public_key(), PORTAL, BATCH, b"")
    assert open_batch(portal_key, PORTAL, BATCH, sealed) == b""


def test_info_is_prefix_portal_nul_batch() -> None:
    assert batch_info("p", "b") == b"openlines/v1 batch\x00p\x00b"
    assert batch_info("портал", "b") == b"openlines/v1 batch\x00" + "портал".encode() + b"\x00b"


def test_wrong_private_key_does_not_open(sealed: bytes) -> None:
    with pytest.raises(AuthError, match=NOT_OPEN):
        open_batch(X25519PrivateKey.generate(), PORTAL, BATCH, sealed)


def test_wrong_portal_id_does_not_open(portal_key: X25519PrivateKey, sealed: bytes) -> None:
    with pytest.raises(AuthError, match="does not open for portal 'portal_b'"):
        open_batch(portal_key, "portal_b", BATCH, sealed)


def test_wrong_batch_id_does_not_open(portal_key: X25519PrivateKey, sealed: bytes) -> None:
    with pytest.raises(AuthError, match="sealed batch 'bat_2' does not open"):
        open_batch(portal_key, PORTAL, "bat_2", sealed)


def test_ids_shifted_across_the_separator_do_not_open(portal_key: X25519PrivateKey) -> None:
    sealed = seal_batch(portal_key.public_key(), "portal", "a_b", PLAINTEXT)
    with pytest.raises(AuthError, match=NOT_OPEN):
        open_batch(portal_key, "portal_a", "b", sealed)


@pytest.mark.parametrize(
    "position",
    [0, ENC_BYTES - 1, ENC_BYTES, ENC_BYTES + len(PLAINTEXT) - 1, -TAG_BYTES, -1],
    ids=["enc-first", "enc-last", "ct-first", "ct-last", "tag-first", "tag-last"],
)
def test_any_flipped_byte_does_not_open(
    portal_key: X25519PrivateKey, sealed: bytes, position: int
) -> None:
    tampered = bytearray(sealed)
    tampered[position] ^= 0x80
    with pytest.raises(AuthError, match=NOT_OPEN):
        open_batch(portal_key, PORTAL, BATCH, bytes(tampered))


def test_every_single_byte_is_covered(portal_key: X25519PrivateKey, sealed: bytes) -> None:
    for position in range(len(sealed)):
        tampered = bytearray(sealed)
        tampered[position] ^= 0x01
        with pytest.raises(AuthError, match=NOT_OPEN):
            open_batch(portal_key, PORTAL, BATCH, bytes(tampered))


def test_appended_or_removed_bytes_do_not_open(portal_key: X25519PrivateKey, sealed: bytes) -> None:
    for altered in (sealed + b"\x00", sealed[:-1], sealed[:ENC_BYTES] + sealed[ENC_BYTES + 1 :]):
        with pytest.raises(AuthError, match=NOT_OPEN):
            open_batch(portal_key, PORTAL, BATCH, altered)


@pytest.mark.parametrize("length", [0, 1, ENC_BYTES, ENC_BYTES + TAG_BYTES - 1])
def test_too_short_body_is_refused_with_its_length(
    portal_key: X25519PrivateKey, length: int
) -> None:
    with pytest.raises(AuthError, match=f"{length} bytes, shorter than enc and tag"):
        open_batch(portal_key, PORTAL, BATCH, bytes(length))


@pytest.mark.parametrize(("portal_id", "batch_id"), [("", BATCH), (PORTAL, ""), ("a\x00b", BATCH)])
def test_unbindable_ids_are_refused(
    portal_key: X25519PrivateKey, portal_id: str, batch_id: str
) -> None:
    with pytest.raises(ConfigError, match="must not"):
        seal_batch(portal_key.public_key(), portal_id, batch_id, PLAINTEXT)
    with pytest.raises(AuthError, match=r"sealed batch refused: .* must not"):
        open_batch(portal_key, portal_id, batch_id, bytes(100))


def test_low_order_public_key_cannot_be_sealed_to() -> None:
    with pytest.raises(ConfigError, match="unusable X25519 public key"):
        seal_batch(X25519PublicKey.from_public_bytes(bytes(32)), PORTAL, BATCH, PLAINTEXT)


def test_matches_an_independent_rfc9180_implementation(portal_key: X25519PrivateKey) -> None:
    """A body built step by step from RFC 9180 opens: the documented layout is the real one."""
    reference = reference_seal(
        portal_key.public_key().public_bytes_raw(),
        bytes(range(32)),
        batch_info(PORTAL, BATCH),
        PLAINTEXT,
    )
    assert reference.sealed[:ENC_BYTES] == reference.enc
    assert open_batch(portal_key, PORTAL, BATCH, reference.sealed) == PLAINTEXT


# --- the delivery request --------------------------------------------------------------------


def test_seal_and_sign_builds_a_verifiable_delivery(portal_key: X25519PrivateKey) -> None:
    engine_key = Ed25519PrivateKey.generate()
    headers, body = seal_and_sign(
        PORTAL, BATCH, PLAINTEXT, portal_key.public_key(), engine_key, 1_800_000_000
    )
    assert headers["content-type"] == CONTENT_TYPE
    assert headers["openlines-portal-id"] == PORTAL
    assert headers["webhook-id"] == BATCH
    assert headers["webhook-timestamp"] == "1800000000"
    assert headers["webhook-signature"].startswith("v1a,")
    signed = verify_ed25519(engine_key.public_key(), headers, body, now_s=1_800_000_000)
    assert signed.message_id == BATCH
    assert open_batch(portal_key, PORTAL, BATCH, body) == PLAINTEXT


def test_delivery_signature_covers_the_sealed_body(portal_key: X25519PrivateKey) -> None:
    engine_key = Ed25519PrivateKey.generate()
    headers, body = seal_and_sign(PORTAL, BATCH, PLAINTEXT, portal_key.public_key(), engine_key, 0)
    with pytest.raises(AuthError, match="no valid v1a signature"):
        verify_ed25519(engine_key.public_key(), headers, body[:-1] + b"\x00", now_s=0)
    with pytest.raises(AuthError, match="no valid v1a signature"):
        verify_ed25519(Ed25519PrivateKey.generate().public_key(), headers, body, now_s=0)


# --- key encodings ---------------------------------------------------------------------------


def test_x25519_keys_round_trip_through_b64() -> None:
    private_key = X25519PrivateKey.generate()
    private_text = x25519_private_to_b64(private_key)
    public_text = x25519_public_to_b64(private_key.public_key())
    assert len(private_text) == len(public_text) == 43
    assert "=" not in public_text
    restored = x25519_private_from_b64(private_text)
    assert restored.private_bytes_raw() == private_key.private_bytes_raw()
    assert x25519_public_from_b64(public_text).public_bytes_raw() == (
        private_key.public_key().public_bytes_raw()
    )
    assert x25519_public_from_b64(public_text + "=").public_bytes_raw() == (
        private_key.public_key().public_bytes_raw()
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "got 0 characters"),
        ("A" * 42, "got 42 characters"),
        ("A" * 44, "got 44 characters"),
        ("A" * 42 + "+", "got 43 characters"),  # standard base64, not base64url
        ("A" * 42 + "/", "got 43 characters"),
        ("A" * 41 + " A", "got 43 characters"),
        ("A" * 42 + "B", "non-canonical"),  # unused low bits set
    ],
)
def test_bad_key_text_is_a_config_error(text: str, message: str) -> None:
    for reader in (x25519_public_from_b64, x25519_private_from_b64, ed25519_public_from_b64):
        with pytest.raises(ConfigError, match=message):
            reader(text)


def test_key_error_never_quotes_the_key() -> None:
    secret_text = "s3cr3t" * 7
    with pytest.raises(ConfigError) as caught:
        x25519_private_from_b64(secret_text)
    assert secret_text not in str(caught.value)


def test_low_order_x25519_public_key_is_refused_at_load() -> None:
    zero_point = base64.urlsafe_b64encode(bytes(32)).decode()
    with pytest.raises(ConfigError, match="low-order point"):
        x25519_public_from_b64(zero_point)


def test_ed25519_public_key_round_trips_and_verifies() -> None:
    private_key = Ed25519PrivateKey.generate()
    restored = ed25519_public_from_b64(ed25519_public_to_b64(private_key.public_key()))
    restored.verify(private_key.sign(b"x"), b"x")


def test_generated_portal_keypair_seals_and_opens() -> None:
    private_text, public_text = generate_portal_keypair()
    assert private_text != generate_portal_keypair()[0]
    sealed = seal_batch(x25519_public_from_b64(public_text), PORTAL, BATCH, PLAINTEXT)
    assert open_batch(x25519_private_from_b64(private_text), PORTAL, BATCH, sealed) == PLAINTEXT


# --- the engine signing key file -------------------------------------------------------------


def test_signing_key_is_created_once_then_reloaded(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "engine_ed25519.pem"
    first = load_or_create_signing_key(path)
    second = load_or_create_signing_key(path)
    assert first.private_bytes_raw() == second.private_bytes_raw()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
    assert sorted(item.name for item in path.parent.iterdir()) == ["engine_ed25519.pem"]


def test_signing_keys_in_different_files_differ(tmp_path: Path) -> None:
    first = load_or_create_signing_key(tmp_path / "a.pem")
    second = load_or_create_signing_key(tmp_path / "b.pem")
    assert first.private_bytes_raw() != second.private_bytes_raw()


def test_existing_key_file_is_never_replaced(tmp_path: Path) -> None:
    path = tmp_path / "engine.pem"
    original = Ed25519PrivateKey.generate()
    path.write_bytes(
        original.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    assert load_or_create_signing_key(path).private_bytes_raw() == original.private_bytes_raw()


def test_corrupt_key_file_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "engine.pem"
    path.write_bytes(b"-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n")
    with pytest.raises(ConfigError, match=r"engine\.pem: not an unencrypted PEM PKCS8"):
        load_or_create_signing_key(path)


def test_key_file_of_another_algorithm_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "engine.pem"
    path.write_bytes(
        generate_private_key(SECP256R1()).private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    with pytest.raises(ConfigError, match="expected an Ed25519 key, found"):
        load_or_create_signing_key(path)


def test_engine_key_document_publishes_the_public_half(tmp_path: Path) -> None:
    key = EngineSigningKey.load_or_create(tmp_path / "engine.pem")
    document = EngineKeyDocument.for_key(key.private_key.public_key())
    assert document.algorithm == "Ed25519"
    assert document.public_key == key.public_key_b64
    public_key = ed25519_public_from_b64(document.public_key)
    public_key.verify(key.private_key.sign(b"x"), b"x")
    assert "private_key" not in repr(key)
