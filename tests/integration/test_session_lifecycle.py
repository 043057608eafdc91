import asyncio
import socket
from collections.abc import Awaitable, Callable

import aiohttp
from pipecat.pipeline.worker import PipelineWorker
from pipecat.processors.filters.identity_filter import IdentityFilter
from pipecat.workers.runner import WorkerRunner

from bot import SessionPlace, create_session, run_session, worker_options
from session.idle import IdleWatch
from session.lifecycle import SessionLifecycle
from settings import Settings
from tap.pipeline import TappedPipeline
from transport.livekit import KaneLiveKitTransport


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_a_bot_that_cannot_join_its_room_ends_the_session_with_the_reason():
    port = closed_port()
    settings = Settings(
        _env_file=None,
        deepgram_api_key="key",
        deepgram_base_url=f"ws://127.0.0.1:{port}",
        openai_api_key="key",
        openai_base_url=f"http://127.0.0.1:{port}/v1",
        kane_bot_join_timeout_s=1.0,
    )
    transport = KaneLiveKitTransport.for_room(
        url=f"ws://127.0.0.1:{port}", token="not-a-token", room_name="kane-nowhere"
    )
    place = SessionPlace(session_id="s1", user_id="ada", room="kane-nowhere")
    async with aiohttp.ClientSession() as http:
        session = create_session(place, transport, settings, http)
        reason = await asyncio.wait_for(run_session(session), timeout=30)
    assert "could not join" in reason


class EventsOnly:
    """A transport as the lifecycle sees one: event handlers, and an input queueing nothing."""

    def __init__(self) -> None:
        self.handlers: dict[str, Callable[..., Awaitable[None]]] = {}

    def input(self) -> IdentityFilter:
        return IdentityFilter()

    def add_event_handler(self, event_name: str, handler: Callable[..., Awaitable[None]]) -> None:
        self.handlers[event_name] = handler


async def test_an_idle_session_ends_itself_and_tells_why():
    # As bot.create_session builds it: Pipecat's idle observer off, KANE's watch inline.
    idle = IdleWatch(timeout_s=0.5)
    worker = PipelineWorker(TappedPipeline([IdentityFilter()], idle=idle), **worker_options())
    told: list[str] = []

    async def on_ending(reason: str) -> None:
        told.append(reason)

    transport = EventsOnly()
    lifecycle = SessionLifecycle(
        worker=worker,
        transport=transport,  # type: ignore[arg-type]
        user_identity="ada",
        on_ending=on_ending,
        idle=idle,
    )
    runner = WorkerRunner(handle_sigint=False)
    await runner.add_workers(worker)
    lifecycle.start()
    await transport.handlers["on_connected"](transport)
    await transport.handlers["on_participant_connected"](transport, "ada")
    try:
        await asyncio.wait_for(runner.run(), timeout=30)
    finally:
        await lifecycle.close()
    assert lifecycle.end_reason == "nothing happened in the session for too long"
    assert told == [lifecycle.end_reason]
