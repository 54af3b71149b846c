"""The engine's foreground process once its actors run: a keeper without Ray.

A process that imports Ray costs about 80 MB at rest whatever it does (docs/architecture.md,
"Ray's processes"), and after start-up the driver of an engine on its own Ray node has
nothing left to do but wait for a signal. So, once every actor is up and detached, the
driver disconnects from Ray and ``exec``s this module in the same process (``engine.cli``,
``hand_over_to_keeper``). The same pid stays the engine's: the GCS and the raylet remain its
children, and the kernel still ends them with it after a ``kill -9`` (their parent-death
signal is tied to the thread that started them, which ``exec`` keeps); the data folder's
lock is the same open file; the actors' output is forwarded from where the driver's
forwarder stopped.

The keeper waits for SIGTERM or SIGINT, or for one of the node's processes to end (the
engine cannot serve without its GCS or raylet: the keeper says so and exits 1, for a service
manager to start the engine again). To stop, it runs a short driver (``actors.stop_engine``)
that stops the actors in order, then ends the node and removes its temp folder, as the
driver did before it. The stop signals are blocked from before Ray starts: one that comes
during the hand-over waits for ``sigwait`` here.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

from actors.worker_logs import WorkerLogForwarder
from engine.logs import configure_logging, say
from engine.runtime import DataDirLock, kill_leftovers, remove_ray_temp_dir

log = logging.getLogger("openlines")

STOP_SIGNALS = frozenset({signal.SIGTERM, signal.SIGINT})
"""Blocked by the driver before Ray starts (``engine.cli``), so one that comes during the
hand-over waits, pending, for ``sigwait`` here."""
WATCHED_SIGNALS = STOP_SIGNALS | {signal.SIGCHLD}

STOP_ENGINE_TIMEOUT_S = 90.0
"""The stopping driver's own deadline for the actors is 45 s (``SHUTDOWN_TIMEOUT_S``);
importing Ray and connecting come on top. Past this, the node is ended all the same:
everything acknowledged is in an outbox already."""


@dataclass(frozen=True)
class KeeperState:
    """What the driver hands the keeper, as a JSON file in the node's temp folder."""

    data_dir: str
    temp_dir: str
    logs_dir: str
    lock_fd: int
    address: str
    namespace: str
    channel_actors: int
    node_pids: dict[str, int]
    """The node's processes (``gcs_server``, ``raylet``): the keeper's children."""
    log_positions: dict[str, tuple[int, str]]

    def write(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self)), encoding="utf-8")

    @classmethod
    def read(cls, path: Path) -> KeeperState:
        fields = json.loads(path.read_text(encoding="utf-8"))
        fields["log_positions"] = {
            name: (int(offset), str(actor))
            for name, (offset, actor) in fields["log_positions"].items()
        }
        return cls(**fields)


def wait_for_stop(node_pids: dict[str, int]) -> str | None:
    """Until SIGTERM or SIGINT (None), or until a process of the node ends (its kind)."""
    kinds = {pid: kind for kind, pid in node_pids.items()}
    while True:
        ended = _reaped()
        for pid in ended:
            if pid in kinds:
                return f"{kinds[pid]} (pid {pid})"
        signum = signal.sigwait(WATCHED_SIGNALS)
        if signum in STOP_SIGNALS:
            return None


def _reaped() -> list[int]:
    """Children that ended since the last look, reaped."""
    ended: list[int] = []
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return ended
        if pid == 0:
            return ended
        ended.append(pid)


def stop_actors(state: KeeperState) -> None:
    """Stop the actors in order through a short driver of their own (``actors.stop_engine``)."""
    command = [
        sys.executable,
        "-P",  # nothing from the working folder on the import path (docs/architecture.md)
        "-m",
        "actors.stop_engine",
        "--address",
        state.address,
        "--namespace",
        state.namespace,
        "--channel-actors",
        str(state.channel_actors),
    ]
    try:
        result = subprocess.run(command, timeout=STOP_ENGINE_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired:
        log.error(
            "the actors did not stop within %.0f s; stopping Ray anyway", STOP_ENGINE_TIMEOUT_S
        )
        return
    if result.returncode != 0:
        log.error("stopping the actors failed (exit %d); stopping Ray anyway", result.returncode)


def keep(state: KeeperState) -> int:
    lock = DataDirLock.adopt(Path(state.data_dir), state.lock_fd)
    logs = WorkerLogForwarder(Path(state.logs_dir), positions=state.log_positions)
    logs.start()
    code = 0
    try:
        say("openlines: ready")
        ended = wait_for_stop(state.node_pids)
        if ended is None:
            say("openlines: shutting down")
            stop_actors(state)
        else:
            log.error("Ray's %s ended: the engine cannot serve without it; stopping", ended)
            code = 1
    finally:
        logs.stop()
        temp_dir = Path(state.temp_dir)
        kill_leftovers(temp_dir)
        _reaped()
        remove_ray_temp_dir(temp_dir)
        lock.release()
    say("openlines: stopped")
    return code


def main(argv: list[str] | None = None) -> int:
    signal.pthread_sigmask(signal.SIG_BLOCK, WATCHED_SIGNALS)
    args = sys.argv[1:] if argv is None else argv
    configure_logging()
    path = Path(args[0])
    state = KeeperState.read(path)
    path.unlink()
    return keep(state)


if __name__ == "__main__":
    sys.exit(main())
