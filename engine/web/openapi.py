"""The portal API described where it is routed: each call is declared once, as an
``ApiCall`` that makes both its aiohttp route and its OpenAPI 3.1 operation, so the
description served at ``GET /api/v1/openapi.json`` cannot drift from the routes
(tests/engine/test_openapi.py checks the served document against the app's router).

Request bodies and query parameters come from the same pydantic models the handlers parse
with; a call model's fields named in the path are path parameters, the rest its body (or,
for a GET or DELETE, its query).
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from pydantic import BaseModel

from engine.security.sealing import PORTAL_ID_HEADER

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
PATH_PARAMETER = re.compile(r"\{(\w+)\}")
SCHEMAS = "#/components/schemas/{model}"

ERRORS: dict[int, str] = {
    400: "Malformed JSON, a bad query value, or a body that is not an object.",
    401: "Missing or wrong signature, unknown portal, stale timestamp or a replayed webhook-id.",
    404: "Unknown dialog, operator, line, connector, contact, lead or quick answer of this "
    "portal (another portal's are unknown too).",
    409: "The call makes no sense in the current state; `error` names why (e.g. "
    "dialog_closed, window_closed, at_capacity, already_pinned).",
    415: "The body is not application/json.",
    422: "The body or a value does not validate; `message` names the field.",
    503: "A part of the engine is restarting; retry after `Retry-After` seconds.",
}
SIGNED_ERRORS = (400, 401, 404, 409, 415, 422, 503)


@dataclass(frozen=True)
class Param:
    """A query parameter a call reads without a model."""

    name: str
    description: str
    type: str = "string"
    required: bool = False


@dataclass(frozen=True)
class ApiCall:
    method: str
    path: str
    handler: Handler
    summary: str
    model: type[BaseModel] | None = None
    """What the call's path, body or query parse into (fields named in the path are path
    parameters; the rest the JSON body, or the query of a GET or DELETE)."""
    query: tuple[Param, ...] = ()
    ok: int = 200
    answer: str = "The result, as JSON."
    signed: bool = True

    def route(self) -> web.RouteDef:
        return web.route(self.method, self.path, self.handler)

    def operation(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """This call's OpenAPI operation, and the schemas it refers to."""
        path_names = PATH_PARAMETER.findall(self.path)
        parameters: list[dict[str, Any]] = [
            {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
            for name in path_names
        ]
        schemas: dict[str, Any] = {}
        operation: dict[str, Any] = {"summary": self.summary, "operationId": self.handler.__name__}
        if self.model is not None:
            schema = self.model.model_json_schema(ref_template=SCHEMAS)
            schemas.update(schema.pop("$defs", {}))
            properties = {
                name: field
                for name, field in schema.get("properties", {}).items()
                if name not in path_names
            }
            required = [name for name in schema.get("required", []) if name in properties]
            if self.method in ("GET", "DELETE"):
                parameters += [
                    {
                        "name": name,
                        "in": "query",
                        "required": name in required,
                        "schema": field,
                    }
                    for name, field in properties.items()
                ]
            elif properties:
                body = {**schema, "properties": properties, "required": required}
                name = self.model.__name__
                schemas[name] = body
                operation["requestBody"] = {
                    "required": True,
                    "content": {
                        "application/json": {"schema": {"$ref": SCHEMAS.format(model=name)}}
                    },
                }
        parameters += [
            {
                "name": param.name,
                "in": "query",
                "required": param.required,
                "description": param.description,
                "schema": {"type": param.type},
            }
            for param in self.query
        ]
        if parameters:
            operation["parameters"] = parameters
        responses: dict[str, Any] = {str(self.ok): {"description": self.answer}}
        if self.signed:
            operation["security"] = [{"portalSignature": []}]
            for status in SIGNED_ERRORS:
                responses[str(status)] = {
                    "description": ERRORS[status],
                    "content": {
                        "application/json": {"schema": {"$ref": "#/components/schemas/Error"}}
                    },
                }
        operation["responses"] = responses
        return operation, schemas


SIGNATURE = (
    "Every call but this description and the engine key is signed with the portal's license "
    f'key (docs/protocol.md, "API calls"): header `{PORTAL_ID_HEADER}` names the portal; '
    "`webhook-id` is a fresh id per call (a replay is refused), `webhook-timestamp` integer "
    "Unix seconds within 5 minutes, and `webhook-signature` is `v1,` and the base64 "
    "HMAC-SHA256 of `webhook-id.webhook-timestamp.METHOD target\\nbody`, the target being "
    "the path and query byte for byte as sent."
)


def openapi_document(calls: Sequence[ApiCall]) -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    schemas: dict[str, Any] = {
        "Error": {
            "type": "object",
            "required": ["error", "message"],
            "properties": {
                "error": {"type": "string", "description": "The reason, a short code."},
                "message": {"type": "string", "description": "What went wrong, for a person."},
            },
            "additionalProperties": True,
        }
    }
    for call in calls:
        operation, used = call.operation()
        paths.setdefault(call.path, {})[call.method.lower()] = operation
        schemas.update(used)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Open Lines engine: portal API",
            "version": "1",
            "description": SIGNATURE,
        },
        "servers": [{"url": "/"}],
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "portalSignature": {
                    "type": "apiKey",
                    "in": "header",
                    "name": "webhook-signature",
                    "description": SIGNATURE,
                }
            },
        },
    }
