"""The widget end to end in a real browser (headless Chromium, ``browser_kit``): a host page
on 127.0.0.1 embeds it with one script tag; the visitor opens it, writes, agrees to the
processing of their data by the line's button, types (the portal hears it), reads the
operator's answer from the portal API, reloads and finds the history, writes while offline
and is delivered once when back, and rates the dialog. The keyboard alone drives it, and
axe-core finds nothing wrong."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from axe_playwright_python.async_playwright import Axe
from playwright.async_api import Browser, Locator, Page, expect

from channels.widget.config import VISITOR_TYPING_EVERY_S
from engine.clock import ManualClock
from tests.engine.one_process import Served
from tests.engine.web_kit import portal_call
from tests.engine.widget.browser_kit import (
    HostPage,
    Screenshots,
    serve_https_pictures,
    solid_png,
    start_host_page,
)
from tests.engine.widget.widget_kit import WIDGET_ID, serve_widget, widget_connector
from tests.standins.portal import PortalStandIn

LINE_RULES = {
    "p1-support.yaml": orjson.dumps(
        {
            "portal": "p1",
            "line": "support",
            "queue": {"members": [{"operator": "anna"}], "require_accept": False},
            "languages": {"default": "en", "supported": ["en"]},
            "messages": {
                "greeting": {"text": {"en": "Hello! This is Acme support 👋"}},
                "consent": {
                    "required_before_routing": True,
                    "text": {"en": "Do you agree to data processing?"},
                    "accept_label": {"en": "✅ I agree"},
                    "decline_label": {"en": "❌ No"},
                    "accepted_text": {"en": "Thank you!"},
                },
                "rating": {
                    "scale": "five",
                    "text": {"en": "Please rate us from 1 to 5."},
                    "thanks_text": {"en": "Thanks for the rating!"},
                },
            },
        }
    ).decode()
}


@pytest.fixture
async def host_page() -> AsyncIterator[HostPage]:
    page = await start_host_page()
    try:
        yield page
    finally:
        await page.stop()


@pytest.fixture
async def engine(
    tmp_path: Path,
    clock: ManualClock,
    session: aiohttp.ClientSession,
    portal: PortalStandIn,
    host_page: HostPage,
) -> AsyncIterator[Served]:
    connectors = [
        widget_connector(
            origins=(host_page.origin,),
            form={"fields": ["name", "email"]},
            look={"accent_colour": "#0b6e4f"},
        )
    ]
    async with await serve_widget(
        tmp_path, clock, session, portal, connectors, LINE_RULES
    ) as running:
        portal.engine_public_key_b64 = running.engine.engine_key["public_key"]
        host_page.engine_url, host_page.widget_id = running.url, WIDGET_ID
        for path, body in (
            ("/api/v1/operators/anna/profile", {"display_name": "Anna"}),
            ("/api/v1/operators/anna/status", {"status": "online"}),
        ):
            status, answer = await portal_call(running, portal, "PUT", path, body)
            assert status == 200, answer
        yield running


@pytest.fixture
def screenshots(tmp_path: Path) -> Screenshots:
    return Screenshots(tmp_path / "screenshots")


def widget(page: Page) -> Locator:
    return page.locator("[data-openlines-widget]")


def log(page: Page) -> Locator:
    return page.get_by_role("log", name="Messages")


async def operator_says(served: Served, portal: PortalStandIn, dialog_id: str, text: str) -> None:
    status, body = await portal_call(
        served,
        portal,
        "POST",
        f"/api/v1/dialogs/{dialog_id}/messages",
        {"content": {"kind": "text", "text": text}, "operator_id": "anna"},
    )
    assert status == 202, body


async def write(page: Page, text: str) -> None:
    box = page.get_by_role("textbox", name="Type a message")
    await box.fill(text)
    await box.press("Enter")


def texts(portal: PortalStandIn) -> list[str]:
    return [e["data"]["content"].get("text", "") for e in portal.messages()]


AVATAR = "https://avatars.test/anna.png"
GONE_AVATAR = "https://avatars.test/gone.png"
LOADED = (
    "img => img.complete ? img.naturalWidth"
    " : new Promise(done => img.addEventListener('load', () => done(img.naturalWidth)))"
)
"""The avatar's width once it has loaded (0: it did not)."""


async def set_profile(served: Served, portal: PortalStandIn, avatar_url: str | None) -> None:
    body = {"display_name": "Anna Petrova", "avatar_url": avatar_url}
    status, answer = await portal_call(
        served, portal, "PUT", "/api/v1/operators/anna/profile", body
    )
    assert status == 200, answer


def sent_by(page: Page, text: str) -> Locator:
    """The operator's message with ``text`` and who sent it: one row."""
    return log(page).locator(".from-line", has_text=text)


async def test_a_visitor_chats_reloads_goes_offline_and_rates_in_a_real_browser(
    browser: Browser,
    engine: Served,
    portal: PortalStandIn,
    host_page: HostPage,
    screenshots: Screenshots,
    clock: ManualClock,
) -> None:
    context = await browser.new_context(viewport={"width": 900, "height": 720})
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    await page.goto(host_page.origin + "/")

    launcher = page.get_by_role("button", name="Open chat")
    await expect(launcher).to_be_visible()
    # The host page's styles stop at the shadow root: the button keeps the line's colour.
    colour = await launcher.evaluate("b => getComputedStyle(b).backgroundColor")
    assert colour == "rgb(11, 110, 79)"
    await screenshots.take(page, "widget-closed")
    await launcher.click()
    await expect(page.get_by_role("dialog", name="Chat with us")).to_be_visible()
    await screenshots.take(page, "widget-open")

    await write(page, "Hello from the browser! 🌱")
    await portal.wait_for(lambda p: "Hello from the browser! 🌱" in texts(p))
    # The line's greeting and consent request, with its buttons, come back live.
    await expect(log(page)).to_contain_text("Hello! This is Acme support 👋")
    await expect(log(page)).to_contain_text("Do you agree to data processing?")
    await page.get_by_role("button", name="✅ I agree").click()
    await expect(log(page)).to_contain_text("Thank you!")
    await portal.wait_for(lambda p: bool(p.of_types("dialog.assigned")))
    dialog_id = portal.messages()[0]["dialog"]["id"]

    # The visitor types: the portal hears it, once per window, not once per keystroke.
    typing_calls: list[str] = []
    page.on("request", lambda r: typing_calls.append(r.url) if r.url.endswith("/typing") else None)
    await clock.advance(VISITOR_TYPING_EVERY_S)
    box = page.get_by_role("textbox", name="Type a message")
    keys = "Is anyone there today"
    await box.press_sequentially(keys, delay=200)  # a person's pace: over 4 s
    await portal.wait_for(
        lambda p: any(e["data"]["kind"] == "typing" for e in p.of_types("channel."))
    )
    assert 1 <= len(typing_calls) <= 2 < len(keys), typing_calls
    await box.fill("")

    status, body = await portal_call(
        engine, portal, "POST", f"/api/v1/dialogs/{dialog_id}/typing", {"operator_id": "anna"}
    )
    assert status == 202, body
    typing = widget(page).get_by_text("The operator is typing…")
    await expect(typing).to_be_visible()
    await screenshots.take(page, "widget-typing")
    await operator_says(engine, portal, dialog_id, "Hi! How can I help?")
    await expect(log(page)).to_contain_text("Hi! How can I help?")
    await expect(typing).to_be_hidden()
    await screenshots.take(page, "widget-answered")

    # A reload: the same visitor, the whole conversation, each message once.
    await page.reload()
    await page.get_by_role("button", name="Open chat").click()
    await expect(log(page)).to_contain_text("Hi! How can I help?")
    await expect(log(page).get_by_text("Hello from the browser! 🌱")).to_have_count(1)

    # Offline: typed messages wait in the outbox, in order, and go once the network is back.
    await context.set_offline(True)
    await write(page, "typed while offline 1")
    await write(page, "typed while offline 2")
    await expect(page.get_by_role("status")).to_contain_text("You are offline")
    await expect(log(page).locator(".pending")).to_have_count(2)
    await screenshots.take(page, "widget-offline")
    await context.set_offline(False)
    await portal.wait_for(lambda p: "typed while offline 2" in texts(p))
    await expect(log(page).locator(".pending")).to_have_count(0)
    sent = texts(portal)
    assert sent.count("typed while offline 1") == 1 and sent.count("typed while offline 2") == 1
    assert sent.index("typed while offline 1") < sent.index("typed while offline 2")

    # The operator finishes; the rating request's buttons rate the dialog.
    status, body = await portal_call(
        engine, portal, "POST", f"/api/v1/dialogs/{dialog_id}/finish", {"operator_id": "anna"}
    )
    assert status == 200, body
    await expect(log(page)).to_contain_text("Please rate us from 1 to 5.")
    await screenshots.take(page, "widget-rating")
    await page.get_by_role("button", name="5", exact=True).click()
    await portal.wait_for(lambda p: bool(p.of_types("dialog.rated")))
    [rated] = portal.of_types("dialog.rated")
    assert rated["data"]["score"] == 5
    await expect(log(page)).to_contain_text("Thanks for the rating!")
    assert errors == []
    await context.close()


async def test_the_operators_name_and_avatar_stand_beside_their_message_with_a_fallback(
    browser: Browser,
    engine: Served,
    portal: PortalStandIn,
    host_page: HostPage,
    screenshots: Screenshots,
) -> None:
    context = await browser.new_context(viewport={"width": 900, "height": 720})
    asked = await serve_https_pictures(context, {AVATAR: solid_png(64, (11, 110, 79))})
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    await set_profile(engine, portal, AVATAR)
    await page.goto(host_page.origin + "/")
    await page.get_by_role("button", name="Open chat").click()
    await write(page, "Where is my order?")
    await page.get_by_role("button", name="✅ I agree").click()
    await portal.wait_for(lambda p: bool(p.of_types("dialog.assigned")))
    dialog_id = portal.messages()[0]["dialog"]["id"]

    await operator_says(engine, portal, dialog_id, "It ships today.")
    row = sent_by(page, "It ships today.")
    await expect(row).to_have_count(1)
    avatar = row.locator("img.avatar")
    await expect(avatar).to_have_attribute("src", AVATAR)
    await expect(avatar).to_have_attribute("alt", "Anna Petrova")
    assert await avatar.evaluate(LOADED) == 64
    await expect(row.locator(".sender")).to_have_text("Anna Petrova")
    message = row.locator(".msg.line")
    # The text as the operator wrote it: the name is beside it, not glued before it.
    assert await message.evaluate("m => m.lastChild.textContent") == "It ships today."
    # Beside: the avatar left of the message, level with it, at the size it was given.
    picture, bubble = await avatar.bounding_box(), await message.bounding_box()
    assert picture is not None and bubble is not None
    assert (picture["width"], picture["height"]) == (32, 32)
    assert picture["x"] + picture["width"] <= bubble["x"]
    assert bubble["y"] <= picture["y"] + picture["height"] <= bubble["y"] + bubble["height"] + 1
    # The line's own messages have no sender.
    await expect(log(page).locator(".from-line", has_text="Thank you!")).to_have_count(0)
    await screenshots.take(page, "widget-sender")

    # An avatar that cannot be loaded: the name's initials instead, nothing broken.
    await set_profile(engine, portal, GONE_AVATAR)
    await operator_says(engine, portal, dialog_id, "Anything else?")
    fallback = sent_by(page, "Anything else?")
    await expect(fallback.locator(".avatar.initials")).to_have_text("AP")
    await expect(fallback.locator("img")).to_have_count(0)
    await expect(fallback.locator(".sender")).to_have_text("Anna Petrova")
    assert GONE_AVATAR in asked
    await screenshots.take(page, "widget-sender-fallback")

    # A reload shows the same senders from the history.
    await page.reload()
    await page.get_by_role("button", name="Open chat").click()
    await expect(sent_by(page, "It ships today.").locator("img.avatar")).to_have_attribute(
        "src", AVATAR
    )
    await expect(sent_by(page, "Anything else?").locator(".avatar.initials")).to_have_text("AP")
    results = await Axe().run(page)
    assert results.violations_count == 0, results.generate_report()
    assert errors == []
    await context.close()


async def test_the_keyboard_alone_drives_the_widget_and_axe_finds_no_violation(
    browser: Browser, engine: Served, portal: PortalStandIn, host_page: HostPage
) -> None:
    page = await browser.new_page()
    await page.goto(host_page.origin + "/")
    launcher = page.get_by_role("button", name="Open chat")
    await expect(launcher).to_be_visible()
    # Tab order: the page's link, then the widget's button.
    await page.keyboard.press("Tab")
    await page.keyboard.press("Tab")
    await expect(launcher).to_be_focused()
    await page.keyboard.press("Enter")
    await expect(launcher).to_have_attribute("aria-expanded", "true")
    # Opening puts the focus in the form the line asks first, then the message box.
    await expect(page.get_by_role("textbox", name="Name")).to_be_focused()
    await page.keyboard.type("Ana")
    await page.keyboard.press("Tab")
    await expect(page.get_by_role("textbox", name="E-mail")).to_be_focused()
    await page.keyboard.type("ana@shop.pt")
    await page.keyboard.press("Enter")
    box = page.get_by_role("textbox", name="Type a message")
    await expect(box).to_be_focused()
    await page.keyboard.type("Written with the keyboard")
    await page.keyboard.press("Enter")
    await portal.wait_for(lambda p: "Written with the keyboard" in texts(p))
    customer = portal.messages()[-1]["data"]["customer"]
    assert (customer["name"], customer["email"]) == ("Ana", "ana@shop.pt")
    # Every control has its name and role.
    for role, name in (
        ("dialog", "Chat with us"),
        ("log", "Messages"),
        ("button", "Close chat"),
        ("button", "Send"),
        ("button", "Attach a file"),
        ("button", "Call me back"),
    ):
        await expect(page.get_by_role(role, name=name)).to_have_count(1)  # type: ignore[arg-type]
    results = await Axe().run(page)
    assert results.violations_count == 0, results.generate_report()
    # "Call me back": a request in the line with the number, from the keyboard too.
    toggle = page.get_by_role("button", name="Call me back")
    await toggle.focus()
    await page.keyboard.press("Enter")
    await expect(page.get_by_role("textbox", name="Phone")).to_be_focused()
    results = await Axe().run(page)
    assert results.violations_count == 0, results.generate_report()
    await page.keyboard.type("+351 912 345 678")
    await page.keyboard.press("Enter")
    await portal.wait_for(lambda p: p.messages()[-1]["data"]["extras"].get("request") == "callback")
    await expect(page.get_by_role("status")).to_contain_text("we will call you back")
    await page.keyboard.press("Escape")
    await expect(launcher).to_be_focused()
    await expect(launcher).to_have_attribute("aria-expanded", "false")
    await page.close()


INJECTIONS = (
    "<script>window.__pwned = 'script'</script>",
    "<img src=x onerror=\"window.__pwned = 'img'\">",
    '"><svg onload="window.__pwned = \'svg\'">',
)


async def test_script_injection_in_names_messages_and_file_names_stays_text(
    browser: Browser,
    engine: Served,
    portal: PortalStandIn,
    host_page: HostPage,
    tmp_path: Path,
    screenshots: Screenshots,
) -> None:
    page = await browser.new_page()
    await page.goto(host_page.origin + "/")
    await page.get_by_role("button", name="Open chat").click()
    await page.get_by_role("textbox", name="Name").fill(INJECTIONS[1])
    await page.get_by_role("button", name="Save").click()
    for attack in INJECTIONS:
        await write(page, attack)
    upload = tmp_path / (INJECTIONS[1].replace("/", "") + ".png")
    upload.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 32)
    await page.get_by_label("Attach a file").set_input_files(str(upload))
    await portal.wait_for(
        lambda p: any(e["data"]["content"]["kind"] == "image" for e in p.messages())
    )
    dialog_id = portal.messages()[0]["dialog"]["id"]
    for attack in INJECTIONS:
        await operator_says(engine, portal, dialog_id, attack)
    # Each as the visitor's text and the operator's; the name also in the form's message.
    for attack in INJECTIONS:
        shown = 3 if attack == INJECTIONS[1] else 2
        await expect(log(page).get_by_text(attack, exact=False)).to_have_count(shown)
    image = log(page).locator("img")
    await expect(image).to_have_count(1)
    assert "onerror" in (await image.get_attribute("alt") or "")  # the name, as text
    assert await page.evaluate("window.__pwned") is None
    assert (
        await widget(page).evaluate("w => w.shadowRoot.querySelectorAll('script, svg').length") == 0
    )
    await screenshots.take(page, "widget-injection")
    customer = portal.messages()[-1]["data"]["customer"]
    assert customer["name"] == INJECTIONS[1]  # stored as written; shown only as text
    await page.close()


async def test_the_chat_page_has_a_strict_policy_and_works_under_it(
    browser: Browser, engine: Served, portal: PortalStandIn
) -> None:
    page = await browser.new_page()
    violations: list[str] = []
    page.on(
        "console", lambda m: violations.append(m.text) if "Content Security" in m.text else None
    )
    response = await page.goto(f"{engine.url}/widget/{WIDGET_ID}/chat")
    assert response is not None
    policy = response.headers["content-security-policy"]
    assert "default-src 'none'" in policy and "script-src 'self'" in policy
    assert "unsafe-inline" not in policy and "unsafe-eval" not in policy
    header = page.get_by_role("heading", name="Chat with us")
    await expect(header).to_be_visible()
    colour: Any = await page.evaluate(
        "() => getComputedStyle(document.querySelector('[data-openlines-widget]')"
        ".shadowRoot.querySelector('header')).backgroundColor"
    )
    assert colour == "rgb(11, 110, 79)"  # styled under the policy (constructed stylesheets)
    await write(page, "from the chat page")
    await portal.wait_for(lambda p: "from the chat page" in texts(p))
    # An operator's avatar is an https picture on another host: the policy lets it load.
    await serve_https_pictures(page, {AVATAR: solid_png(64, (11, 110, 79))})
    await set_profile(engine, portal, AVATAR)
    await page.get_by_role("button", name="✅ I agree").click()
    await portal.wait_for(lambda p: bool(p.of_types("dialog.assigned")))
    dialog_id = portal.messages()[0]["dialog"]["id"]
    await operator_says(engine, portal, dialog_id, "Hello, chat page!")
    avatar = sent_by(page, "Hello, chat page!").locator("img.avatar")
    await expect(avatar).to_have_attribute("alt", "Anna Petrova")
    assert await avatar.evaluate(LOADED) == 64
    assert violations == []
    await page.close()
