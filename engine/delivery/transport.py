"""Posting a sealed batch to a portal and reading what its answer means."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import aiohttp

from engine.clock import Clock
from engine.delivery.retry import parse_retry_after


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
