"""Bodies of the portal API: the calls about operators and dialogs (replies are in
``models``), refused whole when they do not validate (422 naming the field; unknown fields
too), and the engine key document the API answers with.
"""

from __future__ import annotations

from typing import Literal

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from pydantic import Field, model_validator

from engine.config import ID_PATTERN
from engine.models import Frozen
from engine.security.keys import ed25519_public_to_b64

OperatorId = Field(pattern=ID_PATTERN, description="An operator's id in the portal.")


class OperatorStatusRequest(Frozen):
    """``PUT /api/v1/operators/{operator_id}/status``: presence and work day."""

    status: Literal["online", "away", "offline", "vacation"] | None = Field(
        default=None, description="Presence; only online operators get new dialogs."
    )
    work_day: Literal["started", "ended"] | None = Field(
        default=None, description="Starting or ending the work day."
    )

    @model_validator(mode="after")
    def _something(self) -> OperatorStatusRequest:
        if self.status is None and self.work_day is None:
            raise ValueError("give status, work_day or both")
        return self


class OperatorAction(Frozen):
    """``POST /api/v1/dialogs/{dialog_id}/accept`` and ``/skip``: who acts."""

    operator_id: str = OperatorId


class FinishRequest(Frozen):
    """``POST /api/v1/dialogs/{dialog_id}/finish``."""

    operator_id: str | None = Field(
        default=None, pattern=ID_PATTERN, description="Who finished it, for the record."
    )


class ResponsibleRequest(Frozen):
    """``PUT .../customers/{connector_id}/{customer_id}/responsible``: CRM ownership."""

    operator_id: str | None = Field(
        pattern=ID_PATTERN, description="The responsible operator; null removes it."
    )


class EngineKeyDocument(Frozen):
    """``GET /api/v1/engine-key``: the key portals verify deliveries with (docs/protocol.md,
    "Engine public key"). Public, so served without a signature."""

    algorithm: Literal["Ed25519"] = Field(description="The signature scheme of v1a.")
    public_key: str = Field(
        pattern=r"^[A-Za-z0-9_-]{43}$",
        description="The raw 32-byte public key, base64url without padding.",
    )

    @classmethod
    def for_key(cls, public_key: Ed25519PublicKey) -> EngineKeyDocument:
        return cls(algorithm="Ed25519", public_key=ed25519_public_to_b64(public_key))
