"""Session-wide fixtures: one real local Ray for the whole test session, on loopback."""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tests.standins.portal import PortalStandIn
from tests.standins.telegram_api import TelegramApiStandIn

os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"


@pytest.fixture(scope="session")
def ray_session() -> Iterator[None]:
    """Starting Ray costs time: tests that need it share this one, the engine's own kind of
    node (actors/ray_node.py), the actors' output left in Ray's log files."""
    import ray

    from actors.ray_node import LocalRayNode
    from engine.runtime import kill_leftovers, remove_ray_temp_dir

    temp_dir = Path(tempfile.mkdtemp(prefix="olr-t-"))
    node = LocalRayNode(temp_dir, num_cpus=2, forward_logs=False)
    node.start()
    ray.init(address=node.address, logging_level=logging.ERROR, log_to_driver=False)
    try:
        yield
    finally:
        ray.shutdown()
        node.stop()
        kill_leftovers(temp_dir)
        remove_ray_temp_dir(temp_dir)


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
