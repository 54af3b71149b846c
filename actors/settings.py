"""What every actor needs to know to start: picklable, derived from the engine config."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from actors.names import NAMESPACE
from engine.api_models import EngineKeyDocument
from engine.clock import Clock, ManualClock, SystemClock
from engine.config import EngineConfig
from engine.errors import ConfigError


@dataclass(frozen=True)
class ActorSettings:
    config: EngineConfig
    engine_key_pem: bytes
    clock_start_s: float
    namespace: str = NAMESPACE
    """Ray namespace of the engine's named actors (tests run several engines in one Ray)."""
    head_node_id: str = ""
    """The Ray node the engine was started on, when the cluster has more than one node
    (``actors.widget_log``); empty on one machine."""
    widget_homes: tuple[str, ...] = ()
    """Every node's home, on such a cluster (the head's is ``""``)."""

    @property
    def data_dir(self) -> Path:
        return self.config.data_dir

    def without_registry(self) -> ActorSettings:
        """These settings less the config file's portals and connectors.

        Only the registry reads those (it merges them into itself, in channel actor 0); every
        other part learns them from the registry, so it need not hold a second copy: with
        thousands of portals that copy is most of an actor's memory per portal.
        """
        config = self.config.model_copy(update={"portals": (), "connectors": ()})
        return replace(self, config=config)

    def signing_key(self) -> Ed25519PrivateKey:
        key = load_pem_private_key(self.engine_key_pem, password=None)
        if not isinstance(key, Ed25519PrivateKey):
            raise ConfigError("the engine's signing key is not an Ed25519 key")
        return key

    def engine_key_document(self) -> dict[str, str]:
        """The body of ``GET /api/v1/engine-key``."""
        return EngineKeyDocument.for_key(self.signing_key().public_key()).model_dump()

    def make_clock(self) -> Clock:
        if self.config.clock == "manual":
            return ManualClock(self.clock_start_s)
        return SystemClock()
