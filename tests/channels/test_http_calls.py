from __future__ import annotations

from email.utils import formatdate

import aiohttp
import pytest

from channels.http_calls import json_object, post, retry_after_s, retryable_status
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


NOW_S = 1_800_000_000.0


@pytest.mark.parametrize(
    ("headers", "expected_s"),
    [
        ({"Retry-After": "7"}, 7.0),
        ({"Retry-After": " 30 "}, 30.0),
        ({"Retry-After": "0"}, 0.0),
        # An HTTP date is read against the answer's Date (the server's clock) ...
        (
            {
                "Retry-After": formatdate(NOW_S + 3600 + 90, usegmt=True),
                "Date": formatdate(NOW_S + 3600, usegmt=True),
            },
            90.0,
        ),
        # ... else against the caller's clock; a date gone by is "at once".
        ({"Retry-After": formatdate(NOW_S + 45, usegmt=True)}, 45.0),
        ({"Retry-After": formatdate(NOW_S - 45, usegmt=True)}, 0.0),
        ({"Retry-After": formatdate(NOW_S + 45, usegmt=True), "Date": "garbage"}, 45.0),
        ({}, None),
        ({"Retry-After": "soon"}, None),
        ({"Retry-After": "-5"}, None),
        ({"Retry-After": ""}, None),
    ],
)
def test_retry_after_reads_seconds_or_an_http_date(
    headers: dict[str, str], expected_s: float | None
) -> None:
    assert retry_after_s(headers, NOW_S) == expected_s


def test_a_non_json_throttling_page_carries_its_retry_after() -> None:
    with pytest.raises(RetryableSendError) as caught:
        json_object("api call", 429, b"<html>429</html>", {"Retry-After": "12"})
    assert caught.value.retry_after_s == 12.0
