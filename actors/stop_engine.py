"""A short Ray driver that stops a running engine's actors, in order (``actors.keeper``).

    python -m actors.stop_engine --address 127.0.0.1:PORT --namespace openlines --channel-actors 1

The keeper of an engine on its own Ray node holds no Ray connection; when it is told to
stop, this driver connects, stops intake first and delivery second (``ActorHandles.stop``,
the same steps a driver that never handed over takes), ends the detached actors and exits.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys

from engine.logs import configure_logging

log = logging.getLogger("openlines")


def main(argv: list[str] | None = None) -> int:
    # The keeper blocks its stop signals and hands its mask down: a second Ctrl-C or
    # SIGTERM may end this driver (the keeper then ends the node anyway).
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM, signal.SIGINT, signal.SIGCHLD})
    parser = argparse.ArgumentParser(prog="python -m actors.stop_engine")
    parser.add_argument("--address", required=True, help="the engine's Ray node")
    parser.add_argument("--namespace", required=True)
    parser.add_argument("--channel-actors", type=int, required=True)
    args = parser.parse_args(argv)
    configure_logging()

    import ray

    from actors.ray_node import connect_driver
    from actors.supervisor import ActorHandles, stop_within

    connect_driver(args.address, args.namespace)
    try:
        actors = ActorHandles.found(args.namespace, args.channel_actors)
        asyncio.run(stop_within(actors))
    finally:
        ray.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
