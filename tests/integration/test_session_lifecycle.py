import asyncio
import socket

import aiohttp
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.worker import PipelineWorker
from pipecat.processors.filters.identity_filter import IdentityFilter
from pipecat.workers.runner import WorkerRunner

from bot import SessionPlace, create_session, run_session
from session.lifecycle import SessionLifecycle
from settings import Settings
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
    """A transport as far as the lifecycle sees one: somewhere to hang event handlers."""

    def __init__(self) -> None:
        self.handlers: dict[str, object] = {}

    def add_event_handler(self, event_name: str, handler: object) -> None:
        self.handlers[event_name] = handler


async def test_an_idle_session_ends_itself_and_tells_why():
    worker = PipelineWorker(
        Pipeline([IdentityFilter()]),
        idle_timeout_secs=0.5,
        cancel_on_idle_timeout=False,
        enable_rtvi=False,
    )
    told: list[str] = []

    async def on_ending(reason: str) -> None:
        told.append(reason)

    lifecycle = SessionLifecycle(
        worker=worker, transport=EventsOnly(), user_identity="ada", on_ending=on_ending
    )
    runner = WorkerRunner(handle_sigint=False)
    await runner.add_workers(worker)
    await asyncio.wait_for(runner.run(), timeout=30)
    assert lifecycle.end_reason == "nothing happened in the session for too long"
    assert told == [lifecycle.end_reason]
