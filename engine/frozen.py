"""The base of the engine's own models, in a module of its own so that models of every
layer (the universal message in ``engine.models``, the buttons in ``engine.buttons``) can
derive from it without importing each other."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Frozen(BaseModel):
    """Base of our own models: immutable, unknown fields refused."""

    model_config = ConfigDict(frozen=True, extra="forbid")
