"""The widget on a Ray cluster of two nodes on this machine: ``tests/actors/widget_cluster.py``
in a process of its own (this one has the session's Ray), with its own two-node cluster
(docs/channels/widget.md, "Across machines")."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

TIMEOUT_S = 240.0


def test_a_visitor_homed_on_the_second_node_is_served_through_both(tmp_path: Path) -> None:
    run = subprocess.run(
        [sys.executable, "-m", "tests.actors.widget_cluster", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        env={**os.environ, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"},
        check=False,
    )
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-4000:]
    assert "widget cluster: ok" in run.stdout
