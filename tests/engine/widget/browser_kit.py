"""A real browser for the widget's tests: Debian's headless ``chromium`` driven by Playwright,
a host page served on 127.0.0.1 that embeds the widget with one script tag, and the engine
in one process (``tests.engine.one_process``).

The browser is the system's (``/usr/bin/chromium``, installed by the project's set-up,
``make .venv/.installed``): Playwright never downloads one. If it is missing the tests fail;
they are never skipped. The flags keep Chromium off the network: without the background
networking ones it tries to reach Google's services, which the closed network refuses.
"""

from __future__ import annotations

import os
import shutil
import struct
import zlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from aiohttp import web
from playwright.async_api import Browser, BrowserContext, Page, Route, async_playwright

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS_ENV = "OPENLINES_SCREENSHOTS"
"""A folder the screenshots are also copied to (``docs/img`` for the README's)."""

HOST_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Shop</title>
<style>
  /* A host page's own styles must not reach the widget (it lives in a shadow root). */
  * { font-family: serif !important; color: #8b0000 !important; }
  button { background: yellow !important; border: 5px dashed red !important; }
  body { margin: 40px; background: #fafafa; }
</style></head>
<body>
  <main><h1>Acme shop</h1>
  <p>Everything for your garden. <a href="#catalogue">Catalogue</a></p></main>
  <script src="{engine}/widget/{widget_id}/widget.js" async></script>
</body></html>
"""


@dataclass
class HostPage:
    """The site that embeds the widget, on its own origin."""

    origin: str
    runner: web.AppRunner
    engine_url: str = ""
    widget_id: str = ""

    async def stop(self) -> None:
        await self.runner.cleanup()


async def start_host_page() -> HostPage:
    page = HostPage("", web.AppRunner(web.Application()))

    async def index(request: web.Request) -> web.Response:
        html = HOST_PAGE.replace("{engine}", page.engine_url).replace("{widget_id}", page.widget_id)
        return web.Response(text=html, content_type="text/html")

    page.runner.app.router.add_get("/", index)
    await page.runner.setup()
    site = web.TCPSite(page.runner, "127.0.0.1", 0)
    await site.start()
    page.origin = f"http://127.0.0.1:{page.runner.addresses[0][1]}"
    return page


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            await launched.close()


class Screenshots:
    """The widget's states, saved as the test reaches them."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.saved: list[Path] = []

    async def take(self, page: Page, name: str) -> Path:
        path = self.folder / f"{name}.png"
        await page.screenshot(path=str(path))
        self.saved.append(path)
        copy_to = os.environ.get(SCREENSHOTS_ENV)
        if copy_to:
            Path(copy_to).mkdir(parents=True, exist_ok=True)
            shutil.copy(path, Path(copy_to) / path.name)
        return path


def solid_png(size: int, rgb: tuple[int, int, int]) -> bytes:
    """A square PNG of one colour: an avatar picture for the browser to load."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data))
            + kind
            + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        )

    row = b"\x00" + bytes(rgb) * size
    header = struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(row * size))
        + chunk(b"IEND", b"")
    )


async def serve_https_pictures(
    context: BrowserContext | Page, pictures: dict[str, bytes]
) -> list[str]:
    """Answer the browser's https requests from ``pictures`` (URL to PNG) inside the browser:
    nothing leaves the machine, any other https URL fails as an unreachable host does.
    Returns the URLs the page asked for, in order."""
    asked: list[str] = []

    async def answer(route: Route) -> None:
        url = route.request.url
        asked.append(url)
        if url in pictures:
            await route.fulfill(status=200, content_type="image/png", body=pictures[url])
        else:
            await route.abort("addressunreachable")

    await context.route("https://**/*", answer)
    return asked
