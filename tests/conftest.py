"""Session-wide fixtures: one real local Ray for the whole test session, on loopback."""

from __future__ import annotations

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
    """``ray.init`` costs seconds: tests that need Ray share this one."""
    import ray

    from engine.runtime import kill_leftovers, remove_ray_temp_dir

    temp_dir = Path(tempfile.mkdtemp(prefix="olr-t-"))
    ray.init(
        include_dashboard=False,
        num_cpus=2,
        _temp_dir=str(temp_dir),
        _node_ip_address="127.0.0.1",
        logging_level="ERROR",
        log_to_driver=False,
    )
    try:
        yield
    finally:
        ray.shutdown()
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
