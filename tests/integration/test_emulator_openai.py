import base64
import json
import time

import httpx
import openai
import pytest
from openai import AsyncOpenAI
from pipecat.adapters.llm.schemas.function_schema import FunctionSchema
from pipecat.adapters.llm.schemas.tools_schema import ToolsSchema
from pipecat.frames.frames import (
    ErrorFrame,
    FunctionCallInProgressFrame,
    LLMContextFrame,
    LLMTextFrame,
    TTSAudioRawFrame,
    TTSSpeakFrame,
)
from pipecat.processors.aggregators.llm_context import LLMContext
from pipecat.services.openai.llm import OpenAILLMService
from pipecat.services.openai.tts import OpenAITTSService
from pipecat.tests.utils import SleepFrame, run_test

from emulators import Fault, OpenAIEmulator, ToolCall
from emulators.synth import rms
from tests.support.emulators import of_type

USER = [{"role": "user", "content": "first fix the login bug"}]
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "create_quest",
            "description": "Create a quest.",
            "parameters": {
                "type": "object",
                "properties": {"title": {"type": "string"}, "kind": {"type": "string"}},
            },
        },
    }
]


@pytest.fixture
async def emu():
    async with OpenAIEmulator() as emulator:
        yield emulator


@pytest.fixture
def client(emu):
    return AsyncOpenAI(api_key="test-key", base_url=emu.base_url, max_retries=0, timeout=5)


async def stream_chat(client, **kwargs):
    stream = await client.chat.completions.create(
        model="gpt-4o-mini", messages=USER, stream=True, **kwargs
    )
    return [chunk async for chunk in stream]


async def test_streamed_default_reply_quotes_the_user_and_reports_usage(emu, client):
    chunks = await stream_chat(client, stream_options={"include_usage": True})

    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == 'Got it: "first fix the login bug". What\'s your main quest today?'
    assert len([c for c in chunks if c.choices and c.choices[0].delta.content]) > 5
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens > 0
    assert chunks[-1].usage.total_tokens == (
        chunks[-1].usage.prompt_tokens + chunks[-1].usage.completion_tokens
    )
    assert emu.chat_requests()[0]["messages"] == USER
    assert emu.recorded("chat")[0].headers["Authorization"] == "<redacted>"


async def test_scripted_replies_are_used_in_order(emu, client):
    emu.script_reply("Main quest set.")
    emu.script({"replies": ["Side quest set.", {"text": "Done."}], "default_reply": "Echo {user}"})

    texts = []
    for _ in range(4):
        reply = await client.chat.completions.create(model="gpt-4o", messages=USER)
        texts.append(reply.choices[0].message.content)

    assert texts == ["Main quest set.", "Side quest set.", "Done.", "Echo first fix the login bug"]
    assert reply.usage.prompt_tokens > 0


async def test_streamed_tool_calls_arrive_as_indexed_deltas(emu, client):
    emu.script_tool_calls(
        ToolCall("create_quest", {"title": "Fix the login bug", "kind": "main"}),
        ToolCall("create_quest", {"title": "Ship onboarding", "kind": "side"}, id="call_2"),
    )

    chunks = await stream_chat(client, tools=TOOLS)

    calls: dict[int, dict] = {}
    for chunk in chunks:
        for delta in chunk.choices[0].delta.tool_calls or []:
            call = calls.setdefault(delta.index, {"id": None, "name": "", "arguments": ""})
            call["id"] = delta.id or call["id"]
            call["name"] += delta.function.name or ""
            call["arguments"] += delta.function.arguments or ""
    assert chunks[-1].choices[0].finish_reason == "tool_calls"
    assert [c["name"] for c in calls.values()] == ["create_quest", "create_quest"]
    assert json.loads(calls[0]["arguments"]) == {"title": "Fix the login bug", "kind": "main"}
    assert calls[0]["id"].startswith("call_") and calls[1]["id"] == "call_2"
    argument_chunks = [c for c in chunks if c.choices[0].delta.tool_calls]
    assert len(argument_chunks) > 4
    assert emu.chat_requests()[0]["tools"] == TOOLS


async def test_non_streamed_tool_call(emu, client):
    emu.script_tool_calls(ToolCall("create_quest", {"title": "Plan"}))

    reply = await client.chat.completions.create(model="gpt-4o", messages=USER, tools=TOOLS)

    assert reply.choices[0].finish_reason == "tool_calls"
    call = reply.choices[0].message.tool_calls[0]
    assert call.function.name == "create_quest"
    assert json.loads(call.function.arguments) == {"title": "Plan"}


async def test_models_are_listed(client):
    models = [m.id async for m in client.models.list()]

    assert "gpt-4o-mini" in models and "gpt-4o-mini-tts" in models


async def test_requests_without_a_bearer_key_get_401(emu):
    async with httpx.AsyncClient() as http:
        response = await http.post(f"{emu.base_url}/chat/completions", json={})

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_api_key"
    assert emu.requests == []


async def test_http_500_fault_raises_then_the_sdk_retry_succeeds(emu, client):
    emu.set_behavior(fault=Fault.HTTP_500, fault_count=1)
    with pytest.raises(openai.InternalServerError):
        await client.chat.completions.create(model="gpt-4o", messages=USER)

    emu.set_behavior(fault=Fault.HTTP_500, fault_count=1)
    retrying = AsyncOpenAI(api_key="k", base_url=emu.base_url, max_retries=1)
    reply = await retrying.chat.completions.create(model="gpt-4o", messages=USER)

    assert reply.choices[0].message.content.startswith("Got it")
    assert [r.fault for r in emu.recorded("chat")] == ["http_500", "http_500", "none"]


async def test_drop_fault_cuts_the_stream_after_some_tokens(emu, client):
    emu.set_behavior(fault=Fault.DROP, fault_after=3, fault_count=1)
    received = []

    with pytest.raises(openai.APIConnectionError):
        stream = await client.chat.completions.create(model="gpt-4o", messages=USER, stream=True)
        async for chunk in stream:
            received.append(chunk)

    assert len(received) == 3


async def test_stall_fault_times_the_client_out(emu):
    emu.set_behavior(fault=Fault.STALL)
    client = AsyncOpenAI(api_key="k", base_url=emu.base_url, max_retries=0, timeout=0.5)

    with pytest.raises(openai.APITimeoutError):
        await client.chat.completions.create(model="gpt-4o", messages=USER)


async def test_first_token_latency_and_pacing(emu, client):
    emu.set_behavior(first_latency_s=0.4, chunk_interval_s=0.03)
    start = time.monotonic()
    stream = await client.chat.completions.create(model="gpt-4o", messages=USER, stream=True)
    stamps = [time.monotonic() - start async for _ in stream]

    assert 0.35 <= stamps[0] < 2.0
    assert stamps[-1] - stamps[0] >= 0.03 * (len(stamps) - 2) * 0.8


async def speech_bytes(client, text, **kwargs):
    params = {"model": "gpt-4o-mini-tts", "voice": "coral", "response_format": "pcm"}
    async with client.audio.speech.with_streaming_response.create(
        input=text, **{**params, **kwargs}
    ) as response:
        pieces = [piece async for piece in response.iter_bytes()]
    return b"".join(pieces), pieces


async def test_speech_streams_audible_pcm_proportional_to_the_text(emu, client):
    short, _ = await speech_bytes(client, "Hello there.")
    long, pieces = await speech_bytes(
        client, "Your main quest today is shipping onboarding.", instructions="Warm", speed=1.0
    )
    fast, _ = await speech_bytes(client, "Hello there.", speed=2.0)

    seconds = len(long) / 2 / 24_000
    assert seconds == pytest.approx(
        len("Your main quest today is shipping onboarding.") * 0.06, 0.01
    )
    assert len(long) > 3 * len(short)
    assert len(fast) == pytest.approx(len(short) / 2, rel=0.05)
    assert rms(long) > 1000
    assert len(pieces) > 1
    body = emu.recorded("speech")[1].body
    assert body["instructions"] == "Warm" and body["voice"] == "coral"
    assert body["model"] == "gpt-4o-mini-tts" and body["speed"] == 1.0


async def test_speech_as_wav_and_as_sse(emu, client):
    wav, _ = await speech_bytes(client, "Hi there", response_format="wav")
    sse, _ = await speech_bytes(client, "Hi there", stream_format="sse")

    assert wav[:4] == b"RIFF" and wav[8:12] == b"WAVE"
    events = [json.loads(line[6:]) for line in sse.decode().splitlines() if line]
    audio = b"".join(base64.b64decode(e["audio"]) for e in events[:-1])
    assert {e["type"] for e in events[:-1]} == {"speech.audio.delta"}
    assert events[-1]["type"] == "speech.audio.done" and events[-1]["usage"]["total_tokens"] > 0
    assert len(audio) == len(wav) - 44


async def test_speech_in_unsupported_format_is_a_bad_request(client):
    with pytest.raises(openai.BadRequestError):
        await speech_bytes(client, "Hi", response_format="mp3")


async def test_speech_first_byte_latency(emu, client):
    emu.set_behavior(endpoint="speech", first_latency_s=0.4)
    start = time.monotonic()
    async with client.audio.speech.with_streaming_response.create(
        model="tts-1", voice="alloy", input="Hello", response_format="pcm"
    ) as response:
        async for _ in response.iter_bytes():
            break
    first_byte = time.monotonic() - start
    reply = await client.chat.completions.create(model="gpt-4o", messages=USER)

    assert 0.35 <= first_byte < 2.0
    assert reply.choices[0].message.content  # chat keeps the shared (zero) latency
    assert emu.behavior.first_latency_s == 0.0


async def test_pipecat_llm_service_streams_text_for_the_user_transcript(emu):
    llm = OpenAILLMService(
        api_key="test-key",
        base_url=emu.base_url,
        settings=OpenAILLMService.Settings(model="gpt-4o-mini"),
    )
    context = LLMContext(messages=[{"role": "user", "content": "ship the onboarding flow"}])

    down, _ = await run_test(llm, frames_to_send=[LLMContextFrame(context=context)])

    text = "".join(f.text for f in of_type(down, LLMTextFrame))
    assert text == 'Got it: "ship the onboarding flow". What\'s your main quest today?'
    request = emu.chat_requests()[0]
    assert request["messages"][-1]["content"] == "ship the onboarding flow"
    assert request["stream"] is True and request["stream_options"] == {"include_usage": True}


async def test_pipecat_llm_service_runs_a_streamed_tool_call(emu):
    emu.script_tool_calls(ToolCall("create_quest", {"title": "Fix login", "kind": "main"}))
    llm = OpenAILLMService(
        api_key="test-key",
        base_url=emu.base_url,
        settings=OpenAILLMService.Settings(model="gpt-4o-mini"),
    )
    calls = []

    async def create_quest(params):
        calls.append(params.arguments)
        await params.result_callback({"ok": True})

    llm.register_function("create_quest", create_quest)
    quest = FunctionSchema(
        name="create_quest",
        description="Create a quest.",
        properties={"title": {"type": "string"}, "kind": {"type": "string"}},
        required=["title"],
    )
    context = LLMContext(messages=USER, tools=ToolsSchema(standard_tools=[quest]))

    down, _ = await run_test(
        llm, frames_to_send=[LLMContextFrame(context=context), SleepFrame(sleep=0.3)]
    )

    assert calls == [{"title": "Fix login", "kind": "main"}]
    assert of_type(down, FunctionCallInProgressFrame)[0].function_name == "create_quest"
    assert emu.chat_requests()[0]["tools"][0]["function"]["name"] == "create_quest"


async def test_pipecat_tts_service_yields_audio_and_sends_instructions(emu):
    tts = OpenAITTSService(
        api_key="test-key",
        base_url=emu.base_url,
        settings=OpenAITTSService.Settings(
            model="gpt-4o-mini-tts", voice="alloy", instructions="Cheerful coach"
        ),
    )

    down, _ = await run_test(
        tts, frames_to_send=[TTSSpeakFrame(text="Your main quest is set."), SleepFrame(sleep=0.5)]
    )

    audio = of_type(down, TTSAudioRawFrame)
    assert audio and all(f.sample_rate == 24_000 for f in audio)
    total = sum(len(f.audio) for f in audio)
    assert total / 2 / 24_000 == pytest.approx(len("Your main quest is set.") * 0.06, rel=0.1)
    body = emu.recorded("speech")[0].body
    assert body["instructions"] == "Cheerful coach"
    assert body["response_format"] == "pcm" and body["voice"] == "alloy"


async def test_pipecat_llm_service_pushes_an_error_on_http_500(emu):
    emu.set_behavior(endpoint="chat", fault=Fault.HTTP_500)
    llm = OpenAILLMService(
        api_key="test-key",
        base_url=emu.base_url,
        settings=OpenAILLMService.Settings(model="gpt-4o-mini"),
    )
    context = LLMContext(messages=USER)

    down, up = await run_test(llm, frames_to_send=[LLMContextFrame(context=context)])

    assert of_type(up, ErrorFrame)
    assert not of_type(down, LLMTextFrame)
