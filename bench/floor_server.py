"""The floor: a bare aiohttp server that reads and parses each webhook and answers 200.

    python -m bench.floor_server --port 8099

No verification, no storage: what the engine's ingest path costs is measured against what
aiohttp alone costs for the same requests (DESIGN.md: ~19-22 k requests/s under wrk on this
2-core machine). Binds 127.0.0.1 only. Prints ``ready <port>`` once listening, then serves
until SIGINT or SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import signal

import orjson
from aiohttp import web

HOST = "127.0.0.1"


async def handle(request: web.Request) -> web.Response:
    body = await request.read()
    try:
        orjson.loads(body)
    except orjson.JSONDecodeError:
        return web.Response(status=400, text="malformed JSON")
    return web.Response()


def make_app() -> web.Application:
    app = web.Application()
    app.router.add_route("POST", "/{tail:.*}", handle)
    return app


async def start_floor_server(port: int = 0) -> tuple[web.AppRunner, int]:
    """Start the floor server in this event loop; returns its runner and bound port.

    Stop it with ``await runner.cleanup()``.
    """
    runner = web.AppRunner(make_app(), access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, HOST, port)
    await site.start()
    return runner, int(runner.addresses[0][1])


async def serve(port: int) -> None:
    runner, bound = await start_floor_server(port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    print(f"ready {bound}", flush=True)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.floor_server", description=__doc__)
    parser.add_argument("--port", type=int, default=8099, help="0 picks a free port")
    args = parser.parse_args(argv)
    asyncio.run(serve(args.port))


if __name__ == "__main__":
    main()
