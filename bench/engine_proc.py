"""The engine as a real ``openlines run`` subprocess, and what it costs.

Benchmarks measure it; the tests that kill or stop the engine drive it the same way.

CPU and memory are read for the whole process tree (driver, GCS, raylet, every actor's
worker, Ray's agents) and grouped by role, so a figure can be traced to the part that
spends it.
"""

from __future__ import annotations

import asyncio
import re
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import psutil

LISTENING = re.compile(r"openlines: listening on (http://[\w.\-]+:\d+)")
"""The driver's line naming its URL. Only the URL is read: Ray's thread that forwards
worker logs to the driver's stdout can write between ``print``'s text and its newline,
so a worker's log line may be glued to the end of this one."""

ROLES = (
    "ChannelActor",
    "PortalActor",
    "raylet",
    "gcs_server",
    "DashboardAgent",
    "RuntimeEnvAgent",
    "ray::",
)


PLACEHOLDER_AGENT = "sleep infinity"
"""The command line of what the engine's own Ray node runs instead of Ray's two agents
(actors/ray_node.py)."""

RAY_SCRIPTS = "/site-packages/ray/"
"""In the command line of Ray's own Python daemons (log monitor, autoscaler monitor)."""


def role_of(process: psutil.Process) -> str:
    try:
        text = " ".join(process.cmdline())[:300]
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return "gone"
    if text == PLACEHOLDER_AGENT:
        return "ray_agent_placeholder"
    for role in ROLES:
        if role in text:
            return "ray_other" if role == "ray::" else role
    if "actors.keeper" in text:
        return "keeper"  # the driver, once it handed over (actors/keeper.py)
    if "engine.cli" in text or "openlines run" in text:
        return "driver"
    start = text.find(RAY_SCRIPTS)
    if start < 0:
        return "other"
    script = text[start + len(RAY_SCRIPTS) :].split(" ", 1)[0]
    return "ray_" + script.rsplit("/", 1)[-1].removesuffix(".py")  # ray_log_monitor, ...


def holds_open(process: psutil.Process, file_name: str) -> bool:
    """Whether ``process`` has a file of this name open: how an actor is told from the
    others of its role (a portal actor by its outbox, channel actor 0 by the registry's
    file); False if it is gone."""
    try:
        return any(Path(f.path).name == file_name for f in process.open_files())
    except psutil.Error:
        return False


def memory_mb(process: psutil.Process, kind: str = "uss") -> float:
    """``uss`` (freed if the process ended) or ``pss`` (shared pages split among their
    users, so a sum over processes is the memory they take together), in MB; 0 if gone."""
    try:
        return float(getattr(process.memory_full_info(), kind)) / 1e6
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return 0.0


@dataclass
class EngineProcess:
    config: dict[str, Any]
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="olbench-")))
    process: asyncio.subprocess.Process | None = None
    output: list[str] = field(default_factory=list)
    engine_key: str = ""
    cwd: Path | None = None
    """The folder it is started from (default: the caller's)."""

    base_url: str = ""
    """Where it listens, as it printed it (the config may say port 0: any free one)."""

    async def start(self, timeout_s: float = 180.0, until: str = "openlines: ready") -> None:
        """Start it and wait for its line ``until`` (a test may stop it earlier than ready)."""
        # Written as JSON, which the engine reads as YAML but parses with orjson: a
        # generated config of 10,000 portals loads in 0.1 s instead of 5 s (README).
        config_path = self.workdir / "engine.json"
        config_path.write_bytes(orjson.dumps(self.config))
        # The installed ``openlines`` command, as a user runs it, from ``cwd`` if given.
        command = Path(sys.executable).with_name("openlines")
        self.process = await asyncio.create_subprocess_exec(
            str(command),
            "run",
            "--config",
            str(config_path),
            cwd=self.cwd,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            # Its own session: a signal to the caller's process group does not reach it, and
            # kill() ends the driver alone, as a crash would.
            start_new_session=True,
        )
        await asyncio.wait_for(self._read_until(until), timeout_s)
        self._reader = asyncio.create_task(self._read_until(None))
        async with aiohttp.ClientSession() as session:
            async with session.get(f"{self.base_url}/api/v1/engine-key") as response:
                self.engine_key = str((await response.json())["public_key"])

    async def _read_until(self, marker: str | None) -> None:
        assert self.process is not None and self.process.stdout is not None
        while True:
            line = await self.process.stdout.readline()
            if not line:
                if marker is not None:
                    raise RuntimeError("engine exited:\n" + "".join(self.output[-30:]))
                return
            text = line.decode(errors="replace")
            listening = LISTENING.search(text)
            if listening is not None:
                self.base_url = listening.group(1)
            self.output.append(text)
            del self.output[:-200]
            if marker is not None and marker in text:
                return

    def tree(self) -> list[psutil.Process]:
        assert self.process is not None
        root = psutil.Process(self.process.pid)
        return [root, *root.children(recursive=True)]

    def cpu_seconds_by_role(self) -> dict[str, float]:
        totals: dict[str, float] = {}
        for process in self.tree():
            try:
                times = process.cpu_times()
            except psutil.NoSuchProcess:
                continue
            role = role_of(process)
            totals[role] = totals.get(role, 0.0) + times.user + times.system
        return totals

    def memory_mb_by_role(self, kind: str = "uss") -> dict[str, float]:
        """Memory of every process by role, in MB: ``uss`` (what would be freed if the
        process ended) or ``pss`` (see ``memory_mb``)."""
        totals: dict[str, float] = {}
        for process in self.tree():
            role = role_of(process)
            if role != "gone":
                totals[role] = totals.get(role, 0.0) + memory_mb(process, kind)
        return {role: round(mb, 1) for role, mb in totals.items()}

    async def metrics(self) -> dict[str, float]:
        async with aiohttp.ClientSession() as session:
            async with session.get(f"{self.base_url}/metrics") as response:
                return parse_metric_lines(await response.text())

    async def kill(self) -> None:
        """``kill -9`` of the engine's own process (the keeper, once the driver handed over;
        ``actors.keeper``), and wait until it is gone; nothing if it ended already."""
        assert self.process is not None
        if self.process.returncode is None:
            self.process.kill()
        await self.process.wait()
        await self._reader

    async def stop(self) -> int:
        """SIGTERM and the exit code (-9 when it had to be killed after 120 s)."""
        if self.process is None or self.process.returncode is not None:
            return self.process.returncode if self.process else 0
        self.process.terminate()
        try:
            code = await asyncio.wait_for(self.process.wait(), 120)
        except TimeoutError:
            self.process.kill()
            code = await self.process.wait()
        await self._reader
        return code


def parse_metric_lines(text: str) -> dict[str, float]:
    """Prometheus text as ``{'name{labels}': value}``, a line per sample as the engine wrote it."""
    values: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            values[name] = float(value)
    return values


def cpu_delta(
    before: dict[str, float], after: dict[str, float], seconds: float
) -> dict[str, float]:
    """CPU use per role over an interval, in percent of one core."""
    return {
        role: round(100 * (after.get(role, 0.0) - before.get(role, 0.0)) / seconds, 1)
        for role in sorted(set(before) | set(after))
    }
