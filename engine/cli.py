"""``openlines``: run the engine, make keys, run a sample portal, check and try routing rules,
write the protocol's schema and test vectors, connect and disconnect channels."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from actors.keeper import STOP_SIGNALS
from engine.cli_admin import (
    AdminCallFailed,
    add_admin_options,
    add_connect_commands,
    admin_call,
    quoted,
)
from engine.config import ConnectorConfig, EngineConfig, load_engine_config
from engine.errors import ConfigError
from engine.logs import configure_logging, say
from engine.memory import release_freed_memory
from engine.yaml_marks import format_validation_error, yaml_marks

if TYPE_CHECKING:
    from actors.ray_node import LocalRayNode
    from actors.supervisor import EngineActors
    from engine.runtime import DataDirLock

log = logging.getLogger("openlines")

# Ray must keep every address on loopback; this has to be set before Ray is imported.
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
# Joining a cluster, actors' log lines reach the driver's stdout through Ray's log monitor:
# without terminal colour codes, so the engine's log stays lines a collector can read.
os.environ.setdefault("RAY_COLOR_PREFIX", "0")
os.environ.setdefault("RAY_DEDUP_LOGS", "0")  # its "[repeated n times]" notes are coloured


def check_connectors(config: EngineConfig, source: Path | None = None) -> None:
    """Refuse to start with a connector whose channel or credentials do not validate; with
    the config file as ``source``, an error names its line (the credentials are each
    channel's own model, checked here rather than when the file is read)."""
    from pydantic import ValidationError

    from actors.channel_cache import channel_for
    from channels.registry import channel_class

    for index, connector in enumerate(config.connectors):
        model = channel_class(connector.channel).credentials_model
        try:
            model.model_validate(connector.credentials)
        except ValidationError as exc:
            # Lines only for an error: composing the YAML of 10,000 portals with marks
            # takes seconds at every start (engine.yaml_marks).
            marks = yaml_marks(source.read_text(encoding="utf-8")) if source is not None else None
            where = ("connectors", index, "credentials")
            text = format_validation_error(exc, str(source or "config"), marks, where)
            raise ConfigError(
                f"connector {connector.id!r} ({connector.channel}):\n{text}"
            ) from None
        channel_for(connector, config.data_dir)


def connector_url(base: str, connector: ConnectorConfig) -> str:
    """Where a connector is reached: a provider's webhook, or the widget's script and chat
    page (docs/channels/widget.md)."""
    if connector.channel == "widget":
        widget = f"{base}/widget/{connector.credentials.get('widget_id')}"
        return f"script {widget}/widget.js, chat page {widget}/chat"
    return f"webhook {base}/hooks/{connector.channel}/{connector.id}"


def start_ray(config: EngineConfig) -> LocalRayNode | None:
    """Join the configured cluster, or start the engine's own node: the GCS and the raylet
    only (actors/ray_node.py), in a temp folder of its own that ``stop_ray`` removes."""
    from actors.names import NAMESPACE
    from actors.ray_node import LocalRayNode, connect_driver
    from engine.runtime import kill_leftovers, ray_temp_dir, remove_ray_temp_dir

    if config.ray_address:
        connect_driver(config.ray_address, NAMESPACE, log_to_driver=True)
        return None
    temp_dir = ray_temp_dir(config.data_dir)
    killed = kill_leftovers(temp_dir)
    if killed:
        log.warning("killed %d Ray processes left by an earlier run: %s", len(killed), killed)
    remove_ray_temp_dir(temp_dir)  # sessions of runs that were killed
    node = LocalRayNode(temp_dir)
    node.start()
    connect_driver(node.address, NAMESPACE)
    return node


def stop_ray(config: EngineConfig, node: LocalRayNode | None) -> None:
    """Disconnect from Ray; a Ray of our own is stopped and leaves nothing behind: no
    process, and no folder in the system temp folder."""
    import ray

    from engine.runtime import kill_leftovers, ray_temp_dir, remove_ray_temp_dir

    try:
        ray.shutdown()
    except Exception as exc:  # the shutdown boundary: what is left is killed below
        log.warning("Ray did not shut down cleanly: %s", exc)
    if node is not None:
        node.stop()
        temp_dir = ray_temp_dir(config.data_dir)
        kill_leftovers(temp_dir)
        remove_ray_temp_dir(temp_dir)


CONNECTORS_SHOWN = 20
"""Connectors named with their webhook URL at start; a platform's thousands are listed by
``GET /admin/v1/registry`` instead of flooding the log."""


STOP_SIGNAL_POLL_S = 0.1


async def watch_stop_signals(stop: asyncio.Event) -> None:
    """Set ``stop`` at the first SIGTERM or SIGINT.

    ``run`` blocks both before Ray starts a thread, so every thread of the driver inherits
    the block: a signal left to the process would land on any thread that does not block
    it, one of Ray's among them, and end the process there. Blocked, it waits pending until
    taken here, or, once the driver has handed over, by the keeper's ``sigwait``.
    """
    while signal.sigtimedwait(STOP_SIGNALS, 0) is None:
        await asyncio.sleep(STOP_SIGNAL_POLL_S)
    stop.set()


async def serve(actors: EngineActors, hand_over: bool) -> bool:
    """Start the actors and run until SIGTERM or SIGINT; or, with ``hand_over``, return True
    once they are up, a stop signal that comes later left pending for the keeper
    (``actors.keeper``).

    Takes the actors, not the config: the driver keeps no copy of the config's portals once
    the registry has them (with 10,000 portals that copy was most of its memory).
    """
    from actors.supervisor import stop_within

    stop = asyncio.Event()
    watcher = asyncio.create_task(watch_stop_signals(stop))
    handed_over = False
    try:
        outline = await actors.start(CONNECTORS_SHOWN)
        release_freed_memory()  # the config's portals, read and handed to the registry
        config = actors.settings.config
        base = config.public_url or f"http://{config.host}:{actors.port}"
        say(f"openlines: listening on http://{config.host}:{actors.port}")
        for connector in outline.connectors:
            say(
                f"openlines: connector {connector.id} ({connector.channel}, portal "
                f"{connector.portal}, line {connector.line}): {connector_url(base, connector)}"
            )
        if outline.connector_count > len(outline.connectors):
            say(
                f"openlines: {outline.connector_count - len(outline.connectors)} more "
                "connectors: GET /admin/v1/registry lists them all"
            )
        say(f"openlines: {len(outline.portal_ids)} portal(s)")
        say(f"openlines: engine key {base}/api/v1/engine-key")
        if hand_over and not stop.is_set():
            # A stop signal from now on stays pending for the keeper's sigwait; one that
            # came during the start is served here, as without a keeper. The keeper says
            # "ready": the engine is then in the shape it runs in.
            handed_over = True
            return True
        say("openlines: ready")
        await stop.wait()
        say("openlines: shutting down")
    finally:
        watcher.cancel()
        if not handed_over:
            # Also after a failed start: detached actors must be ended.
            await stop_within(actors)
    return False


def hand_over_to_keeper(config: EngineConfig, node: LocalRayNode, lock: DataDirLock) -> None:
    """Disconnect from Ray and become the keeper (``actors.keeper``): the actors run on,
    detached; this process keeps its pid, its children (the node) and the data folder's
    lock, and sheds everything Ray and the engine's code made it hold. Returns only if the
    ``exec`` fails (the caller then stops the node)."""
    import ray

    from actors.keeper import KeeperState
    from actors.names import NAMESPACE
    from engine.runtime import ray_temp_dir

    address, logs_dir = node.address, node.logs_dir
    ray.shutdown()
    node_pids, log_positions = node.hand_over()
    temp_dir = ray_temp_dir(config.data_dir)
    state = KeeperState(
        data_dir=str(config.data_dir),
        temp_dir=str(temp_dir),
        logs_dir=str(logs_dir),
        lock_fd=lock.keep_across_exec(),
        address=address,
        namespace=NAMESPACE,
        channel_actors=config.channel_actors,
        node_pids=node_pids,
        log_positions=log_positions,
    )
    state_path = temp_dir / "keeper.json"
    state.write(state_path)
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, [sys.executable, "-P", "-m", "actors.keeper", str(state_path)])


def run(args: argparse.Namespace) -> int:
    from engine.runtime import DataDirLock
    from engine.security.keys import load_or_create_signing_key

    config = load_engine_config(Path(args.config))
    updates: dict[str, object] = {}
    if args.port is not None:
        updates["port"] = args.port
    if args.ray_address:
        updates["ray_address"] = args.ray_address
    updates["data_dir"] = config.data_dir.resolve()
    updates["rules_dir"] = config.rules_dir.resolve()
    config = config.model_copy(update=updates)
    check_connectors(config, Path(args.config))
    lock = DataDirLock(config.data_dir)
    lock.acquire()
    try:
        key_path = config.data_dir / "engine_ed25519.pem"
        load_or_create_signing_key(key_path)
        # Ray puts the driver's working folder on its workers' import path: started from a
        # folder holding another ``engine`` package, the actors would import that one. The
        # engine's own data folder holds nothing importable.
        os.chdir(config.data_dir)
        signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)  # see watch_stop_signals
        node = start_ray(config)
        try:
            from actors.settings import ActorSettings
            from actors.supervisor import EngineActors

            # On its own node the engine's actors outlive this driver, which hands over to a
            # keeper without Ray once they are up (docs/architecture.md, "Ray's processes").
            actors = EngineActors(
                ActorSettings(config, key_path.read_bytes(), time.time()),
                detached=node is not None,
            )
            config = actors.settings.without_registry().config  # the registry's now
            if asyncio.run(serve(actors, hand_over=node is not None)):
                assert node is not None
                hand_over_to_keeper(config, node, lock)
        finally:
            stop_ray(config, node)
    finally:
        lock.release()
    say("openlines: stopped")
    return 0


def keygen(args: argparse.Namespace) -> int:
    from engine.security.keys import generate_portal_keypair

    private, public = generate_portal_keypair()
    print(f"public_key: {public}    # goes into the engine's portal config")
    print(f"private_key: {private}  # stays with the portal")
    return 0


def rules_check(args: argparse.Namespace) -> int:
    """Validate a rules folder or one rule file without running anything."""
    from engine.routing.rules import load_rules, load_rules_file

    path = Path(args.path)
    if path.is_dir():
        rules = load_rules(path, 1)
        names = ", ".join(f"{portal}/{line}" for portal, line in sorted(rules.lines)) or "none"
        print(f"openlines: {path}: {len(rules.lines)} line(s) valid: {names}")
    elif path.is_file():
        line = load_rules_file(path)
        print(f"openlines: {path}: line {line.portal}/{line.line} valid")
    else:
        raise ConfigError(f"{path}: no such rules file or folder")
    return 0


def rules_simulate(args: argparse.Namespace) -> int:
    """Replay traffic against rule files with a simulated clock (see engine.routing.simulate)."""
    from datetime import datetime

    from engine.routing.rules import load_rules_file
    from engine.routing.simulate import Simulation, parse_traffic

    lines = [load_rules_file(Path(path)) for path in args.rules]
    traffic_path = Path(args.traffic)
    try:
        text = traffic_path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{traffic_path}: cannot read traffic: {exc}") from None
    steps = parse_traffic(text.splitlines(), str(traffic_path))
    try:
        start = datetime.fromisoformat(args.start)
    except ValueError:
        raise ConfigError(f"--start {args.start!r}: expected an ISO 8601 time") from None
    if start.tzinfo is None:
        raise ConfigError(f"--start {args.start!r}: give a time zone, e.g. +03:00 or Z")
    simulation = Simulation(lines, start.timestamp(), args.portal_delay_s)
    for printed in simulation.run(steps, args.tail_s):
        print(printed)
    return 0


def rules_explain(args: argparse.Namespace) -> int:
    """A running engine's decisions for one dialog, through the admin API."""
    dialog = f"/admin/v1/portals/{quoted(args.portal)}/dialogs/{quoted(args.dialog_id)}"
    path = f"{dialog}/decisions?limit={args.limit}"
    try:
        explained = admin_call(args, "GET", path)
    except AdminCallFailed as exc:
        print(f"openlines: {exc}", file=sys.stderr)
        return 1
    print(format_explanation(explained))
    return 0


def format_explanation(explained: dict[str, object]) -> str:
    dialog = explained["dialog"]
    assert isinstance(dialog, dict)
    lines = [
        f"dialog {dialog['id']} on line {dialog['line_id']}: {dialog['state']}, "
        f"operator {dialog['operator_id']}, offered to {dialog['offered_to']}"
    ]
    now = explained.get("now")
    if isinstance(now, dict):
        lines.append(f"now: {now['action']} ({now['reason'] or 'an operator is free'})")
        lines.extend(f"  {op}: {why}" for op, why in dict(now["skipped"]).items())
    decisions = explained["decisions"]
    assert isinstance(decisions, list)
    for decision in decisions:
        lines.append(
            f"decision {decision['decision_id']} at {decision['at']:.3f} (rules "
            f"v{decision['rules_version']}): {decision['action']} {decision['operator_ids']} "
            f"via {decision['path']}"
        )
        lines.extend(f"  {op}: {why}" for op, why in decision["skipped"].items())
    return "\n".join(lines)


def sample_portal(args: argparse.Namespace) -> int:
    from engine.sample_portal import run_sample_portal

    return run_sample_portal(args)


def protocol_file(args: argparse.Namespace) -> int:
    """Print, write or check a generated protocol file (docs/protocol.md, "Schema")."""
    from engine.protocol.schema import render_schema
    from engine.protocol.vectors import render_vectors

    text = render_schema() if args.what == "schema" else render_vectors()
    path: Path = args.path
    if args.write:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        print(f"openlines: wrote {path}")
    elif args.check:
        found = path.read_text(encoding="utf-8") if path.is_file() else None
        if found != text:
            print(
                f"openlines: {path} is not what the code generates:"
                f" run openlines protocol {args.what} --write",
                file=sys.stderr,
            )
            return 1
        print(f"openlines: {path} is up to date")
    else:
        sys.stdout.write(text)
    return 0


def add_protocol_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from engine.protocol.schema import SCHEMA_PATH
    from engine.protocol.vectors import VECTORS_PATH

    protocol = commands.add_parser(
        "protocol", help="the JSON Schema and test vectors portals are given, from the code"
    )
    files = protocol.add_subparsers(dest="what", required=True)
    for what, about, default_path in (
        ("schema", "the JSON Schema of every delivery", SCHEMA_PATH),
        (
            "vectors",
            "keys, a sealed and signed delivery, refusals, a signed API call",
            VECTORS_PATH,
        ),
    ):
        command = files.add_parser(what, help=f"print, write or check {about}")
        action = command.add_mutually_exclusive_group()
        action.add_argument("--write", action="store_true", help="write the file")
        action.add_argument(
            "--check", action="store_true", help="exit 1 if the file differs from the code's"
        )
        command.add_argument(
            "--path",
            type=Path,
            default=default_path,
            help=f"the file (default: {default_path}, from the repository's root)",
        )
        command.set_defaults(handler=protocol_file)


def add_rules_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from engine.routing import simulate as simulate_module

    rules = commands.add_parser("rules", help="check, explain and simulate routing rules")
    verbs = rules.add_subparsers(dest="verb", required=True)
    check = verbs.add_parser("check", help="validate rule files without running the engine")
    check.add_argument("path", nargs="?", default="routing_rules", help="a folder or one file")
    check.set_defaults(handler=rules_check)
    explain = verbs.add_parser("explain", help="why a running engine routed a dialog so")
    explain.add_argument("dialog_id")
    explain.add_argument("--portal", required=True, help="the dialog's portal id")
    add_admin_options(explain)
    explain.add_argument("--limit", type=int, default=20, choices=range(1, 201), metavar="1..200")
    explain.set_defaults(handler=rules_explain)
    simulate = verbs.add_parser(
        "simulate",
        help="replay traffic against rule files with a simulated clock",
        description=simulate_module.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    simulate.add_argument(
        "rules", nargs="+", help="LINE.yaml files (the first is the default line)"
    )
    simulate.add_argument("traffic", help="TRAFFIC.jsonl: one step per line")
    simulate.add_argument("--start", default="2026-01-05T09:00:00+00:00", help="ISO 8601 start")
    simulate.add_argument("--portal-delay-s", type=float, default=0.0, help="offer delivery delay")
    simulate.add_argument(
        "--tail-s", type=float, default=3600.0, help="time to run after the last step"
    )
    simulate.set_defaults(handler=rules_simulate)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="openlines", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    run_parser = commands.add_parser("run", help="run the engine")
    run_parser.add_argument("--config", default="config/example.yaml", help="engine YAML")
    run_parser.add_argument("--port", type=int, default=None, help="override the port")
    run_parser.add_argument("--ray-address", default=None, help="join this Ray cluster")
    run_parser.set_defaults(handler=run)
    key_parser = commands.add_parser("keygen", help="make a portal's X25519 key pair")
    key_parser.set_defaults(handler=keygen)
    portal_parser = commands.add_parser("sample-portal", help="a portal that prints batches")
    portal_parser.add_argument("--listen", default="127.0.0.1:8090")
    portal_parser.add_argument("--portal-id", default="demo")
    portal_parser.add_argument("--private-key", required=True, help="portal X25519 key, b64")
    portal_parser.add_argument("--engine", default="http://127.0.0.1:8080")
    portal_parser.add_argument("--license-key", default="demo-license-key-change-me")
    portal_parser.set_defaults(handler=sample_portal)
    add_rules_commands(commands)
    add_protocol_commands(commands)
    add_connect_commands(commands)
    args = parser.parse_args(argv)
    configure_logging()
    try:
        return int(args.handler(args))
    except ConfigError as exc:
        print(f"openlines: configuration error:\n{exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
