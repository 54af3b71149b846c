"""Posting a sealed batch to a portal and reading what its answer means."""

from __future__ import annotations

from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Protocol

import aiohttp

from engine.clock import Clock


@dataclass(frozen=True, slots=True)
class DeliveryOutcome:
    accepted: bool
    status: int | None
    error: str = ""
    retry_after_s: float | None = None


class DeliveryTransport(Protocol):
    async def post(
        self, url: str, headers: dict[str, str], body: bytes, timeout_s: float
    ) -> DeliveryOutcome: ...


def parse_retry_after(value: str | None, now_s: float) -> float | None:
    """``Retry-After`` as seconds from now: delta-seconds or an HTTP date (RFC 9110)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - now_s)
    except (TypeError, ValueError):
        return None


class HttpTransport:
    """The real transport: one shared ``aiohttp.ClientSession`` per actor."""

    def __init__(self, session: aiohttp.ClientSession, clock: Clock) -> None:
        self._session = session
        self._clock = clock

    async def post(
        self, url: str, headers: dict[str, str], body: bytes, timeout_s: float
    ) -> DeliveryOutcome:
        try:
            async with self._session.post(
                url, data=body, headers=headers, timeout=aiohttp.ClientTimeout(total=timeout_s)
            ) as response:
                if 200 <= response.status < 300:
                    return DeliveryOutcome(True, response.status)
                text = (await response.text(errors="replace"))[:200]
                return DeliveryOutcome(
                    False,
                    response.status,
                    f"HTTP {response.status}: {text}",
                    parse_retry_after(response.headers.get("Retry-After"), self._clock.now()),
                )
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            return DeliveryOutcome(False, None, f"{type(exc).__name__}: {exc}")
