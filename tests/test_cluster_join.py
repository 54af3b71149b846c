"""``openlines run --ray-address``: the engine joins a Ray cluster it did not start."""

from __future__ import annotations

from pathlib import Path

import aiohttp
import pytest
import ray

from bench.engine_proc import EngineProcess
from tests.custom_client import custom_connector, custom_message, signed_custom_request
from tests.harness import engine_config_data
from tests.standins.portal import PortalStandIn

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("ray_session")]


async def test_the_engine_joins_an_existing_cluster_and_leaves_it_running(
    tmp_path: Path, portal: PortalStandIn
) -> None:
    config = engine_config_data(
        tmp_path,
        [portal.portal_config()],
        [custom_connector()],
        ray_address=ray.get_runtime_context().gcs_address,
    )
    engine = EngineProcess(config, tmp_path)
    await engine.start()
    try:
        portal.engine_public_key_b64 = engine.engine_key
        body, headers = signed_custom_request([custom_message("c", 1, "via the cluster")])
        async with aiohttp.ClientSession() as session:
            url = f"{engine.base_url}/hooks/custom/shop"
            async with session.post(url, data=body, headers=headers) as response:
                assert response.status == 200
        [event] = await portal.wait_for_events(1, "message.")
        assert event["data"]["content"]["text"] == "via the cluster"
        assert [e["type"] for e in portal.events] == ["dialog.queued", "message.received"]
    finally:
        assert await engine.stop() == 0
    assert ray.is_initialized()
    assert ray.get(ray.put(41)) + 1 == 42, "the cluster the engine joined still works"
