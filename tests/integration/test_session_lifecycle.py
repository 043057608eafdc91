import asyncio
import socket

import aiohttp

from bot import SessionPlace, create_session, run_session
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
