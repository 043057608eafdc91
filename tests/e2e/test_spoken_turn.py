"""A spoken turn through a real LiveKit server, the worker process and emulated cloud services."""

import asyncio
import json

import pytest

from client.audio import level_dbfs
from emulators.behavior import Fault
from tests.e2e.conftest import (
    LLM_FIRST_TOKEN_S,
    RESULTS,
    STT_FINAL_S,
    TTS_FIRST_BYTE_S,
    join,
    session_row,
)
from tests.support.speech import ONBOARDING_SENTENCE

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


async def test_a_spoken_turn_round_trips(worker, stt, openai, onboarding_wav, database_dsn):
    stt.script_utterance(ONBOARDING_SENTENCE)
    grant, client = await join(worker, "ada")
    try:
        # KANE greets the person first; they answer once it is quiet.
        assert await client.wait_for_bot_audio(timeout_s=20, after=0.0) is not None
        assert await client.wait_for_bot_silence(0.8, timeout_s=20)

        await client.speak(onboarding_wav)
        latency = await client.wait_for_bot_audio(timeout_s=20)
        assert latency is not None, "the bot never answered the spoken turn"
        await client.wait_for_bot_silence(0.8, timeout_s=20)

        user_turns = [
            message["content"]
            for request in openai.chat_requests()
            for message in request["messages"]
            if message["role"] == "user"
        ]
        assert any("onboarding flow" in str(turn) for turn in user_turns), user_turns
        assert "You are KANE" in json.dumps(openai.chat_requests()[-1])
        assert level_dbfs(client.bot_audio) > -45, "the bot's audio is silence"

        health = await worker.health()
        assert health["status"] == "ok" and health["sessions"]["active"] == 1
    finally:
        await client.close()

    row = await worker.wait_for(
        lambda h: any(
            e["session_id"] == grant["session_id"] for e in h["sessions"]["recent_endings"]
        ),
        timeout_s=15,
    )
    assert row
    record = await session_row(database_dsn, grant["session_id"])
    assert record["user_id"] == "ada" and record["ended_at"] is not None
    assert "left" in record["end_reason"]

    RESULTS.mkdir(parents=True, exist_ok=True)
    result = {
        "voice_to_voice_s": round(latency, 3),
        "emulated": {
            "stt_final_s": STT_FINAL_S,
            "llm_first_token_s": LLM_FIRST_TOKEN_S,
            "tts_first_byte_s": TTS_FIRST_BYTE_S,
        },
    }
    (RESULTS / "e2e_voice_to_voice.json").write_text(json.dumps(result, indent=2))
    print(f"\nvoice-to-voice latency: {latency * 1000:.0f} ms with {result['emulated']}")


async def test_at_its_limit_the_worker_answers_503_with_retry_after(worker, onboarding_wav):
    grant, client = await join(worker, "ada")
    try:
        response = await worker.connect("grace")
        assert response.status_code == 503
        assert int(response.headers["retry-after"]) > 0
    finally:
        await client.close()


async def test_a_speech_service_that_drops_for_good_ends_the_session_not_the_worker(
    worker, stt, onboarding_wav
):
    # The connection drops at the first transcript, and Deepgram refuses to come back.
    stt.set_behavior("listen", fault=Fault.DROP, fault_after=0)
    grant, client = await join(worker, "ada")
    try:
        await client.speak(onboarding_wav)
        for _ in range(100):
            if any(r.fault == "drop" for r in stt.recorded("listen")):
                break
            await asyncio.sleep(0.1)
        stt.set_behavior("listen", fault=Fault.HTTP_500)
        ending = await worker.wait_for(
            lambda h: [
                e for e in h["sessions"]["recent_endings"] if e["session_id"] == grant["session_id"]
            ],
            timeout_s=90,
        )
    finally:
        await client.close()
    assert "DeepgramSTTService" in ending[0]["reason"], ending
    health = await worker.health()
    assert health["database"]["ok"] and health["sessions"]["active"] == 0
    assert "DeepgramSTTService" in worker.log()
    # The worker still starts sessions.
    stt.set_behavior("listen", fault=Fault.NONE)
    response = await worker.connect("grace")
    assert response.status_code == 200


async def test_sigterm_ends_running_sessions_cleanly(worker, database_dsn):
    grant, client = await join(worker, "ada")
    try:
        await client.wait_for_bot_audio(timeout_s=20, after=0.0)
        assert await worker.terminate() == 0
    finally:
        await client.close()
    record = await session_row(database_dsn, grant["session_id"])
    assert record["ended_at"] is not None
    assert "shutting down" in record["end_reason"]
