"""The portal API's OpenAPI description, served at ``GET /api/v1/openapi.json``, against
the routes the app really has (in one process, without Ray: tests/engine/one_process.py)."""

from __future__ import annotations

import re
from typing import Any

from jsonschema import Draft202012Validator

from engine.web.app import OPENAPI_PATH
from tests.engine.one_process import Served
from tests.engine.web_kit import portal_call
from tests.standins.portal import PortalStandIn

UNDOCUMENTED = {OPENAPI_PATH}
"""The description itself."""


def routed(app_routes: Any) -> set[tuple[str, str]]:
    found = set()
    for route in app_routes:
        info = route.resource.get_info() if route.resource is not None else {}
        path = info.get("path") or info.get("formatter")
        if path and path.startswith("/api/v1/") and route.method != "HEAD":
            found.add((route.method, path))
    return found


def resolve(document: dict[str, Any], ref: str) -> dict[str, Any]:
    node: Any = document
    for part in ref.removeprefix("#/").split("/"):
        node = node[part]
    assert isinstance(node, dict)
    return node


async def test_every_route_is_described_and_every_description_routed(served: Served) -> None:
    status, document = await served.request("GET", OPENAPI_PATH)
    assert status == 200 and document["openapi"] == "3.1.0"

    described = {
        (method.upper(), path)
        for path, operations in document["paths"].items()
        for method in operations
    }
    app = served.app
    assert described == routed(app.router.routes()) - {("GET", p) for p in UNDOCUMENTED}
    assert len(described) == 37  # the portal API (29), the CRM (7) and media links (1)


async def test_each_operation_names_its_parameters_body_errors_and_signature(
    served: Served,
) -> None:
    _, document = await served.request("GET", OPENAPI_PATH)
    for path, operations in document["paths"].items():
        in_path = set(re.findall(r"\{(\w+)\}", path))
        for method, operation in operations.items():
            params = operation.get("parameters", [])
            assert {p["name"] for p in params if p["in"] == "path"} == in_path, (method, path)
            body = operation.get("requestBody")
            if body is not None:
                schema = resolve(document, body["content"]["application/json"]["schema"]["$ref"])
                assert not in_path & set(schema["properties"]), (method, path)
            if path != "/api/v1/engine-key":
                assert operation["security"] == [{"portalSignature": []}]
                assert {"401", "404", "422", "503"} <= set(operation["responses"])
    for schema in document["components"]["schemas"].values():
        Draft202012Validator.check_schema(schema)
    decline = document["paths"]["/api/v1/dialogs/{dialog_id}/decline"]["post"]
    body = resolve(
        document, decline["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    )
    assert set(body["properties"]) == {"operator_id", "reason", "customer_text", "block"}
    assert body["required"] == ["reason"]
    history = document["paths"]["/api/v1/dialogs/{dialog_id}/history"]["get"]
    assert {p["name"] for p in history["parameters"] if p["in"] == "query"} == {"limit", "after"}
    stats = document["paths"]["/api/v1/stats"]["get"]
    names = {p["name"] for p in stats["parameters"] if p["in"] == "query"}
    assert names == {"from", "to", "line_id", "operator_id", "bucket"}
    assert (
        "HMAC-SHA256" in document["components"]["securitySchemes"]["portalSignature"]["description"]
    )


async def test_a_described_body_is_what_the_call_accepts(
    served: Served, portal: PortalStandIn
) -> None:
    """The profile call's described body, filled in, is taken; one field more is refused."""
    _, document = await served.request("GET", OPENAPI_PATH)
    profile = document["paths"]["/api/v1/operators/{operator_id}/profile"]["put"]
    schema = resolve(
        document, profile["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    )
    body = {"display_name": "Анна", "avatar_url": "https://cdn.example/anna.png"}
    assert set(body) == set(schema["properties"])

    status, answer = await portal_call(
        served, portal, "PUT", "/api/v1/operators/anna/profile", body
    )
    assert (status, answer) == (200, {"operator_id": "anna", **body})
    status, answer = await portal_call(
        served, portal, "PUT", "/api/v1/operators/anna/profile", {**body, "colour": "red"}
    )
    assert (status, answer["error"]) == (422, "invalid_payload")
