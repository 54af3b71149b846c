"""The app-level notification Meta posts: ``{"object": ..., "entry": [...]}``.

One POST may batch entries for several pages, Instagram accounts or WhatsApp business
accounts, each with several events (docs/channels/facebook.md, "Webhook"). The envelope is
validated as a whole (a body that is not one is refused 422, and Meta retries it), but each
event inside is read on its own: one event the engine cannot read is ignored with its reason
and a 2xx, never failing the others, since Meta resends the whole batch on any error and
disables a webhook that keeps failing.
"""

from __future__ import annotations

import logging
from typing import Annotated, Any, TypeVar

import orjson
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from channels.webhook_body import decode_json, validate
from engine.errors import ValidationFailedError
from engine.validation import describe_validation_error

log = logging.getLogger(__name__)
ModelT = TypeVar("ModelT", bound=BaseModel)


def _id_string(value: Any) -> Any:
    """Meta ids are numeric strings, at times sent as JSON numbers; kept as strings (ids above
    2**53 would lose digits in a JavaScript portal). A boolean is not an id."""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value


MetaId = Annotated[str, BeforeValidator(_id_string), Field(min_length=1)]
"""A Meta id: a string, or an integer turned into its decimal string."""


class MetaModel(BaseModel):
    """Base of the provider's models: frozen, tolerant of fields Meta adds over time."""

    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True)


class MetaChange(MetaModel):
    """One ``changes[]`` item: the webhook field it belongs to and its value."""

    field: str
    value: dict[str, Any]


class MetaEntry(MetaModel):
    """One entry: the page, Instagram account or WhatsApp business account it is about."""

    id: MetaId
    time: int | None = Field(default=None, description="When Meta sent it (ms or s by product).")
    messaging: list[dict[str, Any]] = Field(default_factory=list)
    standby: list[dict[str, Any]] = Field(default_factory=list)
    changes: list[dict[str, Any]] = Field(default_factory=list)


class MetaNotification(MetaModel):
    """The whole POST body."""

    object: str
    entry: list[MetaEntry]


def read_notification(body: bytes, expected_object: str) -> tuple[MetaNotification, Any]:
    """The verified body as a notification about ``expected_object`` and its decoded JSON.

    ``BadRequestError`` (400) for a body that is not JSON, ``ValidationFailedError`` (422)
    for JSON that is not a notification or is about another object: a webhook URL of one
    product given another's subscription is a configuration error to show, not to ignore.
    """
    data = decode_json(body)
    if not isinstance(data, dict):
        raise ValidationFailedError(
            f"notification: expected a JSON object, got {type(data).__name__}"
        )
    notification = validate(MetaNotification, data, "notification")
    if notification.object != expected_object:
        raise ValidationFailedError(
            f"notification: object {notification.object!r}, this connector reads "
            f"{expected_object!r}"
        )
    return notification, data


def read_event(model: type[ModelT], data: Any, where: str) -> ModelT | None:
    """One event as ``model``; ``None`` (logged with what was wrong) when the model refuses
    it. The caller ignores it with the reason ``invalid_event:<kind>``: a short label for
    the counter, the detail in the log."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        log.warning("meta %s ignored: %s", where, describe_validation_error(exc, prefix=where))
        return None


def canonical(value: Any) -> bytes:
    """A stable byte form of a decoded value, for digests of event contents."""
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
