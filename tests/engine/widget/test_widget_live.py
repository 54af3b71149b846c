"""A visitor's conversation through the widget, in one process without Ray and without a
browser: the visitor is an aiohttp client (as the widget's script is), the operator the
portal stand-in calling the signed portal API (docs/channels/widget.md)."""

from __future__ import annotations

import orjson

from tests.engine.one_process import Served
from tests.engine.web_kit import portal_call, post_update, update
from tests.engine.widget.widget_kit import VisitorClient, connect_live
from tests.standins.portal import PortalStandIn


async def reply(served: Served, portal: PortalStandIn, dialog_id: str, text: str) -> None:
    status, body = await portal_call(
        served,
        portal,
        "POST",
        f"/api/v1/dialogs/{dialog_id}/messages",
        {"content": {"kind": "text", "text": text}, "operator_id": "anna"},
    )
    assert status == 202, body


async def test_a_visitors_message_reaches_the_portal_and_the_reply_comes_back_live(
    widget_served: Served, portal: PortalStandIn
) -> None:
    visitor = await VisitorClient(widget_served).start()
    live = await connect_live(visitor)
    assert live.frames == [{"live": True, "after": 0}]

    status, body = await visitor.send("Hello, do you ship to Porto? 🚚", "c-1")
    assert status == 200 and body["client_id"] == "c-1"

    [event] = await portal.wait_for_events(1, "message.")
    assert event["data"]["content"] == {"kind": "text", "text": "Hello, do you ship to Porto? 🚚"}
    assert event["data"]["customer"]["channel_user_id"] == visitor.visitor_id
    assert event["dialog"]["channel"] == "widget"
    await reply(widget_served, portal, event["dialog"]["id"], "Yes, in two days.")
    [sent] = await portal.wait_for_events(1, "reply.")
    assert sent["type"] == "reply.sent"

    mine, answer = await live.until(2)
    assert (mine["from"], mine["client_id"], mine["seq"]) == ("visitor", "c-1", body["seq"])
    assert answer["from"] == "line" and answer["content"]["text"].endswith("Yes, in two days.")
    assert answer["seq"] > mine["seq"]
    await live.ws.close()


async def test_a_reload_gets_the_history_and_a_resume_only_what_it_missed(
    widget_served: Served, portal: PortalStandIn
) -> None:
    visitor = await VisitorClient(widget_served).start()
    await visitor.send("one", "c-1")
    [event] = await portal.wait_for_events(1, "message.")
    dialog_id = event["dialog"]["id"]
    await reply(widget_served, portal, dialog_id, "two")
    await portal.wait_for_events(1, "reply.")

    # A new tab (or a reload) with the token it kept: the same visitor, the whole history.
    again = await VisitorClient(widget_served).start(token=visitor.token)
    assert again.visitor_id == visitor.visitor_id
    tab = await connect_live(again)
    history = await tab.until(2)
    assert [e["content"]["text"].split()[-1] for e in history] == ["one", "two"]
    cursor = history[-1]["seq"]
    await tab.ws.close()

    # Offline meanwhile: a message and a reply; the resumed connection gets exactly those.
    await visitor.send("three", "c-2")
    await portal.wait_for_events(2, "message.")
    await reply(widget_served, portal, dialog_id, "four")
    await portal.wait_for_events(2, "reply.")
    resumed = await connect_live(again, after=cursor)
    missed = await resumed.until(2)
    assert [e["content"]["text"].split()[-1] for e in missed] == ["three", "four"]
    assert all(e["seq"] > cursor for e in missed)
    await resumed.ws.close()


async def test_a_message_sent_again_after_a_drop_is_stored_once(
    widget_served: Served, portal: PortalStandIn
) -> None:
    visitor = await VisitorClient(widget_served).start()
    first = await visitor.send("only once", "c-1")
    again = await visitor.send("only once", "c-1")
    assert first == again  # the same seq: the engine had it
    await visitor.send("next", "c-2")
    await portal.wait_for_events(2, "message.")
    texts = [e["data"]["content"]["text"] for e in portal.messages()]
    assert texts == ["only once", "next"]


async def test_one_visitor_never_reads_nor_writes_anothers_dialog(
    widget_served: Served, portal: PortalStandIn
) -> None:
    alice = await VisitorClient(widget_served).start()
    bob = await VisitorClient(widget_served).start()
    assert alice.token != bob.token and alice.visitor_id != bob.visitor_id
    bobs_live = await connect_live(bob)
    await alice.send("alice's secret", "c-1")
    await bob.send("bob's question", "c-1")  # the same client id: a different visitor
    await portal.wait_for_events(2, "message.")
    [bobs] = await bobs_live.until(1)
    assert bobs["content"]["text"] == "bob's question"
    # Two dialogs, each with its own customer.
    dialogs = {
        e["data"]["customer"]["channel_user_id"]: e["dialog"]["id"] for e in portal.messages()
    }
    assert set(dialogs) == {alice.visitor_id, bob.visitor_id}
    assert len(set(dialogs.values())) == 2
    # A token names its visitor and nobody else; one of another widget opens nothing here.
    other = await VisitorClient(widget_served, "other-widget-0002", "http://other.test").start()
    status, body = await VisitorClient(widget_served, token=other.token).send("x", "c-9")
    assert (status, body["error"]) == (401, "bad_token")
    await bobs_live.ws.close()


async def test_a_live_connection_with_a_bad_hello_is_closed_with_a_reason(
    widget_served: Served,
) -> None:
    visitor = await VisitorClient(widget_served).start()
    for hello in ({"token": "forged", "after": 0}, {"after": 0}, "not json"):
        ws = await widget_served.session.ws_connect(
            f"{widget_served.url}{visitor.base}/live", headers={"Origin": visitor.origin}
        )
        await ws.send_str(hello if isinstance(hello, str) else orjson.dumps(hello).decode())
        frame = await ws.receive(timeout=10)
        assert orjson.loads(frame.data)["error"] == "auth"
        closed = await ws.receive(timeout=10)
        assert closed.type.name in ("CLOSE", "CLOSED", "CLOSING")
        assert ws.close_code == 4401
        await ws.close()


async def test_call_me_back_asks_the_line_with_the_number_which_goes_to_the_crm(
    widget_served: Served, portal: PortalStandIn
) -> None:
    visitor = await VisitorClient(widget_served).start()
    status, body = await visitor.call(
        "/callback", {"client_id": "cb-1", "phone": "+351 912 345 678", "note": "after 18:00"}
    )
    assert status == 200, body
    [event] = await portal.wait_for_events(1, "message.")
    data = event["data"]
    assert data["content"]["text"] == "Please call me back: +351 912 345 678. after 18:00"
    assert data["extras"] == {"request": "callback", "callback_phone": "+351 912 345 678"}
    assert data["customer"]["phone"] == "+351 912 345 678"
    status, answer = await portal_call(
        widget_served, portal, "GET", f"/api/v1/dialogs/{event['dialog']['id']}"
    )
    assert status == 200, answer
    status, body = await visitor.call("/callback", {"client_id": "cb-2", "phone": "call me"})
    assert (status, body["error"]) == (422, "invalid_payload")


async def test_the_operators_typing_shows_live_and_a_closed_dialog_refuses_it(
    widget_served: Served, portal: PortalStandIn
) -> None:
    visitor = await VisitorClient(widget_served).start()
    live = await connect_live(visitor)
    await visitor.send("hello?", "c-1")
    [event] = await portal.wait_for_events(1, "message.")
    dialog = f"/api/v1/dialogs/{event['dialog']['id']}"
    status, body = await portal_call(
        widget_served, portal, "POST", f"{dialog}/typing", {"operator_id": "anna"}
    )
    assert (status, body) == (202, {"dialog_id": event["dialog"]["id"]})
    await reply(widget_served, portal, event["dialog"]["id"], "Here!")
    _, typing, answer = await live.until(3)
    assert typing["from"] == "typing" and typing["operator_id"] == "anna"
    assert answer["content"]["text"].endswith("Here!")
    await live.ws.close()
    status, body = await portal_call(widget_served, portal, "POST", f"{dialog}/typing", {})
    assert (status, body["error"]) == (422, "invalid_payload")
    await portal_call(widget_served, portal, "POST", f"{dialog}/finish", {"operator_id": "anna"})
    status, body = await portal_call(
        widget_served, portal, "POST", f"{dialog}/typing", {"operator_id": "anna"}
    )
    assert (status, body["error"]) == (409, "dialog_closed")


async def test_typing_in_a_channel_that_cannot_show_it_is_refused(
    served: Served, portal: PortalStandIn
) -> None:
    assert (await post_update(served, update(1, 42, "hi")))[0] == 200
    [event] = await portal.wait_for_events(1, "message.")
    status, body = await portal_call(
        served,
        portal,
        "POST",
        f"/api/v1/dialogs/{event['dialog']['id']}/typing",
        {"operator_id": "anna"},
    )
    assert (status, body["error"]) == (409, "typing_unsupported")


async def test_a_returning_visitor_is_recognised_by_token_and_on_a_new_device_by_email(
    widget_served: Served, portal: PortalStandIn
) -> None:
    first = await VisitorClient(widget_served).start()
    status, _ = await first.call("/details", {"client_id": "f-1", "email": "ana@shop.pt"})
    assert status == 200
    [opened] = await portal.wait_for_events(1, "message.")
    contact_id = opened["dialog"]["contact_id"]
    assert contact_id is not None
    # Another device: a new visitor, until the form names the same person.
    other_device = await VisitorClient(widget_served).start()
    assert other_device.visitor_id != first.visitor_id
    status, _ = await other_device.call("/details", {"client_id": "f-1", "email": "ana@shop.pt"})
    assert status == 200
    events = await portal.wait_for_events(2, "message.")
    assert events[1]["data"]["customer"]["channel_user_id"] == other_device.visitor_id
    assert events[1]["dialog"]["contact_id"] == contact_id
