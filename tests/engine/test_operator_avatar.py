"""An operator's avatar: taken by the profile call only as a bounded ``https://`` URL (each
bad kind refused with 422 and its reason, the profile left as it was), returned with the
profile, and kept by the operator's stored state, which still loads when stored before
avatars existed (docs/routing.md, "Operators" and "Persona"). In one process, without Ray."""

from __future__ import annotations

import orjson
import pytest

from engine.routing.state import OperatorState, operator_from_json, operator_to_json
from tests.engine.one_process import Served
from tests.engine.web_kit import portal_call
from tests.standins.portal import PortalStandIn

PROFILE = "/api/v1/operators/anna/profile"
AVATAR = "https://cdn.example/anna.png"


async def test_the_profile_takes_returns_and_removes_an_avatar(
    served: Served, portal: PortalStandIn
) -> None:
    body = {"display_name": "Anna", "avatar_url": AVATAR}
    assert await portal_call(served, portal, "PUT", PROFILE, body) == (
        200,
        {"operator_id": "anna", **body},
    )
    # The call sets the whole profile: without avatar_url the operator has none.
    assert await portal_call(served, portal, "PUT", PROFILE, {"display_name": "Anna"}) == (
        200,
        {"operator_id": "anna", "display_name": "Anna", "avatar_url": None},
    )


@pytest.mark.parametrize(
    ("avatar", "reason"),
    [
        ("http://cdn.example/a.png", "an avatar URL must start with https://"),
        ("javascript:alert(1)", "an avatar URL must start with https://"),
        ("data:image/png;base64,AAAA", "an avatar URL must start with https://"),
        ("https://", "String should have at least 9 characters"),
        ("https:///a.png", "an avatar URL needs a host after https://"),
        ("https://u:p@cdn.example/a.png", "must not carry a user name or password"),
        ('https://cdn.example/a.png"><script>', "must not contain spaces, control characters"),
        ("https://cdn.example/a\n.png", "must not contain spaces, control characters"),
        ("https://cdn.example/" + "a" * 1000, "String should have at most 1000 characters"),
        (42, "Input should be a valid string"),
    ],
    ids=[
        "http",
        "javascript",
        "data",
        "bare-scheme",
        "no-host",
        "credentials",
        "markup",
        "newline",
        "too-long",
        "not-a-string",
    ],
)
async def test_a_bad_avatar_is_refused_with_its_reason_and_changes_nothing(
    served: Served, portal: PortalStandIn, avatar: object, reason: str
) -> None:
    good = {"display_name": "Anna", "avatar_url": AVATAR}
    assert (await portal_call(served, portal, "PUT", PROFILE, good))[0] == 200

    bad = {"display_name": "Boris", "avatar_url": avatar}
    status, answer = await portal_call(served, portal, "PUT", PROFILE, bad)
    assert (status, answer["error"]) == (422, "invalid_payload")
    assert "avatar_url" in answer["message"] and reason in answer["message"], answer
    # The profile is as it was: setting it again with the good body changes nothing visible.
    assert await portal_call(served, portal, "PUT", PROFILE, good) == (
        200,
        {"operator_id": "anna", **good},
    )


def test_an_operator_stored_before_avatars_loads_without_one() -> None:
    """The operators table holds each operator's state as JSON: a row written by an engine
    without avatars has no ``avatar_url`` key."""
    old = orjson.dumps(
        {
            "operator_id": "anna",
            "status": "online",
            "working": True,
            "last_assigned_at": 5.0,
            "status_since": 1.0,
            "display_name": "Anna",
        }
    )
    operator = operator_from_json(old)
    assert operator == OperatorState("anna", "online", True, 5.0, 1.0, "Anna", None)
    with_avatar = OperatorState("anna", display_name="Anna", avatar_url=AVATAR)
    assert operator_from_json(operator_to_json(with_avatar)) == with_avatar
