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
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from aiohttp import web
from playwright.async_api import Browser, Page, async_playwright

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
