"""Small pieces every HTTP handler shares: JSON in and out, with honest errors."""

from __future__ import annotations

from typing import TypeVar

import orjson
from aiohttp import web
from pydantic import BaseModel, ValidationError

from engine.errors import BadRequestError, UnsupportedMediaTypeError, ValidationFailedError
from engine.validation import describe_validation_error

M = TypeVar("M", bound=BaseModel)


def parse_json_model(model: type[M], body: bytes) -> M:
    """Malformed JSON is a 400, JSON that is not the model a 422 naming the fields."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadRequestError(f"malformed JSON: {exc}") from None
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ValidationFailedError(describe_validation_error(exc)) from None


def json_response(data: object, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(data), status=status, content_type="application/json")


async def json_body(request: web.Request) -> bytes:
    if request.content_type != "application/json":
        raise UnsupportedMediaTypeError("send the body as application/json")
    return await request.read()


def page_limit(request: web.Request, default: int, maximum: int) -> int:
    try:
        limit = int(request.query.get("limit", str(default)))
    except ValueError:
        raise BadRequestError("limit must be an integer") from None
    if not 1 <= limit <= maximum:
        raise BadRequestError(f"limit must be within 1..{maximum}")
    return limit
