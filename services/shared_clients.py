"""The HTTP client every session's OpenAI services send through, one per worker process.

Each `AsyncOpenAI` client Pipecat builds makes its own HTTP client, and with it an SSL
context that reads the CA bundle from disk: ~50 ms per service per session, on the event
loop every other session's audio runs on. Sessions here share one client instead, with one
SSL context and one pool of kept-alive connections. It holds no credentials: each service's
`AsyncOpenAI` adds its own key to the requests it sends.

The client is made on first use, or ahead of the first session by `preload_shared_clients`.
Sessions never close it (Pipecat's OpenAI services do not
close a client they are given); the worker closes it on shutdown with
`aclose_shared_clients`, and a session started after that gets a new one.
"""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass

from loguru import logger
from openai import DefaultAsyncHttpxClient
from pipecat.utils.http import connection_limits


@dataclass
class _SharedClient:
    client: DefaultAsyncHttpxClient | None = None
    loop: asyncio.AbstractEventLoop | None = None


_openai = _SharedClient()
_openai_lock = threading.Lock()


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def openai_http_client() -> DefaultAsyncHttpxClient:
    """Return the process's HTTP client for OpenAI services, making it on the first call.

    Pass it as `http_client` to `AsyncOpenAI` or `OpenAITTSService`. Its connections belong
    to the event loop they were opened on, so a caller on another loop (a test's, a second
    `asyncio.run`) gets a client of its own; the worker runs on one loop and shares one.

    Returns:
        An `openai.DefaultAsyncHttpxClient` with the connection limits Pipecat's OpenAI LLM
        service gives its own.
    """
    loop = _running_loop()
    shared = _openai
    with _openai_lock:
        client = shared.client
        if client is not None and not client.is_closed:
            if shared.loop is None:
                shared.loop = loop
                return client
            if not shared.loop.is_closed() and loop in (None, shared.loop):
                return client
            logger.debug("shared_clients: another event loop; it gets an OpenAI HTTP client")
        client = DefaultAsyncHttpxClient(
            limits=connection_limits(
                max_keepalive_connections=100, max_connections=1000, keepalive_expiry=None
            )
        )
        shared.client, shared.loop = client, loop
        return client


async def preload_shared_clients() -> None:
    """Make the shared client on a worker thread, so the first session does not wait for it.

    Optional: without it the first session makes the client (its SSL context reads the CA
    bundle, 150-300 ms the first time in a process) on the event loop.
    """
    await asyncio.to_thread(openai_http_client)


async def aclose_shared_clients() -> None:
    """Close the shared HTTP client; call it once, when the worker stops.

    Sessions still running would fail their next OpenAI request, so end them first. Safe to
    call when no client was made, and more than once.
    """
    shared = _openai
    with _openai_lock:
        client, shared.client, shared.loop = shared.client, None, None
    if client is not None and not client.is_closed:
        await client.aclose()
        logger.debug("shared_clients: closed the OpenAI HTTP client")
