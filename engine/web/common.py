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
    return parse_model(model, parse_json(body))


def parse_json(body: bytes) -> object:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadRequestError(f"malformed JSON: {exc}") from None


def parse_model(model: type[M], data: object) -> M:
    """Data that is not the model is a 422 naming the fields."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ValidationFailedError(describe_validation_error(exc)) from None


def parse_call(model: type[M], body: object, query: dict[str, str], path: dict[str, str]) -> M:
    """A call's model from its JSON body (an object, or None for a call without one), its
    query and its path parameters; the body may not name a path parameter."""
    if body is not None and not isinstance(body, dict):
        raise ValidationFailedError("the body must be a JSON object")
    data: dict[str, object] = {**query, **(body or {})}
    named = sorted(set(data) & set(path))
    if named:
        raise ValidationFailedError(f"{', '.join(named)}: given in the path, not the body")
    return parse_model(model, {**data, **path})


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
