"""The KANE worker as the platform runs it: `python -m api` in a process of its own."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class WorkerProcess:
    """A running worker: its HTTP API, its log, and how it ended."""

    base_url: str
    log_path: Path
    process: asyncio.subprocess.Process
    api_token: str
    returncode: int | None = None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    async def health(self) -> dict[str, Any]:
        async with httpx.AsyncClient(base_url=self.base_url, timeout=5) as http:
            return (await http.get("/health")).json()

    async def connect(self, user_id: str, **body: Any) -> httpx.Response:
        async with httpx.AsyncClient(base_url=self.base_url, timeout=15) as http:
            return await http.post(
                "/connect",
                json={"user_id": user_id, **body},
                headers={"Authorization": f"Bearer {self.api_token}"},
            )

    async def wait_for(self, probe, timeout_s: float) -> Any:
        """Poll /health until `probe(health)` is truthy; returns its value."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            value = probe(await self.health())
            if value:
                return value
            await asyncio.sleep(0.2)
        raise TimeoutError(f"worker health never satisfied the probe: {await self.health()}")

    async def terminate(self, timeout_s: float = 30) -> int:
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.process.wait(), timeout_s)
            except TimeoutError:
                self.process.kill()
                await self.process.wait()
        self.returncode = self.process.returncode
        return self.returncode


@asynccontextmanager
async def running_worker(env: dict[str, str], log_path: Path) -> AsyncIterator[WorkerProcess]:
    """Start `python -m api` with `env` on a free port; SIGTERM it afterwards."""
    port = free_port()
    api_token = env.setdefault("KANE_API_TOKEN", "e2e-shared-token-0123456789")
    full_env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("KANE_", "LIVEKIT_"))},
        "PORT": str(port),
        "KANE_HOST": "127.0.0.1",
        "KANE_LOG_LEVEL": "DEBUG",
        **env,
    }
    log = log_path.open("wb")
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "api", cwd=ROOT, env=full_env, stdout=log, stderr=log
    )
    worker = WorkerProcess(f"http://127.0.0.1:{port}", log_path, process, api_token)
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.returncode is not None:
                raise RuntimeError(f"worker exited with {process.returncode}:\n{worker.log()}")
            try:
                await worker.health()
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"worker never answered /health:\n{worker.log()}") from None
                await asyncio.sleep(0.2)
        yield worker
    finally:
        await worker.terminate()
        log.close()
