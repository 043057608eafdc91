"""KANE's OpenAI LLM service sends what the SDK's `chat.completions.create` would send."""

from __future__ import annotations

import json
from typing import Any

import pytest
from openai import DefaultAsyncHttpxClient
from pipecat.processors.aggregators.llm_context import LLMContext

from emulators import OpenAIEmulator, ToolCall
from processors.notes import note_message
from quests.tools import quest_tools_schema
from services.openai_llm import SharedClientOpenAILLMService


@pytest.fixture
async def emu():
    async with OpenAIEmulator() as emulator:
        yield emulator


@pytest.fixture
async def http():
    client = DefaultAsyncHttpxClient()
    yield client
    await client.aclose()


def service(emu: OpenAIEmulator, http: DefaultAsyncHttpxClient) -> SharedClientOpenAILLMService:
    return SharedClientOpenAILLMService(
        api_key="test-key",
        base_url=emu.base_url,
        http_client=http,
        settings=SharedClientOpenAILLMService.Settings(
            model="gpt-4.1-mini",
            system_instruction="You are KANE.",
            temperature=0.4,
            extra={
                "extra_body": {"prompt_cache_key": "kane-test"},
                "extra_headers": {"X-Kane-Test": "yes"},
            },
        ),
    )


def context() -> LLMContext:
    return LLMContext(
        messages=[
            {"role": "user", "content": "My main quest today is to ship the onboarding flow."},
            {"role": "assistant", "content": "Got it. What comes next?"},
            note_message("The person named a main quest; ask how they will know."),
            {"role": "user", "content": "When new users can sign up on their own."},
        ],
        tools=quest_tools_schema(),
    )


def header(request: Any, name: str) -> str | None:
    return {k.lower(): v for k, v in request.headers.items()}.get(name)


async def drain(stream: Any) -> list[Any]:
    return [chunk async for chunk in stream]


async def test_the_request_is_the_one_the_sdk_would_send(emu, http):
    llm = service(emu, http)
    ctx = context()

    ours = await drain(await llm.get_chat_completions(ctx))

    invocation = await llm.get_llm_adapter().get_llm_invocation_params(
        ctx, system_instruction="You are KANE.", convert_developer_to_user=False
    )
    params = llm.build_chat_completion_params(invocation)
    sdks = await drain(await llm._client.chat.completions.create(**params))

    ours_request, sdk_request = emu.recorded("chat")
    assert ours_request.body == sdk_request.body
    body = ours_request.body
    assert body["messages"][0] == {"role": "system", "content": "You are KANE."}
    assert [m["role"] for m in body["messages"]] == [
        "system",
        "user",
        "assistant",
        "developer",
        "user",
    ]
    assert {t["function"]["name"] for t in body["tools"]} >= {"create_quest", "complete_quest"}
    assert body["temperature"] == 0.4
    assert body["prompt_cache_key"] == "kane-test"  # extra_body, merged as the SDK merges it
    assert "seed" not in body and "service_tier" not in body  # unset: left out
    assert header(ours_request, "x-kane-test") == header(sdk_request, "x-kane-test") == "yes"
    text = "".join(c.choices[0].delta.content or "" for c in ours if c.choices)
    assert text and text == "".join(c.choices[0].delta.content or "" for c in sdks if c.choices)


async def test_tool_calls_stream_back_through_the_service(emu, http):
    emu.script_tool_calls(ToolCall("create_quest", {"title": "Ship onboarding"}))
    chunks = await drain(await service(emu, http).get_chat_completions(context()))

    deltas = [d for c in chunks if c.choices for d in c.choices[0].delta.tool_calls or []]
    assert "".join(d.function.name or "" for d in deltas) == "create_quest"
    assert json.loads("".join(d.function.arguments or "" for d in deltas)) == {
        "title": "Ship onboarding"
    }
    assert [c for c in chunks if c.choices][-1].choices[0].finish_reason == "tool_calls"
