"""Key material: the engine's Ed25519 signing key on disk, and raw keys as text for config.

Public and private keys travel in config and over the API as base64url of the raw 32 bytes,
without padding (as in JWK). Raw bytes rather than DER or PEM because every language's
X25519/Ed25519 library reads and writes raw bytes, and the text fits on one YAML line.
Decoding is strict (one canonical spelling per key), so two spellings of the same key cannot
both appear in config and be taken for different keys.

The engine's signing key lives in a PEM PKCS8 file. It is created on first start and read
on every later start; losing it means every portal must fetch the new public key.
"""

from __future__ import annotations

import base64
import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from engine.errors import ConfigError

RAW_KEY_BYTES = 32
KEY_FILE_MODE = 0o600
# 32 bytes are 43 base64 characters plus one "=" of padding, which we accept but never write.
_RAW_KEY_TEXT = re.compile(r"[A-Za-z0-9_-]{43}=?")


def raw_key_to_b64(raw: bytes) -> str:
    """Unpadded base64url of raw key bytes."""
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def raw_key_from_b64(text: str, what: str) -> bytes:
    """The 32 raw bytes spelled by ``text``; ``what`` names the key in the error message."""
    stripped = text.strip()
    # The message never quotes the text: it may be a private key.
    if not _RAW_KEY_TEXT.fullmatch(stripped):
        raise ConfigError(
            f"{what}: expected 43 base64url characters (A-Z a-z 0-9 - _) spelling 32 raw bytes,"
            f" got {len(stripped)} characters"
        )
    unpadded = stripped.rstrip("=")
    raw = base64.urlsafe_b64decode(unpadded + "=")
    # The last character carries two unused bits; refusing them set keeps one spelling per key.
    if raw_key_to_b64(raw) != unpadded:
        raise ConfigError(f"{what}: non-canonical base64url (unused low bits set)")
    return raw


def ed25519_public_to_b64(key: Ed25519PublicKey) -> str:
    """The engine's public key as it appears in ``GET /api/v1/engine-key`` and portal config."""
    return raw_key_to_b64(key.public_bytes_raw())


def ed25519_public_from_b64(text: str) -> Ed25519PublicKey:
    """Read an engine public key from config; ``ConfigError`` when it is not one."""
    raw = raw_key_from_b64(text, "Ed25519 public key")
    try:
        return Ed25519PublicKey.from_public_bytes(raw)
    except ValueError as error:
        raise ConfigError(f"Ed25519 public key: {error}") from None


@dataclass(frozen=True)
class EngineSigningKey:
    """The engine's Ed25519 key, with what portals need to know about it.

    Not picklable (cryptography keys are not): each actor that signs loads it from the key
    file rather than receiving it from another actor.
    """

    private_key: Ed25519PrivateKey = field(repr=False)

    @classmethod
    def load_or_create(cls, path: Path) -> EngineSigningKey:
        return cls(load_or_create_signing_key(path))

    @property
    def public_key_b64(self) -> str:
        return ed25519_public_to_b64(self.private_key.public_key())


def load_or_create_signing_key(path: Path) -> Ed25519PrivateKey:
    """Read the engine's signing key from ``path``, creating it (mode 0600) if missing.

    A new key is written to a temporary file in the same directory, flushed to disk, and
    then linked into place. The link fails if another process created the key in between,
    in which case that process's key is read: two engines starting together on one data
    directory end up with one key, and a crash never leaves a half-written key file.
    """
    if not path.exists():
        _create_signing_key(path)
    return _read_signing_key(path)


def _create_signing_key(path: Path) -> None:
    pem = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    # mkstemp creates the file with mode 0600, so the key is never readable by others.
    descriptor, temp_name = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(descriptor, "wb") as temp_file:
            temp_file.write(pem)
            temp_file.flush()
            os.fsync(temp_file.fileno())
        try:
            os.link(temp_name, path)
        except FileExistsError:
            return  # Another process won the race; its key is the one.
        _fsync_directory(path.parent)
    finally:
        os.unlink(temp_name)


def _fsync_directory(directory: Path) -> None:
    """Make the new directory entry durable, so the key survives a power loss."""
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _read_signing_key(path: Path) -> Ed25519PrivateKey:
    try:
        pem = path.read_bytes()
    except OSError as error:
        raise ConfigError(f"{path}: cannot read the engine signing key ({error})") from None
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError) as error:
        raise ConfigError(f"{path}: not an unencrypted PEM PKCS8 private key ({error})") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise ConfigError(f"{path}: expected an Ed25519 key, found {type(key).__name__}")
    return key


def generate_portal_keypair() -> tuple[str, str]:
    """A fresh X25519 key pair as ``(private_b64, public_b64)``, for config examples and tests.

    A real portal generates its pair itself and gives the engine only the public half.
    """
    private_key = X25519PrivateKey.generate()
    return (
        raw_key_to_b64(private_key.private_bytes_raw()),
        raw_key_to_b64(private_key.public_key().public_bytes_raw()),
    )
