"""Every session's OpenAI services send through the worker's one HTTP client."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest
from pipecat.frames.frames import LLMContextFrame, LLMTextFrame, TTSAudioRawFrame, TTSSpeakFrame
from pipecat.processors.aggregators.llm_context import LLMContext
from pipecat.tests.utils import SleepFrame, run_test

from emulators import OpenAIEmulator
from services.factory import build_llm, build_tts
from services.shared_clients import (
    aclose_shared_clients,
    openai_http_client,
    preload_shared_clients,
)
from settings import Settings
from tests.support.emulators import of_type

KEY = "test-key"


@pytest.fixture
async def emu():
    async with OpenAIEmulator(api_key=KEY) as emulator:
        yield emulator


@pytest.fixture
async def http():
    async with aiohttp.ClientSession() as session:
        yield session
    # The worker closes the shared client on shutdown; each test does here.
    await aclose_shared_clients()


def openai_settings(emu: OpenAIEmulator) -> Settings:
    return Settings(
        _env_file=None,
        kane_llm="openai",
        kane_tts="openai",
        openai_api_key=KEY,
        openai_base_url=emu.base_url,
        openai_model="gpt-4o-mini",
    )


async def answer(llm, words: str) -> str:
    context = LLMContext(messages=[{"role": "user", "content": words}])
    down, _ = await run_test(llm, frames_to_send=[LLMContextFrame(context=context)])
    return "".join(f.text for f in of_type(down, LLMTextFrame))


async def speak(tts, text: str) -> int:
    down, _ = await run_test(tts, frames_to_send=[TTSSpeakFrame(text), SleepFrame(sleep=0.3)])
    return sum(len(f.audio) for f in of_type(down, TTSAudioRawFrame))


async def test_two_sessions_send_through_one_client_that_outlives_either(emu, http):
    settings = openai_settings(emu)
    sent: list[str] = []

    async def record(request) -> None:
        sent.append(request.url.path)

    client = openai_http_client()
    client.event_hooks["request"].append(record)
    first = (build_llm(settings, system_instruction="You are KANE."), build_tts(settings, http))
    second = (build_llm(settings, system_instruction="You are KANE."), build_tts(settings, http))

    # The first session answers, speaks and ends (run_test stops and cleans up its services).
    assert await answer(first[0], "ship the onboarding flow")
    assert await speak(first[1], "Your main quest is set.") > 0
    # The second session still has a working client after that.
    assert await answer(second[0], "fix the login bug")
    assert await speak(second[1], "Side quest noted.") > 0

    assert not client.is_closed and openai_http_client() is client
    assert sent == ["/v1/chat/completions", "/v1/audio/speech"] * 2
    assert len(emu.recorded("chat")) == 2 and len(emu.recorded("speech")) == 2


async def test_closing_at_shutdown_leaves_a_fresh_client_for_a_later_session(emu, http):
    settings = openai_settings(emu)
    before = openai_http_client()

    await aclose_shared_clients()
    await aclose_shared_clients()  # a second close is harmless

    assert before.is_closed
    llm = build_llm(settings, system_instruction="You are KANE.")
    assert await answer(llm, "plan the sprint")
    after = openai_http_client()
    assert after is not before and not after.is_closed


async def test_a_client_preloaded_on_a_thread_serves_the_first_session(emu, http):
    await aclose_shared_clients()
    await preload_shared_clients()
    preloaded = openai_http_client()

    llm = build_llm(openai_settings(emu), system_instruction="You are KANE.")

    assert await answer(llm, "write the release notes")
    assert openai_http_client() is preloaded


def test_another_event_loop_gets_a_client_of_its_own():
    async def client():
        return openai_http_client()

    first = asyncio.run(client())
    second = asyncio.run(client())
    assert first is not second
    asyncio.run(aclose_shared_clients())
    assert second.is_closed
