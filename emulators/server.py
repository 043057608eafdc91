"""The aiohttp server every emulator builds on: lifecycle, control endpoint, recording."""

from __future__ import annotations

import asyncio
import time
from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from loguru import logger

from emulators.behavior import Behavior, Fault

_SECRET_HEADERS = {"authorization", "x-hume-api-key", "sec-websocket-protocol", "cookie"}


@dataclass
class RecordedRequest:
    """What an emulator received in one request or WebSocket connection.

    Parameters:
        endpoint: The emulator's name for the route, e.g. ``"chat"`` or ``"listen"``.
        method: HTTP method.
        path: Request path.
        query: Query parameters (a list where a name repeats).
        headers: Request headers with credentials replaced by ``"<redacted>"``.
        body: Parsed JSON body, if any.
        received_at: ``time.time()`` when the request arrived.
        fault: The fault injected into this request (``"none"`` if none).
        messages: JSON messages received on a WebSocket, in order.
        sent: Summaries of what the emulator answered (e.g. transcripts), in order.
        audio_bytes: Bytes of binary audio received on a WebSocket.
        audio: The binary audio itself (kept out of ``to_dict``).
    """

    endpoint: str
    method: str
    path: str
    query: dict[str, Any]
    headers: dict[str, str]
    body: Any = None
    received_at: float = field(default_factory=time.time)
    fault: str = Fault.NONE.value
    messages: list[Any] = field(default_factory=list)
    sent: list[Any] = field(default_factory=list)
    audio_bytes: int = 0
    audio: bytearray = field(default_factory=bytearray, repr=False)

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready copy without the raw audio."""
        return {
            "endpoint": self.endpoint,
            "method": self.method,
            "path": self.path,
            "query": self.query,
            "headers": self.headers,
            "body": self.body,
            "received_at": self.received_at,
            "fault": self.fault,
            "messages": self.messages,
            "sent": self.sent,
            "audio_bytes": self.audio_bytes,
        }


class EmulatorServer(ABC):
    """Base of the loopback emulators: an aiohttp app on 127.0.0.1.

    Subclasses add the vendor routes in ``_add_routes`` and the scripting in
    ``script``. Use as ``async with Emulator() as emu:`` or ``await emu.start()``
    / ``await emu.stop()``.

    Control endpoint (no auth, never faulted):
        ``GET|POST /_emulator/behavior[?endpoint=NAME]`` read or partially update the
        behavior (JSON fields of ``Behavior``); ``GET|DELETE /_emulator/requests`` list
        or clear the recorded requests; ``POST /_emulator/script`` script the answers;
        ``POST /_emulator/reset`` restore defaults and clear everything.
    """

    name = "emulator"

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        api_key: str | None = None,
        behavior: Behavior | None = None,
    ) -> None:
        """Create the emulator (nothing listens until ``start``).

        Args:
            host: Interface to bind.
            port: TCP port; 0 picks a free one.
            api_key: If set, the only key accepted; otherwise any non-empty key is.
            behavior: Latency and faults for every endpoint.
        """
        self._host = host
        self._port = port
        self._api_key = api_key
        self.behavior = behavior or Behavior()
        self.endpoint_behaviors: dict[str, Behavior] = {}
        self.requests: list[RecordedRequest] = []
        self._runner: web.AppRunner | None = None
        self._closing = asyncio.Event()
        self._websockets: set[web.WebSocketResponse] = set()

    def __str__(self) -> str:
        return f"{self.name}@{self._port}"

    @property
    def url(self) -> str:
        """Root HTTP URL of the server (where ``/_emulator/...`` lives)."""
        return f"http://{self._host}:{self._port}"

    @property
    def base_url(self) -> str:
        """The URL a client of this vendor is configured with."""
        return self.url

    async def start(self) -> str:
        """Start listening.

        Returns:
            ``base_url``, the URL to give the vendor's client.
        """
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/_emulator/behavior", self._handle_behavior)
        app.router.add_route("*", "/_emulator/requests", self._handle_requests)
        app.router.add_post("/_emulator/script", self._handle_script)
        app.router.add_post("/_emulator/reset", self._handle_reset)
        self._add_routes(app)
        app.on_shutdown.append(self._close_websockets)
        self._closing = asyncio.Event()
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self._host, self._port)
        await site.start()
        self._port = self._runner.addresses[0][1]
        logger.debug(f"{self}: listening on {self.url}")
        return self.base_url

    async def stop(self) -> None:
        """Stop listening, release stalled requests and close open connections."""
        if not self._runner:
            return
        self._closing.set()
        await self._runner.cleanup()
        self._runner = None
        logger.debug(f"{self}: stopped")

    async def __aenter__(self) -> EmulatorServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def behavior_for(self, endpoint: str) -> Behavior:
        """Return the behavior that governs ``endpoint`` (its own, else the shared one)."""
        return self.endpoint_behaviors.get(endpoint, self.behavior)

    def set_behavior(self, endpoint: str | None = None, **changes: Any) -> Behavior:
        """Update the shared behavior, or give ``endpoint`` its own.

        Args:
            endpoint: Route name (e.g. ``"speech"``); ``None`` for the shared behavior.
            **changes: ``Behavior`` fields to set.

        Returns:
            The updated behavior.
        """
        if endpoint is None:
            target = self.behavior
        else:
            target = self.endpoint_behaviors.setdefault(endpoint, Behavior())
        target.update(changes)
        return target

    def script(self, payload: dict[str, Any]) -> None:
        """Script the next answers from a JSON payload (see the subclass).

        Raises:
            ValueError: If this emulator has nothing to script or the payload is bad.
        """
        raise ValueError(f"{self.name} has nothing to script")

    def reset(self) -> None:
        """Restore default behavior and script, and forget recorded requests."""
        self.behavior = Behavior()
        self.endpoint_behaviors.clear()
        self.requests.clear()

    def recorded(self, endpoint: str | None = None) -> list[RecordedRequest]:
        """Return the recorded requests, optionally only those of one endpoint."""
        return [r for r in self.requests if endpoint is None or r.endpoint == endpoint]

    # Subclass hooks and helpers.

    @abstractmethod
    def _add_routes(self, app: web.Application) -> None:
        """Add the vendor's routes to the emulator's app."""

    def _key_ok(self, key: str | None) -> bool:
        if not key:
            return False
        return self._api_key is None or key == self._api_key

    def _record(self, request: web.Request, endpoint: str, body: Any = None) -> RecordedRequest:
        query: dict[str, Any] = {}
        for name in request.query:
            values = request.query.getall(name)
            query[name] = values[0] if len(values) == 1 else list(values)
        headers = {
            k: ("<redacted>" if k.lower() in _SECRET_HEADERS else v)
            for k, v in request.headers.items()
        }
        record = RecordedRequest(
            endpoint=endpoint,
            method=request.method,
            path=request.path,
            query=query,
            headers=headers,
            body=body,
        )
        self.requests.append(record)
        return record

    def _claim_fault(self, endpoint: str, record: RecordedRequest) -> tuple[Behavior, Fault]:
        behavior = self.behavior_for(endpoint)
        fault = behavior.claim_fault()
        record.fault = fault.value
        if fault is not Fault.NONE:
            logger.info(f"{self}: injecting {fault.value} into {endpoint}")
        return behavior, fault

    async def _stall(self) -> None:
        """Wait until the emulator stops: a request that is never answered."""
        await self._closing.wait()

    @staticmethod
    def _cut(request: web.Request) -> None:
        """Drop the TCP connection without a proper end (no close frame, no last chunk)."""
        if request.transport is not None:
            request.transport.abort()

    async def _refuse(self, request: web.Request, fault: Fault) -> web.Response:
        """Stall or drop a request before any answer: no status line ever arrives."""
        if fault is Fault.STALL:
            await self._stall()
        self._cut(request)
        return web.Response(status=503)

    async def _stream(
        self,
        request: web.Request,
        behavior: Behavior,
        fault: Fault,
        pieces: Iterable[bytes],
        content_type: str,
        tail: bytes,
    ) -> web.StreamResponse:
        """Stream ``pieces`` paced by ``behavior``, injecting a mid-stream fault."""
        if fault is not Fault.NONE and behavior.fault_after <= 0:
            return await self._refuse(request, fault)
        response = web.StreamResponse(headers={"Content-Type": content_type})
        await response.prepare(request)
        await asyncio.sleep(behavior.first_latency_s)
        sent = 0
        for piece in pieces:
            if fault is not Fault.NONE and sent >= behavior.fault_after:
                if fault is Fault.STALL:
                    await self._stall()
                logger.debug(f"{self}: cutting stream after {sent} pieces")
                self._cut(request)
                return response
            if sent:
                await asyncio.sleep(behavior.chunk_interval_s)
            await response.write(piece)
            sent += 1
        if tail:
            await response.write(tail)
        await response.write_eof()
        return response

    def _track(self, ws: web.WebSocketResponse) -> None:
        self._websockets.add(ws)

    def _untrack(self, ws: web.WebSocketResponse) -> None:
        self._websockets.discard(ws)

    async def _close_websockets(self, app: web.Application) -> None:
        for ws in list(self._websockets):
            await ws.close(code=1001, message=b"emulator shutting down")

    # Control endpoint.

    async def _handle_behavior(self, request: web.Request) -> web.Response:
        endpoint = request.query.get("endpoint")
        if request.method == "POST":
            try:
                behavior = self.set_behavior(endpoint, **(await request.json()))
            except (ValueError, TypeError) as e:
                return web.json_response({"error": str(e)}, status=400)
            return web.json_response(behavior.to_dict())
        if request.method != "GET":
            raise web.HTTPMethodNotAllowed(request.method, ["GET", "POST"])
        return web.json_response(self.behavior_for(endpoint or "").to_dict())

    async def _handle_requests(self, request: web.Request) -> web.Response:
        if request.method == "DELETE":
            self.requests.clear()
            return web.json_response([])
        if request.method != "GET":
            raise web.HTTPMethodNotAllowed(request.method, ["GET", "DELETE"])
        endpoint = request.query.get("endpoint")
        return web.json_response([r.to_dict() for r in self.recorded(endpoint)])

    async def _handle_script(self, request: web.Request) -> web.Response:
        try:
            self.script(await request.json())
        except (ValueError, TypeError, KeyError) as e:
            return web.json_response({"error": str(e)}, status=400)
        return web.json_response({"ok": True})

    async def _handle_reset(self, request: web.Request) -> web.Response:
        self.reset()
        return web.json_response({"ok": True})
