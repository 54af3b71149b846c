"""The engine's own Ray on one machine: the GCS and the raylet, and nothing else.

``ray.init`` on its own starts seven processes beside the actors: the GCS and the raylet,
which the engine needs, and five Python processes it has no job for, about 270 MB at rest
(docs/architecture.md, "Ray's processes"): the dashboard's API server, the autoscaler's
monitor, the log monitor, and the raylet's two agents (the dashboard agent, which exports
Ray's own metrics and serves its state API, and the runtime-environment agent, which
installs per-job environments). The engine exports its own metrics, uses no runtime
environment and reads no Ray state through the dashboard, so:

- the node is started the way ``ray start --head`` starts it, with the monitor, the log
  monitor and the API server left out (``RayParams`` says so for the first two; the API
  server has no switch, so :class:`_NodeWithoutApiServer` skips it);
- the raylet insists on starting its two agents and on reading the ports they bind from
  files in the session folder. The files are written beforehand with ``-1``, Ray's own
  "service not in use" (a minimal dashboard agent writes the same), and each agent's
  command becomes a ``sleep`` the kernel ends with the raylet: a process of a few hundred
  KB that the raylet can watch, and that even a ``kill -9`` of the raylet leaves no orphan of;
- Ray's metrics collection is off, so no worker looks for the agent that is not there;
- the log monitor's one job, showing the actors' output in the engine's log, is done by a
  thread of the driver (``actors.worker_logs.WorkerLogForwarder``).

Starting a node this way uses Ray's internals (``ray._private``), checked on the Ray this
project pins as its lower bound. A Ray whose internals moved fails here at start, loudly,
rather than running half a node; ``tests/test_ray_node.py`` keeps it honest.

An engine that joins an existing cluster (``ray_address``) starts no node and gets that
cluster's processes, log monitor included, whatever they are.
"""

from __future__ import annotations

import logging
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from actors.worker_logs import WorkerLogForwarder

log = logging.getLogger("openlines.ray")

AGENT_PORT_FILES = (
    "metrics_agent_port",
    "metrics_export_port",
    "dashboard_agent_listen_port",
    "runtime_env_agent_port",
)
"""The port files the raylet waits for before it serves; ``-1`` means "not in use"."""

AGENT_COMMAND_OPTIONS = ("--dashboard_agent_command=", "--runtime_env_agent_command=")

PLACEHOLDER_AGENT = '/bin/sh -c "exec setpriv --pdeathsig KILL -- sleep infinity"'
"""What the raylet runs as each agent: ``sleep``, killed by the kernel when the raylet ends
(``setpriv`` from util-linux sets the parent-death signal, which ``exec`` keeps; the shell
takes the arguments the raylet appends). Watching the raylet's pid instead would miss a
raylet killed but not yet reaped."""


class LocalRayNode:
    """A head node on 127.0.0.1 with only what the engine uses; :meth:`stop` ends it all."""

    def __init__(
        self, temp_dir: Path, num_cpus: int | None = None, forward_logs: bool = True
    ) -> None:
        self.temp_dir = temp_dir
        self.num_cpus = num_cpus
        self.forward_logs = forward_logs
        self._node: Any = None
        self._logs: WorkerLogForwarder | None = None

    @property
    def address(self) -> str:
        if self._node is None:
            raise RuntimeError("the local Ray node is not started")
        return str(self._node.address)

    @property
    def logs_dir(self) -> Path:
        if self._node is None:
            raise RuntimeError("the local Ray node is not started")
        return Path(self._node.get_logs_dir_path())

    def start(self) -> None:
        """Start the GCS and the raylet. SIGINT and SIGTERM are blocked while they are
        spawned: they inherit the mask, so a Ctrl-C in the terminal or a service manager's
        SIGTERM to the whole group reaches only the driver, which stops the actors in order
        before it ends Ray (``stop``)."""
        from ray._private.parameter import RayParams

        params = RayParams(
            node_ip_address="127.0.0.1",
            temp_dir=str(self.temp_dir),
            num_cpus=self.num_cpus,
            include_dashboard=False,
            no_monitor=True,
            # Ray's annotations say str for both; it reads them as a flag and a bool.
            include_log_monitor=False,  # type: ignore[arg-type]
            _system_config={"enable_metrics_collection": False},  # type: ignore[dict-item]
        )
        blocked_before = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
        try:
            with _raylet_without_agents():
                # spawn_reaper: on Linux the kernel ends the GCS and the raylet with the
                # driver (fate sharing), even after a kill -9 of the driver.
                self._node = _node_class()(
                    params, head=True, shutdown_at_exit=False, spawn_reaper=True
                )
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, blocked_before)
        if self.forward_logs:
            self._logs = WorkerLogForwarder(self.logs_dir)
            self._logs.start()

    def hand_over(self) -> tuple[dict[str, int], dict[str, tuple[int, str]]]:
        """Leave the running node to a keeper in this same process after ``exec``
        (``actors.keeper``): the pid of each of the node's processes by its kind (the
        kernel ends them with this process, exec or not), and where the log forwarder,
        stopped here, left each file."""
        node, self._node = self._node, None
        if node is None:
            raise RuntimeError("the local Ray node is not started")
        logs, self._logs = self._logs, None
        positions: dict[str, tuple[int, str]] = {}
        if logs is not None:
            logs.stop()
            positions = logs.positions()
        pids = {
            kind: info.process.pid
            for kind, infos in node.all_processes.items()
            for info in infos
            if info.process is not None
        }
        return pids, positions

    def stop(self) -> None:
        """End the node's processes, once the actors' last lines are forwarded; the caller
        removes the temp folder afterwards."""
        logs, self._logs = self._logs, None
        if logs is not None:
            logs.stop()
        node, self._node = self._node, None
        if node is None:
            return
        try:
            node.kill_all_processes(check_alive=False, allow_graceful=True)
        except Exception as exc:  # the stop boundary: leftovers are killed by the caller
            log.warning("Ray's processes did not stop cleanly: %s", exc)


def connect_driver(address: str, namespace: str, log_to_driver: bool = False) -> None:
    """Connect this process to Ray as a driver, quietly.

    Ray says at every start whether its token authentication is on: a fact of Ray's set-up,
    not of the engine's run (the engine's Ray listens on loopback only, whichever it is), so
    it stays out of the engine's log. ``log_to_driver``: only when joining a cluster, whose
    log monitor then brings the actors' output; the engine's own node has none
    (``WorkerLogForwarder``).
    """
    import ray

    logging.getLogger("ray._private.authentication.authentication_token_setup").setLevel(
        logging.ERROR
    )
    ray.init(
        address=address,
        namespace=namespace,
        logging_level=logging.WARNING,
        log_to_driver=log_to_driver,
    )


def _node_class() -> type:
    from ray._private.node import Node

    class _NodeWithoutApiServer(Node):
        """A head node that starts no dashboard API server (``include_dashboard=False``
        alone still starts it, with fewer modules)."""

        def start_api_server(
            self, *, include_dashboard: bool | None, raise_on_failure: bool
        ) -> None:
            self._webui_url = None

    return _NodeWithoutApiServer


@contextmanager
def _raylet_without_agents() -> Iterator[None]:
    """While the node starts, the raylet's command gets placeholder agents and its agents'
    port files are written first (see the module's docstring)."""
    import ray._private.services as services

    original = services.start_ray_process

    def start_ray_process(command: list[str], process_type: str, *args: Any, **kwargs: Any) -> Any:
        if process_type == "raylet":
            command = raylet_command_without_agents(command)
        return original(command, process_type, *args, **kwargs)

    services.start_ray_process = start_ray_process
    try:
        yield
    finally:
        services.start_ray_process = original


def raylet_command_without_agents(command: list[str]) -> list[str]:
    """The raylet's command with placeholder agents, once their port files are written."""
    options = dict(arg[2:].split("=", 1) for arg in command if arg.startswith("--") and "=" in arg)
    try:
        session_dir, node_id = Path(options["session_dir"]), options["node_id"]
    except KeyError as exc:
        raise RuntimeError(
            f"this Ray starts its raylet without --{exc.args[0]}: the engine cannot start "
            "Ray's node without its agents (actors/ray_node.py)"
        ) from None
    replaced = 0
    result = []
    for arg in command:
        for option in AGENT_COMMAND_OPTIONS:
            if arg.startswith(option):
                arg = option + PLACEHOLDER_AGENT
                replaced += 1
        result.append(arg)
    if replaced != len(AGENT_COMMAND_OPTIONS):
        raise RuntimeError(
            "this Ray's raylet takes other agent options than "
            f"{', '.join(AGENT_COMMAND_OPTIONS)}: the engine cannot start it without its "
            "agents (actors/ray_node.py)"
        )
    for name in AGENT_PORT_FILES:
        (session_dir / f"{name}_{node_id}").write_text("-1")
    return result
