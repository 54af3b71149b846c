"""Who the visitor sees sending an operator's reply: the widget shows a sender, so the line's
persona's name and avatar come with the live entry instead of a name before the text
(docs/channels/widget.md, "Sender"; docs/routing.md, "Persona"). In one process without Ray
and without a browser."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp

from engine.clock import ManualClock
from tests.engine.one_process import Served
from tests.engine.web_kit import portal_call
from tests.engine.widget.widget_kit import (
    RULES,
    WIDGET_ID,
    VisitorClient,
    connect_live,
    serve_widget,
    widget_connector,
)
from tests.standins.portal import PortalStandIn

ANNA = "https://cdn.example/anna.png"
LINE = "https://cdn.example/acme.png"


def rules_with(persona: str) -> dict[str, str]:
    (name, text), *_ = RULES.items()
    return {name: text + persona}


async def answered_live(served: Served, portal: PortalStandIn, text: str) -> list[dict[str, Any]]:
    """A visitor writes, Anna answers ``text``: the visitor's live entries, both."""
    visitor = await VisitorClient(served).start()
    live = await connect_live(visitor)
    await visitor.send("Hello?", "c-1")
    [event] = await portal.wait_for_events(1, "message.")
    status, body = await portal_call(
        served,
        portal,
        "POST",
        f"/api/v1/dialogs/{event['dialog']['id']}/messages",
        {"content": {"kind": "text", "text": text}, "operator_id": "anna"},
    )
    assert status == 202, body
    [sent] = await portal.wait_for_events(1, "reply.")
    assert sent["type"] == "reply.sent"
    entries = await live.until(2)
    await live.ws.close()
    again = await connect_live(await VisitorClient(served).start(token=visitor.token))
    history = await again.until(2)
    await again.ws.close()
    assert history == entries  # a reload shows the same sender: it is in the widget log
    return entries


async def set_profile(served: Served, portal: PortalStandIn, body: dict[str, Any]) -> None:
    status, answer = await portal_call(
        served, portal, "PUT", "/api/v1/operators/anna/profile", body
    )
    assert status == 200, answer


async def test_profile_persona_the_operators_name_and_avatar_beside_an_unprefixed_text(
    widget_served: Served, portal: PortalStandIn
) -> None:
    await set_profile(widget_served, portal, {"display_name": "Anna", "avatar_url": ANNA})
    mine, answer = await answered_live(widget_served, portal, "Yes, in two days.")
    assert "sender" not in mine  # the visitor's own message
    assert answer["from"] == "line"
    assert answer["sender"] == {"name": "Anna", "avatar_url": ANNA}
    assert answer["content"] == {
        "kind": "text",
        "text": "Yes, in two days.",
        "markup": "plain",  # the portal's BB-code is rendered for the page
    }


async def test_profile_persona_without_a_profile_shows_nobody(
    widget_served: Served, portal: PortalStandIn
) -> None:
    _, answer = await answered_live(widget_served, portal, "Hi")
    assert answer["sender"] is None and answer["content"]["text"] == "Hi"


async def test_line_name_persona_the_lines_name_and_avatar(
    tmp_path: Path, clock: ManualClock, session: aiohttp.ClientSession, portal: PortalStandIn
) -> None:
    persona = f"persona:\n  mode: line_name\n  name: Acme Support\n  avatar_url: {LINE}\n"
    async with await serve_widget(
        tmp_path, clock, session, portal, [widget_connector()], rules_with(persona)
    ) as served:
        portal.engine_public_key_b64 = served.engine.engine_key["public_key"]
        await set_profile(served, portal, {"display_name": "Anna", "avatar_url": ANNA})
        _, answer = await answered_live(served, portal, "Hi")
    assert answer["sender"] == {"name": "Acme Support", "avatar_url": LINE}
    assert answer["content"]["text"] == "Hi"


async def test_hidden_persona_neither_name_nor_avatar(
    tmp_path: Path, clock: ManualClock, session: aiohttp.ClientSession, portal: PortalStandIn
) -> None:
    async with await serve_widget(
        tmp_path,
        clock,
        session,
        portal,
        [widget_connector()],
        rules_with("persona:\n  mode: hidden\n"),
    ) as served:
        portal.engine_public_key_b64 = served.engine.engine_key["public_key"]
        await set_profile(served, portal, {"display_name": "Anna", "avatar_url": ANNA})
        _, answer = await answered_live(served, portal, "Hi")
    assert answer["sender"] is None and answer["content"]["text"] == "Hi"


async def test_the_chat_page_allows_https_pictures_and_nothing_else_wider(
    widget_served: Served,
) -> None:
    async with widget_served.session.get(
        f"{widget_served.url}/widget/{WIDGET_ID}/chat"
    ) as response:
        assert response.status == 200
        policy = response.headers["Content-Security-Policy"]
    directives = {part.split()[0]: part.split()[1:] for part in policy.split(";") if part.strip()}
    assert directives["img-src"] == ["'self'", "data:", "https:"]
    assert directives["default-src"] == ["'none'"]
    assert directives["script-src"] == ["'self'"]
    assert directives["connect-src"] == ["'self'"]
    assert directives["style-src"] == ["'self'"]


async def test_the_portals_bbcode_reaches_the_page_as_plain_text_with_its_links_spelled_out(
    widget_served: Served, portal: PortalStandIn
) -> None:
    text = "[b]Thanks[/b], see [url=https://shop.example/a]the order[/url] <b>as typed</b>"
    _, reply = await answered_live(widget_served, portal, text)
    assert reply["content"] == {
        "kind": "text",
        "text": "Thanks, see the order (https://shop.example/a) <b>as typed</b>",
        "markup": "plain",
    }
