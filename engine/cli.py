"""``openlines``: run the engine, make keys, run a sample portal."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
import time
from pathlib import Path

from engine.config import EngineConfig, load_engine_config
from engine.errors import ConfigError
from engine.logs import configure_logging

log = logging.getLogger("openlines")

SHUTDOWN_TIMEOUT_S = 45.0

# Ray must keep every address on loopback; this has to be set before Ray is imported.
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")


def check_connectors(config: EngineConfig) -> None:
    """Refuse to start with a connector whose channel or credentials do not validate."""
    from actors.channel_cache import channel_for

    for connector in config.connectors:
        channel_for(connector)


def start_ray(config: EngineConfig) -> None:
    import ray

    from actors.names import NAMESPACE
    from engine.runtime import kill_leftovers, ray_temp_dir

    if config.ray_address:
        ray.init(address=config.ray_address, namespace=NAMESPACE, logging_level=logging.WARNING)
        return
    temp_dir = ray_temp_dir(config.data_dir)
    killed = kill_leftovers(temp_dir)
    if killed:
        log.warning("killed %d Ray processes left by an earlier run: %s", len(killed), killed)
    # Ray's processes inherit the signal mask: with SIGINT blocked while they start, a
    # Ctrl-C in the terminal (sent to the whole process group) reaches only the driver,
    # which then stops the actors in order instead of finding the raylet gone.
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        ray.init(
            namespace=NAMESPACE,
            include_dashboard=False,
            _temp_dir=str(temp_dir),
            _node_ip_address="127.0.0.1",
            logging_level=logging.WARNING,
            log_to_driver=True,
        )
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})


def stop_ray(config: EngineConfig) -> None:
    import ray

    from engine.runtime import kill_leftovers, ray_temp_dir

    ray.shutdown()
    if not config.ray_address:
        kill_leftovers(ray_temp_dir(config.data_dir))


async def serve(config: EngineConfig, engine_key_pem: bytes) -> None:
    from actors.settings import ActorSettings
    from actors.supervisor import EngineActors

    actors = EngineActors(ActorSettings(config, engine_key_pem, time.time()))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    connectors = (await actors.start()).connectors.values()
    base = config.public_url or f"http://{config.host}:{actors.port}"
    print(f"openlines: listening on http://{config.host}:{actors.port}", flush=True)
    for connector in connectors:
        print(
            f"openlines: connector {connector.id} ({connector.channel}, portal "
            f"{connector.portal}, line {connector.line}): webhook {base}/hooks/"
            f"{connector.channel}/{connector.id}",
            flush=True,
        )
    print(f"openlines: engine key {base}/api/v1/engine-key", flush=True)
    print("openlines: ready", flush=True)
    await stop.wait()
    print("openlines: shutting down", flush=True)
    try:
        await asyncio.wait_for(actors.stop(), SHUTDOWN_TIMEOUT_S)
    except TimeoutError:
        # Every acknowledged message is already in an outbox; only delivery in flight is
        # cut short, and it is retried after the next start.
        log.error("actors did not stop within %.0f s; stopping Ray anyway", SHUTDOWN_TIMEOUT_S)


def run(args: argparse.Namespace) -> int:
    from engine.runtime import DataDirLock
    from engine.security.keys import load_or_create_signing_key

    config = load_engine_config(Path(args.config))
    updates: dict[str, object] = {}
    if args.port is not None:
        updates["port"] = args.port
    if args.ray_address:
        updates["ray_address"] = args.ray_address
    config = config.model_copy(update=updates)
    check_connectors(config)
    lock = DataDirLock(config.data_dir)
    lock.acquire()
    try:
        key_path = config.data_dir / "engine_ed25519.pem"
        load_or_create_signing_key(key_path)
        start_ray(config)
        try:
            asyncio.run(serve(config, key_path.read_bytes()))
        finally:
            stop_ray(config)
    finally:
        lock.release()
    print("openlines: stopped", flush=True)
    return 0


def keygen(args: argparse.Namespace) -> int:
    from engine.security.keys import generate_portal_keypair

    private, public = generate_portal_keypair()
    print(f"public_key: {public}    # goes into the engine's portal config")
    print(f"private_key: {private}  # stays with the portal")
    return 0


def sample_portal(args: argparse.Namespace) -> int:
    from engine.sample_portal import run_sample_portal

    return run_sample_portal(args)


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
    args = parser.parse_args(argv)
    configure_logging()
    try:
        return int(args.handler(args))
    except ConfigError as exc:
        print(f"openlines: configuration error:\n{exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
