"""What every Meta channel shares: the GET handshake and the app-level webhook's split."""

from __future__ import annotations

import orjson
import pytest

from channels.base import RawRequest
from channels.meta.facebook import FacebookChannel, FacebookCredentials
from channels.meta.whatsapp import WhatsAppChannel
from engine.errors import BadRequestError, ForbiddenError, ValidationFailedError
from tests.channels.conftest import route_for
from tests.standins.meta_api import (
    APP_SECRET,
    FEED_PAGE_ID,
    PAGE_ID,
    PAGE_TOKEN,
    PHONE_NUMBER_ID,
    VERIFY_TOKEN,
    changes_entry,
    encode,
    messaging_entry,
    notification,
    recorded,
    recorded_json,
)


def page(page_id: str = PAGE_ID, **extra: object) -> FacebookChannel:
    fields = {
        "app_secret": APP_SECRET,
        "verify_token": VERIFY_TOKEN,
        "page_id": page_id,
        "page_access_token": PAGE_TOKEN,
    }
    credentials = FacebookCredentials.model_validate({**fields, **extra})
    return FacebookChannel(route_for("facebook"), credentials)


def get(query: dict[str, str]) -> RawRequest:
    return RawRequest("GET", "/hooks/facebook", {}, query, b"")


def post(body: bytes) -> RawRequest:
    return RawRequest("POST", "/hooks/facebook", {}, {}, body)


def test_handshake_answers_the_raw_challenge_for_our_verify_token() -> None:
    query = {
        "hub.mode": "subscribe",
        "hub.challenge": "1158201444",
        "hub.verify_token": VERIFY_TOKEN,
    }
    reply = page().handshake(get(query))
    assert (reply.status, reply.body) == (200, b"1158201444")


@pytest.mark.parametrize(
    ("query", "error", "match"),
    [
        (
            {"hub.mode": "subscribe", "hub.challenge": "1", "hub.verify_token": "guess"},
            ForbiddenError,
            "not this connector's verify token",
        ),
        ({"hub.mode": "subscribe", "hub.challenge": "1"}, ForbiddenError, "verify token"),
        ({"hub.mode": "unsubscribe", "hub.challenge": "1"}, BadRequestError, "not a subscription"),
        ({}, BadRequestError, "not a subscription"),
    ],
)
def test_handshake_refusals(query: dict[str, str], error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        page().handshake(get(query))


def test_a_page_batch_splits_by_page_and_kind_in_order() -> None:
    text_event = recorded_json("fb_text.json")["entry"][0]["messaging"][0]
    comment = recorded_json("fb_feed_comment.json")["entry"][0]["changes"][0]["value"]
    mixed = {**messaging_entry(PAGE_ID, text_event), "changes": [{"field": "feed", "value": {}}]}
    body = encode(
        notification(
            "page",
            mixed,
            changes_entry(FEED_PAGE_ID, "feed", comment),
            messaging_entry(PAGE_ID, text_event),
        )
    )
    parts = FacebookChannel.split_app_webhook(post(body))
    assert [part.routing_id for part in parts] == [
        PAGE_ID,
        f"{PAGE_ID}/comments",
        f"{FEED_PAGE_ID}/comments",
    ]
    first = orjson.loads(parts[0].request.body)
    assert first["object"] == "page"
    assert [list(entry) for entry in first["entry"]] == [["id", "time", "messaging"]] * 2
    assert page().routing_ids == {PAGE_ID}
    both = page(FEED_PAGE_ID, receive=("messages", "comments"))
    assert both.routing_ids == {FEED_PAGE_ID, f"{FEED_PAGE_ID}/comments"}
    assert page().verification_key == both.verification_key != page(app_secret="x").verification_key


def test_whatsapp_splits_by_phone_number_id() -> None:
    body = recorded_json("wa_text.json")
    other = recorded_json("wa_other_number.json")["entry"][0]["changes"][0]
    body["entry"][0]["changes"].append(other)
    parts = WhatsAppChannel.split_app_webhook(post(encode(body)))
    assert [part.routing_id for part in parts] == [PHONE_NUMBER_ID, "999888777666555"]


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (b"<html>", BadRequestError),
        (b'{"object": "page"}', ValidationFailedError),
        (b'{"object": "page", "entry": [{"time": 1}]}', ValidationFailedError),
        (b'{"object": "page", "entry": ["x"]}', ValidationFailedError),
    ],
)
def test_bodies_that_cannot_be_split_are_refused(body: bytes, error: type[Exception]) -> None:
    with pytest.raises(error):
        FacebookChannel.split_app_webhook(post(body))


def test_the_recorded_instagram_bytes_split_by_account() -> None:
    parts = FacebookChannel.split_app_webhook(post(recorded("ig_comment.json")))
    assert [part.routing_id for part in parts] == ["17841430541631416/comments"]
