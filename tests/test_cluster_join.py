"""``openlines run --ray-address``: the engine joins a Ray cluster it did not start."""

from __future__ import annotations

from pathlib import Path

import aiohttp
import pytest
import ray
import yaml

from tests.custom_client import custom_connector, custom_message, signed_custom_request
from tests.engine_process import EngineProcess, engine_key
from tests.harness import ADMIN_TOKEN, free_port
from tests.standins.portal import PortalStandIn

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("ray_session")]


async def test_the_engine_joins_an_existing_cluster_and_leaves_it_running(
    tmp_path: Path, portal: PortalStandIn
) -> None:
    port = free_port()
    (tmp_path / "rules").mkdir()
    config = {
        "port": port,
        "data_dir": str(tmp_path / "data"),
        "rules_dir": str(tmp_path / "rules"),
        "admin_token": ADMIN_TOKEN,
        "ray_address": ray.get_runtime_context().gcs_address,
        "portals": [portal.portal_config()],
        "connectors": [custom_connector()],
    }
    config_path = tmp_path / "engine.yaml"
    config_path.write_text(yaml.safe_dump(config))
    engine = EngineProcess(config_path)
    await engine.start()
    try:
        portal.engine_public_key_b64 = await engine_key(port)
        body, headers = signed_custom_request([custom_message("c", 1, "via the cluster")])
        async with aiohttp.ClientSession() as session:
            url = f"http://127.0.0.1:{port}/hooks/custom/shop"
            async with session.post(url, data=body, headers=headers) as response:
                assert response.status == 200
        [event] = await portal.wait_for_events(1)
        assert event["data"]["content"]["text"] == "via the cluster"
    finally:
        assert await engine.terminate() == 0
    assert ray.is_initialized()
    assert ray.get(ray.put(41)) + 1 == 42, "the cluster the engine joined still works"
