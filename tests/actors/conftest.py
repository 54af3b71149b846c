"""Fixtures for tests that run the engine's actors on the session's Ray."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.standins.portal import PortalStandIn
from tests.standins.telegram_api import TelegramApiStandIn


@pytest.fixture
async def portal() -> AsyncIterator[PortalStandIn]:
    stand_in = PortalStandIn.create("acme")
    await stand_in.start()
    yield stand_in
    await stand_in.stop()


@pytest.fixture
async def telegram() -> AsyncIterator[TelegramApiStandIn]:
    async with TelegramApiStandIn() as api:
        yield api
