"""Quests form while the person speaks, become real through the LLM's tools, follow the screen."""

import asyncio
import json

import asyncpg
import pytest

from emulators import ToolCall
from tests.e2e.conftest import join
from tests.support.speech import ONBOARDING_SENTENCE, speech_wav

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

FOLLOW_UP = "I will know this one is done when it is live in the app store."


def first_index(items, predicate) -> int:
    return next(i for i, item in enumerate(items) if predicate(item))


async def wait_for_type(client, kind: str, timeout_s: float = 20):
    message = await client.wait_for_message(type=kind, timeout_s=timeout_s)
    assert message is not None, f"no {kind} reached the phone"
    return message


async def test_a_spoken_main_quest_becomes_real_and_the_screen_reaches_the_llm(
    worker, stt, openai, onboarding_wav, database_dsn
):
    stt.script_utterance(ONBOARDING_SENTENCE, FOLLOW_UP)
    openai.script_tool_calls(
        ToolCall("create_quest", {"title": "Ship the onboarding flow", "kind": "main"})
    )
    openai.script_reply("Great main quest. How will you know it's done?")
    grant, client = await join(worker, "ada")
    try:
        assert await client.wait_for_bot_audio(timeout_s=20, after=0.0) is not None
        assert await client.wait_for_bot_silence(0.8, timeout_s=20)
        await client.speak(onboarding_wav)
        created = await wait_for_type(client, "quest_created")
        quest = created.payload["data"]["quest"]
        assert quest["title"] == "Ship the onboarding flow" and quest["kind"] == "main"
        assert await client.wait_for_bot_silence(0.8, timeout_s=20)

        kane = [m for m in client.messages if m.topic == "kane" and m.kind == "data"]
        order = [m.type for m in kane]
        draft = first_index(kane, lambda m: m.type == "quest_draft")
        final = first_index(kane, lambda m: m.type == "final_transcript")
        call = first_index(kane, lambda m: m.type == "tool_call")
        made = first_index(kane, lambda m: m.type == "quest_created")
        partials = [m.payload["data"]["text"] for m in kane if m.type == "partial_transcript"]
        assert draft < final < call < made, (order, partials[-4:])
        assert "onboarding" in kane[draft].payload["data"]["title"].lower()
        assert kane[call].payload["data"]["name"] == "create_quest"

        # The person looks at the quest on the phone, then says how they'll know it's done.
        await client.send(
            {
                "v": 1,
                "type": "ui_state",
                "session_id": grant["session_id"],
                "seq": 1,
                "ts": 0,
                "data": {
                    "current_screen": "quest_detail",
                    "selected_quest": quest["id"],
                    "visible_quest_ids": [quest["id"]],
                },
            }
        )
        await asyncio.sleep(0.5)
        await client.speak(speech_wav(FOLLOW_UP))
        assert await client.wait_for_bot_audio(timeout_s=20) is not None
    finally:
        await client.close()

    last_request = json.dumps(openai.chat_requests()[-1])
    assert f"quest 'Ship the onboarding flow' (id {quest['id']})" in last_request
    assert "how they will know" in last_request  # the coach asks for success criteria

    conn = await asyncpg.connect(database_dsn)
    try:
        history = await conn.fetch(
            "SELECT version, title, trigger_phrase, source FROM quest_history"
            " WHERE quest_id = $1::uuid ORDER BY version",
            quest["id"],
        )
    finally:
        await conn.close()
    assert history[0]["version"] == 1
    assert history[0]["title"] == "Ship the onboarding flow"
    assert "onboarding flow" in history[0]["trigger_phrase"]
    assert history[0]["source"] == "llm"
