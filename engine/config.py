"""The engine's configuration: validated at load, errors that name file, line and field.

Portals, their open lines and connectors can come from the config file and from the admin
API; both end up in one ``Registry`` snapshot (see ``engine.registry``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

import phonenumbers
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, field_validator

from engine.errors import ConfigError
from engine.security.sealing import x25519_public_from_b64
from engine.yaml_marks import format_validation_error, parse_yaml_model

ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"


def _region_code(value: str) -> str:
    upper = value.upper()
    if upper not in phonenumbers.SUPPORTED_REGIONS:
        raise ValueError(f"{value!r} is not a two-letter country code phonenumbers knows (RU, DE)")
    return upper


Region = Annotated[str, AfterValidator(_region_code)]
"""An ISO 3166 country code for phone numbers written without one (docs/crm.md)."""


class ConfigModel(BaseModel):
    """Our own config: immutable, unknown fields are errors."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class LineConfig(ConfigModel):
    id: str = Field(pattern=ID_PATTERN, description="The open line's id, unique in its portal.")
    name: str = Field(default="", description="Human name of the line.")


class PortalConfig(ConfigModel):
    id: str = Field(pattern=ID_PATTERN, description="The portal's id.")
    endpoint: str = Field(
        pattern=r"^https?://", description="URL the engine POSTs sealed batches to."
    )
    public_key: str = Field(description="The portal's X25519 public key, base64url raw bytes.")
    license_key: str = Field(
        min_length=16, description="Shared secret the portal signs its API calls with."
    )
    queue: Literal["sequential", "parallel"] = Field(
        default="sequential",
        description="sequential: one batch in flight; parallel: `streams` batches at once.",
    )
    streams: int = Field(default=4, ge=1, le=64, description="Streams of a parallel queue.")
    delivery: Literal["guaranteed", "best_effort"] = Field(
        default="guaranteed",
        description="guaranteed: retry until ttl_s; best_effort: one attempt per batch.",
    )
    batch_max_events: int = Field(default=500, ge=1, le=10_000)
    linger_ms: int = Field(default=5, ge=0, le=60_000, description="Wait to fill a batch.")
    ttl_s: int = Field(default=86_400, ge=1, description="Retry until an event is this old.")
    retry_initial_s: float = Field(default=0.5, gt=0, description="First retry delay.")
    retry_max_s: float = Field(default=300.0, gt=0, description="Longest retry delay.")
    request_timeout_s: float = Field(default=10.0, gt=0)
    lines: tuple[LineConfig, ...] = Field(default=(), description="The portal's open lines.")
    default_region: Region | None = Field(
        default=None,
        description="Country of phone numbers written without a country code (CRM), e.g. RU.",
    )

    def line_ids(self) -> set[str]:
        return {line.id for line in self.lines}

    @field_validator("public_key")
    @classmethod
    def _sealable(cls, value: str) -> str:
        """Refused at load, with file and line: otherwise the first delivery fails to seal."""
        try:
            x25519_public_from_b64(value)
        except ConfigError as exc:
            raise ValueError(str(exc)) from None
        return value


class ConnectorConfig(ConfigModel):
    id: str = Field(pattern=ID_PATTERN, description="Connector id, part of its webhook URL.")
    channel: str = Field(description="Channel name, e.g. telegram or custom.")
    portal: str = Field(description="Id of the portal the connector belongs to.")
    line: str = Field(description="Id of the portal's open line that gets its dialogs.")
    credentials: dict[str, Any] = Field(description="The channel's own credentials model.")


class EngineConfig(ConfigModel):
    host: str = Field(default="127.0.0.1", description="Address the HTTP server binds.")
    port: int = Field(default=8080, ge=0, le=65535)
    public_url: str | None = Field(
        default=None, description="Base URL providers reach us at; default http://host:port."
    )
    data_dir: Path = Field(default=Path("data"), description="SQLite files, keys, Ray temp.")
    rules_dir: Path = Field(default=Path("routing_rules"), description="Routing rules YAML.")
    admin_token: str | None = Field(
        default=None, min_length=16, description="Bearer token of the admin API; none = off."
    )
    channel_actors: int = Field(default=2, ge=1, le=64, description="Ingest actors.")
    portal_pool_size: int = Field(
        default=0, ge=0, description="0: one Ray actor per portal; N: portals spread over N."
    )
    max_body_bytes: int = Field(default=1_048_576, ge=1024, description="Bigger gets 413.")
    media_max_bytes: int = Field(
        default=20 * 1024 * 1024,
        ge=1024,
        description="The largest customer file a media link serves (docs/channels/media.md).",
    )
    media_link_ttl_s: float = Field(
        default=3600, gt=0, le=7 * 86400, description="How long a media link works."
    )
    handoff_batch_max: int = Field(
        default=1000,
        ge=1,
        le=100_000,
        description="Records per call when a channel actor hands its intake to a portal actor.",
    )
    ray_address: str | None = Field(default=None, description="Join this cluster instead.")
    clock: Literal["system", "manual"] = Field(
        default="system", description="manual: time moves only through the test API."
    )
    portals: tuple[PortalConfig, ...] = ()
    connectors: tuple[ConnectorConfig, ...] = ()


def parse_engine_config(data: Any, source: str) -> EngineConfig:
    try:
        return EngineConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, source, None)) from None


def load_engine_config(path: Path) -> EngineConfig:
    """Read and validate the engine's YAML config; relative paths are taken from its folder."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config: {exc.strerror}") from None
    config = parse_yaml_model(EngineConfig, text, str(path), empty={})
    base = path.parent
    return config.model_copy(
        update={
            "data_dir": base / config.data_dir
            if not config.data_dir.is_absolute()
            else config.data_dir,
            "rules_dir": base / config.rules_dir
            if not config.rules_dir.is_absolute()
            else config.rules_dir,
        }
    )
