"""One Graph API call with a token, its answer mapped by ``graph_errors``.

The token goes in the ``Authorization`` header, never in the URL, so no error text or access
log quotes it.
"""

from __future__ import annotations

from typing import Any

import aiohttp
import orjson

from channels.http_calls import call, post
from channels.meta.graph_errors import graph_answer
from engine.errors import PermanentSendError


def answer_id(what: str, answer: dict[str, Any], key: str) -> str:
    """The id a successful call answered with (``message_id``, a new comment's ``id``)."""
    value = answer.get(key)
    if not isinstance(value, str) or not value:
        raise PermanentSendError(f"{what}: answer without {key}")
    return value


async def graph_post(
    session: aiohttp.ClientSession,
    url: str,
    *,
    token: str,
    body: dict[str, Any],
    what: str,
    timeout_s: float,
) -> dict[str, Any]:
    """POST ``body`` as JSON; the answer's object, or the mapped send error raised."""
    answer = await post(
        session,
        url,
        what=what,
        timeout_s=timeout_s,
        data=orjson.dumps(body),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    return graph_answer(what, answer)


async def graph_call(
    session: aiohttp.ClientSession,
    method: str,
    url: str,
    *,
    token: str,
    what: str,
    timeout_s: float,
    params: dict[str, str] | None = None,
) -> dict[str, Any]:
    """A GET or DELETE (the set-up calls); the answer's object, or the mapped error raised."""
    answer = await call(
        session,
        method,
        url,
        what=what,
        timeout_s=timeout_s,
        params=params,
        headers={"Authorization": f"Bearer {token}"},
    )
    return graph_answer(what, answer)
