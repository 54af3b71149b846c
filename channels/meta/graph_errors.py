"""Graph API answers: a success's JSON object, or the error mapped to what the engine does.

Every Graph call (Messenger's and Instagram's Send API, comment replies, WhatsApp's
``/messages``, the set-up calls) fails with the same object,
``{"error": {"message", "type", "code", "error_subcode", "error_data", "fbtrace_id"}}``
(docs/channels/facebook.md, "Errors"). Throttling (codes 4, 17, 32, 613, WhatsApp's 130429,
131056, 80007) and Meta's transient failures are retryable, after the time Meta gives when
it gives one; everything else will not pass as it is and fails permanently, with Meta's
own words and, for the codes an operator meets, what they mean.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from channels.http_calls import HttpAnswer, json_object, retryable_status
from channels.http_calls import retry_after_s as http_retry_after_s
from engine.errors import PermanentSendError, RetryableSendError

THROTTLING_CODES = frozenset({4, 17, 32, 613, 80007, 130429, 131056, 131048})
"""Application, user, page and business-use-case request limits; WhatsApp's throughput,
pair and spam rate limits (docs/channels/facebook.md, "Errors")."""
TRANSIENT_CODES = frozenset({1, 2, 131000, 131016})
"""Unknown error, temporary failure, WhatsApp's "something went wrong" and "service
unavailable": Meta's advice is to retry."""

_EXPLAINED: dict[tuple[int, int | None], str] = {
    (10, 2018278): "outside the 24-hour messaging window: the customer writes first",
    (10, 2018065): "outside the messaging window for this message tag",
    (551, None): "this person isn't available right now (blocked the page or left)",
    (190, None): "the access token is invalid or expired: reconnect the channel",
    (200, None): "the token lacks a permission this call needs",
    (10, None): "the app lacks a permission this call needs",
    (100, None): "invalid parameter (often: no such recipient for this page)",
    (368, None): "the account is temporarily blocked for policy violations",
    (131047, None): "more than 24 hours since the customer last wrote: only a template passes",
    (131026, None): "undeliverable: not on WhatsApp, blocked the business, or an old app",
    (131051, None): "unsupported message type",
    (131053, None): "the media could not be uploaded",
    (131014, None): "WhatsApp could not fetch the media URL",
    (131009, None): "a parameter value is invalid",
    (132000, None): "the template's number of parameters does not match its configuration",
    (132001, None): "no such approved template in that language: check outside_window_template",
    (132018, None): "a template parameter has new lines, tabs or too many spaces",
    (10900, None): "this comment already has its one private reply",
    (10903, None): "this user cannot be replied to on this activity",
}


def graph_answer(what: str, answer: HttpAnswer) -> dict[str, Any]:
    """The JSON object of a successful call; raises the mapped send error otherwise.

    ``what`` names the call in the error (``"facebook send"``).
    """
    payload = json_object(what, answer.status, answer.body, answer.headers)
    error = payload.get("error")
    if answer.status < 300 and error is None:
        return payload
    if not isinstance(error, dict):
        message = f"{what}: HTTP {answer.status} without a Graph error object"
        if retryable_status(answer.status):
            raise RetryableSendError(message, retry_after_s(answer.headers))
        raise PermanentSendError(message)
    raise graph_error(what, answer.status, error, answer.headers)


def graph_error(
    what: str, status: int, error: dict[str, Any], headers: Mapping[str, str]
) -> RetryableSendError | PermanentSendError:
    """The send error for one Graph error object."""
    code = _int(error.get("code"))
    description = f"{what}: {describe(error)}"
    if code in THROTTLING_CODES or code in TRANSIENT_CODES or error.get("is_transient") is True:
        return RetryableSendError(description, retry_after_s(headers))
    if code is None and retryable_status(status):
        return RetryableSendError(description, retry_after_s(headers))
    return PermanentSendError(description)


def describe(error: dict[str, Any]) -> str:
    """One line: what the code means (when known), Meta's message, its details and codes."""
    code = _int(error.get("code"))
    subcode = _int(error.get("error_subcode"))
    parts = []
    meaning = explain(code, subcode)
    if meaning is not None:
        parts.append(meaning)
    parts.append(str(error.get("message") or "no message"))
    data = error.get("error_data")
    if isinstance(data, dict) and data.get("details"):
        parts.append(str(data["details"]))
    codes = f"code {code}" + (f"/{subcode}" if subcode is not None else "")
    trace = error.get("fbtrace_id")
    parts.append(f"[{codes}" + (f", fbtrace_id {trace}]" if trace else "]"))
    return ": ".join(parts[:-1]) + " " + parts[-1]


def explain(code: int | None, subcode: int | None) -> str | None:
    """What a code (and subcode) means to an operator, for the codes the reference names."""
    if code is None:
        return None
    return _EXPLAINED.get((code, subcode)) or _EXPLAINED.get((code, None))


def retry_after_s(headers: Mapping[str, str]) -> float | None:
    """When Meta says a throttled caller may try again, in seconds, or ``None``.

    ``Retry-After`` (seconds or an HTTP date, ``channels.http_calls.retry_after_s``) when
    it reads; else the longest ``estimated_time_to_regain_access`` (minutes) in
    ``X-Business-Use-Case-Usage``.
    """
    named = http_retry_after_s(headers)
    if named is not None:
        return named
    usage = headers.get("X-Business-Use-Case-Usage")
    if usage is None:
        return None
    try:
        decoded = orjson.loads(usage)
    except orjson.JSONDecodeError:
        return None
    minutes = [
        item.get("estimated_time_to_regain_access")
        for items in (decoded.values() if isinstance(decoded, dict) else ())
        if isinstance(items, list)
        for item in items
        if isinstance(item, dict)
    ]
    waits = [float(m) for m in minutes if isinstance(m, int | float) and not isinstance(m, bool)]
    longest = max(waits, default=0.0)
    return longest * 60 if longest > 0 else None


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None
