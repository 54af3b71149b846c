"""The engine as a real ``openlines run`` subprocess, for tests that kill or stop it."""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path

import aiohttp

READY_TIMEOUT_S = 90.0


class EngineProcess:
    def __init__(self, config_path: Path) -> None:
        self.config_path = config_path
        self.process: asyncio.subprocess.Process | None = None
        self.output: list[str] = []

    async def start(self) -> None:
        self.process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "engine.cli",
            "run",
            "--config",
            str(self.config_path),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,
        )
        await asyncio.wait_for(self._read_until("openlines: ready"), READY_TIMEOUT_S)
        self._reader = asyncio.create_task(self._read_until(None))

    async def _read_until(self, marker: str | None) -> None:
        assert self.process is not None and self.process.stdout is not None
        while True:
            line = await self.process.stdout.readline()
            if not line:
                if marker is not None:
                    raise AssertionError("engine exited:\n" + "".join(self.output[-40:]))
                return
            text = line.decode(errors="replace")
            self.output.append(text)
            if marker is not None and marker in text:
                return

    async def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        await self.process.wait()
        await self._reader

    async def terminate(self) -> int:
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(self.process.wait(), 90)
        await self._reader
        return code


async def engine_key(port: int) -> str:
    async with aiohttp.ClientSession() as session:
        async with session.get(f"http://127.0.0.1:{port}/api/v1/engine-key") as response:
            body = await response.json()
    return str(body["public_key"])
