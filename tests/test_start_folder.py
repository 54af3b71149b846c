"""``openlines run`` from any folder: the engine's processes import only the installed engine.

Ray puts the driver's working folder on its workers' import path; a folder holding another
``engine`` package once broke every actor at start.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.engine_proc import EngineProcess
from tests.custom_client import custom_connector
from tests.harness import engine_config_data
from tests.standins.portal import PortalStandIn

pytestmark = pytest.mark.slow


async def test_a_folder_holding_another_engine_package_changes_nothing(
    tmp_path: Path, portal: PortalStandIn
) -> None:
    elsewhere = tmp_path / "project"
    (elsewhere / "engine").mkdir(parents=True)
    (elsewhere / "engine" / "__init__.py").write_text(
        'raise ImportError("a stranger\'s engine package was imported")\n'
    )
    config = engine_config_data(tmp_path, [portal.portal_config()], [custom_connector()])
    engine = EngineProcess(config, tmp_path, cwd=elsewhere)
    await engine.start(timeout_s=120)
    try:
        health = await engine.metrics()
        assert health.get('openlines_actor_up{actor="registry"}') == 1.0
        assert not any("stranger" in line for line in engine.output)
    finally:
        assert await engine.stop() == 0
