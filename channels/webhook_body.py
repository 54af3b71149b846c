"""Reading a verified webhook body in the contract's order: JSON, then the provider's model.

Every channel refuses the two failures alike, so the engine answers them alike: a body that
is not JSON is a ``BadRequestError`` (400), JSON that is not the model a
``ValidationFailedError`` (422) naming the field, one line a provider's support can act on.
"""

from __future__ import annotations

from typing import Any, TypeVar

import orjson
from pydantic import BaseModel, ValidationError

from engine.errors import BadRequestError, ValidationFailedError
from engine.validation import describe_validation_error

ModelT = TypeVar("ModelT", bound=BaseModel)


def decode_json(body: bytes) -> Any:
    """The body's JSON value, whatever its type; the caller checks that it is an object."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadRequestError(f"malformed JSON: {exc}") from None


def validate(model: type[ModelT], data: Any, prefix: str | None = None) -> ModelT:
    """``data`` as ``model``; ``prefix`` names the part of the document it is (``update``)."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ValidationFailedError(describe_validation_error(exc, prefix=prefix)) from None
