from __future__ import annotations

import aiohttp
import pytest

from channels.http_calls import json_object, post, retryable_status
from engine.errors import PermanentSendError, RetryableSendError


@pytest.mark.parametrize(
    ("status", "retryable"), [(429, True), (500, True), (503, True), (400, False), (404, False)]
)
def test_only_throttling_and_server_errors_are_retryable_statuses(
    status: int, retryable: bool
) -> None:
    assert retryable_status(status) is retryable


@pytest.mark.parametrize("body", [b"<html>502</html>", b"[1, 2]", b"", b'"ok"'])
def test_a_body_that_is_not_a_json_object_is_refused(body: bytes) -> None:
    with pytest.raises(RetryableSendError, match=r"^api call: HTTP 502 with a non-JSON body$"):
        json_object("api call", 502, body)
    with pytest.raises(PermanentSendError, match=r"^api call: HTTP 404 with a non-JSON body$"):
        json_object("api call", 404, body)


def test_a_json_object_is_returned_whatever_the_status() -> None:
    assert json_object("api call", 400, b'{"ok": false}') == {"ok": False}


async def test_no_answer_is_retryable_and_hides_what_is_redacted(
    session: aiohttp.ClientSession,
) -> None:
    # An URL without a host: aiohttp's error quotes the URL, and with it the token.
    url = "http:///bot123:token/sendMessage"
    match = r"^telegram sendMessage: InvalidUrlClientError: http:///bot<bot_token>/sendMessage$"
    with pytest.raises(RetryableSendError, match=match):
        await post(
            session,
            url,
            what="telegram sendMessage",
            timeout_s=1,
            redact={"123:token": "<bot_token>"},
        )
