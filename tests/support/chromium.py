"""Headless Chromium driven over the Chrome DevTools Protocol: a browser for end-to-end tests.

Debian's `chromium` (no Selenium, no Playwright, nothing downloaded): started with a fake
microphone that plays a WAV file and permission prompts answered yes, and driven through one
page's DevTools WebSocket with a small CDP client.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import os
import shutil
import signal
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import websockets

from tests.support.availability import unavailable

# The names scripts/chromium.sh looks for; KANE_CHROMIUM names another binary.
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")


def find_chromium() -> Path | None:
    """Chromium's path: KANE_CHROMIUM, else the first of `CHROMIUM_NAMES` on PATH."""
    named = os.environ.get("KANE_CHROMIUM")
    if named:
        return Path(named) if Path(named).exists() else None
    found = next((path for name in CHROMIUM_NAMES if (path := shutil.which(name))), None)
    return Path(found) if found else None


def require_chromium() -> Path:
    """Chromium's path; skips the test without it (fails it when CI=true)."""
    binary = find_chromium()
    if binary is not None:
        return binary
    unavailable("chromium", "not found (scripts/chromium.sh install, or set KANE_CHROMIUM)")


class CDPError(RuntimeError):
    """A DevTools command failed, or a page script threw."""


class Page:
    """One browser tab, spoken to over its DevTools WebSocket."""

    def __init__(self, ws: websockets.ClientConnection):
        self._ws = ws
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self.console: list[str] = []
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for raw in self._ws:
            message = json.loads(raw)
            future = self._pending.pop(message.get("id", -1), None)
            if future is not None and not future.done():
                future.set_result(message)
            elif message.get("method") == "Runtime.consoleAPICalled":
                args = message["params"]["args"]
                self.console.append(
                    " ".join(str(a.get("value", a.get("description"))) for a in args)
                )
            elif message.get("method") == "Runtime.exceptionThrown":
                details = message["params"]["exceptionDetails"]
                self.console.append(f"exception: {details.get('exception', details)}")

    async def send(self, method: str, timeout_s: float = 30, **params: Any) -> dict[str, Any]:
        """Run one CDP command; returns its result."""
        message_id = next(self._ids)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[message_id] = future
        await self._ws.send(json.dumps({"id": message_id, "method": method, "params": params}))
        reply = await asyncio.wait_for(future, timeout_s)
        if "error" in reply:
            raise CDPError(f"{method}: {reply['error']}")
        return reply["result"]

    async def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page (promises awaited)."""
        result = await self.send(
            "Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True
        )
        if "exceptionDetails" in result:
            raise CDPError(f"{expression!r} threw: {result['exceptionDetails']}")
        return result["result"].get("value")

    async def goto(self, url: str) -> None:
        """Load `url` and wait until its document is ready."""
        await self.send("Page.navigate", url=url)
        await self.wait_for("document.readyState === 'complete'", timeout_s=15)

    async def wait_for(self, expression: str, *, timeout_s: float, every_s: float = 0.1) -> Any:
        """Poll a JavaScript expression until it is truthy; returns its value."""
        deadline = time.monotonic() + timeout_s
        while True:
            value = await self.evaluate(expression)
            if value:
                return value
            if time.monotonic() > deadline:
                raise TimeoutError(f"{expression!r} still falsy after {timeout_s:g} s")
            await asyncio.sleep(every_s)

    async def screenshot(self, path: Path) -> Path:
        """Save a PNG of what the page shows."""
        result = await self.send("Page.captureScreenshot", format="png")
        path.write_bytes(base64.b64decode(result["data"]))
        return path

    async def close(self) -> None:
        self._reader.cancel()
        await asyncio.gather(self._reader, return_exceptions=True)
        await self._ws.close()


@asynccontextmanager
async def chromium_page(
    *, fake_microphone: Path, width: int = 1280, height: int = 900
) -> AsyncIterator[Page]:
    """Start headless Chromium with `fake_microphone` as its microphone; yield a blank tab.

    The WAV plays in a loop once a page opens the microphone; permission prompts are
    granted, and audio plays without a click.
    """
    binary = require_chromium()
    profile = Path(tempfile.mkdtemp(prefix="kane-chromium-"))
    args = [
        str(binary),
        "--headless=new",
        "--no-sandbox",  # CI containers run as root
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--no-default-browser-check",
        "--disable-extensions",
        "--disable-background-networking",
        "--disable-component-update",
        f"--user-data-dir={profile}",
        "--remote-debugging-address=127.0.0.1",
        "--remote-debugging-port=0",
        f"--window-size={width},{height}",
        "--use-fake-ui-for-media-stream",
        # WebRTC on 127.0.0.1 (the worker offers loopback candidates only in tests).
        "--allow-loopback-in-peer-connection",
        "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-audio-capture={fake_microphone}",
        "--autoplay-policy=no-user-gesture-required",
        "about:blank",
    ]
    log = (profile / "chromium.log").open("wb")
    process = await asyncio.create_subprocess_exec(
        *args, stdout=log, stderr=log, start_new_session=True
    )
    page: Page | None = None
    try:
        port = await _devtools_port(profile, process)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=5) as http:
            targets = (await http.get("/json/list")).json()
        target = next(t for t in targets if t["type"] == "page")
        ws = await websockets.connect(target["webSocketDebuggerUrl"], max_size=64 * 2**20)
        page = Page(ws)
        await page.send("Page.enable")
        await page.send("Runtime.enable")
        await page.send(
            "Emulation.setDeviceMetricsOverride",
            width=width,
            height=height,
            deviceScaleFactor=1,
            mobile=False,
        )
        yield page
    finally:
        if page is not None:
            await page.close()
        if process.returncode is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                await asyncio.wait_for(process.wait(), 10)
            except TimeoutError:
                os.killpg(process.pid, signal.SIGKILL)
                await process.wait()
        log.close()
        shutil.rmtree(profile, ignore_errors=True)


async def _devtools_port(profile: Path, process: asyncio.subprocess.Process) -> int:
    """Chromium writes the port it chose to `DevToolsActivePort` in its profile."""
    active = profile / "DevToolsActivePort"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.returncode is not None:
            log = (profile / "chromium.log").read_text(errors="replace")
            raise RuntimeError(f"chromium exited with {process.returncode}:\n{log[-3000:]}")
        if active.exists():
            lines = active.read_text().splitlines()
            if lines and lines[0].isdigit():
                return int(lines[0])
        await asyncio.sleep(0.05)
    raise TimeoutError("chromium never opened its DevTools port")
