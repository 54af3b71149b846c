"""CPU profiles of running processes with py-spy, summarized as the top functions.

py-spy samples a process from outside (no restart, no code change); ``record`` runs one
sampler per target side by side for the same seconds and writes each profile in py-spy's
collapsed-stack format (``frame;frame;frame count`` per line), which ``summarize`` reads.

Only the thread holding the GIL is sampled (``--gil``): what Python code spends the CPU on.
Without it, threads blocked in native code (an fsync in SQLite, the event loop's epoll, an
executor thread waiting for work) look busy to py-spy and fill the profile. What runs
without the GIL (SQLite's own work, the kernel, Ray's C++ threads) is not in it;
``gil_busy`` is the share of the time some thread held the GIL.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import sys
from collections import Counter
from pathlib import Path
from typing import Any

SAMPLES_PER_S = 100
_LINE = re.compile(r":\d+\)$")


def py_spy() -> str | None:
    """The py-spy next to this Python (the project's venv), else on PATH; None if neither."""
    beside = Path(sys.executable).with_name("py-spy")
    return str(beside) if beside.exists() else shutil.which("py-spy")


async def record(targets: dict[str, int], duration_s: float, out_dir: Path) -> dict[str, Any]:
    """Sample every ``name: pid`` for ``duration_s``; a summary per name (``summarize``)."""
    tool = py_spy()
    if tool is None:
        return {"error": "py-spy not found"}
    out_dir.mkdir(parents=True, exist_ok=True)
    seconds = str(max(1, round(duration_s)))

    async def one(name: str, pid: int) -> tuple[str, Any]:
        path = out_dir / f"{name}.txt"
        child = await asyncio.create_subprocess_exec(
            tool,
            "record",
            "--pid",
            str(pid),
            "--duration",
            seconds,
            "--rate",
            str(SAMPLES_PER_S),
            "--nonblocking",
            "--gil",
            "--format",
            "raw",
            "-o",
            str(path),
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        _, err = await child.communicate()
        if child.returncode != 0 or not path.exists():
            return name, {"error": err.decode(errors="replace")[-300:]}
        summary = summarize(path)
        summary["gil_busy"] = round(summary["samples"] / (int(seconds) * SAMPLES_PER_S), 3)
        return name, {"file": str(path), **summary}

    return dict(await asyncio.gather(*(one(name, pid) for name, pid in targets.items())))


WRAPPERS = ("(threading.py)", "(<frozen runpy>)", "(concurrent/futures/thread.py)")
"""Frames on every stack of a thread or a script: left out of ``inclusive``."""


def summarize(path: Path, top: int = 15) -> dict[str, Any]:
    """Samples, and the functions with the largest share of them: ``self`` (the sample's
    innermost frame) and ``inclusive`` (anywhere on the stack but for ``WRAPPERS``), line
    numbers dropped."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        samples = int(count)
        total += samples
        frames = [_LINE.sub(")", frame) for frame in stack.split(";")]
        own[frames[-1]] += samples
        for frame in set(frames):
            if not frame.endswith(WRAPPERS):
                inclusive[frame] += samples

    def shares(counter: Counter[str]) -> list[list[Any]]:
        return [[frame, round(n / total, 3)] for frame, n in counter.most_common(top)]

    return {"samples": total, "self": shares(own), "inclusive": shares(inclusive)}
