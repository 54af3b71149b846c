"""The actors' output in the engine's log, without Ray's log monitor process.

Ray points each worker's stdout and stderr at files in the session's log folder
(``worker-<worker id>-<job id>-<pid>.out`` and ``.err``); its log monitor, a Python process
of about 45 MB, tails them and sends each line to the driver. The engine's own node starts
without it (``actors.ray_node``), and the driver tails the files itself with this thread.

Each file starts with Ray's markers (``:job_id:…``, then ``:actor_name:ChannelActor`` or
``:task_name:…``, again whenever a worker takes up another actor or task): they name the
lines that follow and are not forwarded. The engine's own log lines are JSON objects that
already carry the pid (``engine.logs``) and pass through unchanged, so the log stays JSON
lines a collector can read; anything else a worker prints (a traceback Ray writes, a stray
``print``) is prefixed as Ray's log monitor prefixes it, ``(ChannelActor pid=123) ``.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

log = logging.getLogger("openlines.ray")

WORKER_FILE = re.compile(r"^worker-[0-9a-f]+-[0-9a-f]+-(\d+)\.(out|err)$")
MARKERS = (":job_id:", ":actor_name:", ":task_name:")
POLL_S = 0.2
LONGEST_LINE = 1 << 16
"""A line without its newline after this many bytes is forwarded as it is."""


@dataclass
class _TailedFile:
    pid: str
    to_stderr: bool
    offset: int = 0
    name: str = ""


class WorkerLogForwarder:
    """Tails every worker's output file in ``logs_dir`` onto the driver's stdout and stderr."""

    def __init__(
        self,
        logs_dir: Path,
        stdout: TextIO | None = None,
        stderr: TextIO | None = None,
        positions: dict[str, tuple[int, str]] | None = None,
    ) -> None:
        """``positions``: where an earlier forwarder of the same folder stopped
        (``positions()``), so a keeper taking over from the driver forwards each line once."""
        self.logs_dir = logs_dir
        self._stdout = stdout
        self._stderr = stderr
        self._files: dict[str, _TailedFile] = {}
        for file_name, (offset, actor_name) in (positions or {}).items():
            match = WORKER_FILE.match(file_name)
            if match is not None:
                self._files[file_name] = _TailedFile(
                    match.group(1), match.group(2) == "err", offset, actor_name
                )
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="worker-logs", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Forward what is left, then end the thread."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def positions(self) -> dict[str, tuple[int, str]]:
        """Each file's forwarded length and the actor its last marker named (after ``stop``)."""
        return {name: (tailed.offset, tailed.name) for name, tailed in self._files.items()}

    def _run(self) -> None:
        while True:
            stopping = self._stop.wait(POLL_S)
            try:
                self.forward_new_lines()
            except Exception:  # the loop's boundary: a log line lost is not worth the log
                log.exception("forwarding the actors' output failed")
            if stopping:
                return

    def forward_new_lines(self) -> None:
        """One pass: every complete line written since the last pass."""
        try:
            entries = list(os.scandir(self.logs_dir))
        except FileNotFoundError:
            return
        for entry in sorted(entries, key=lambda e: e.name):
            match = WORKER_FILE.match(entry.name)
            if match is None:
                continue
            tailed = self._files.get(entry.name)
            if tailed is None:
                tailed = _TailedFile(pid=match.group(1), to_stderr=match.group(2) == "err")
                self._files[entry.name] = tailed
            self._forward(Path(entry.path), tailed)

    def _forward(self, path: Path, tailed: _TailedFile) -> None:
        try:
            with path.open("rb") as file:
                size = os.fstat(file.fileno()).st_size
                if size < tailed.offset:  # rotated or truncated: start again
                    tailed.offset = 0
                if size == tailed.offset:
                    return
                file.seek(tailed.offset)
                chunk = file.read(size - tailed.offset)
        except FileNotFoundError:
            return
        end = chunk.rfind(b"\n") + 1
        if end == 0 and len(chunk) < LONGEST_LINE:
            return  # a line still being written
        if end == 0:
            end = len(chunk)
        tailed.offset += end
        out = (self._stderr or sys.stderr) if tailed.to_stderr else (self._stdout or sys.stdout)
        for raw in chunk[:end].splitlines():
            line = raw.decode("utf-8", errors="replace")
            if line.startswith(MARKERS):
                if not line.startswith(":job_id:"):
                    tailed.name = line.split(":", 2)[2]
                continue
            if not line:
                continue
            if not line.startswith("{"):
                line = f"({tailed.name or 'worker'} pid={tailed.pid}) {line}"
            out.write(line + "\n")
        out.flush()
