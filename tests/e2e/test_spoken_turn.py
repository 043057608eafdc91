"""A spoken turn through a real LiveKit server, the worker process and emulated cloud services."""

import asyncio
import json
import os
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from client.audio import level_dbfs
from client.reference_client import ReferenceClient
from emulators import DeepgramEmulator, OpenAIEmulator
from emulators.behavior import Behavior, Fault
from tests.support.livekit import LiveKitServer
from tests.support.speech import ONBOARDING_SENTENCE
from tests.support.worker import WorkerProcess, running_worker

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

# Emulated service latencies the turn runs with (stated in the results).
STT_FINAL_S = 0.15
LLM_FIRST_TOKEN_S = 0.6
TTS_FIRST_BYTE_S = 0.2
RESULTS = Path(os.environ.get("KANE_RESULTS_DIR", ".cache/results"))


@pytest.fixture
async def stt() -> AsyncIterator[DeepgramEmulator]:
    async with DeepgramEmulator(behavior=Behavior(first_latency_s=STT_FINAL_S)) as emulator:
        yield emulator


@pytest.fixture
async def openai() -> AsyncIterator[OpenAIEmulator]:
    async with OpenAIEmulator() as emulator:
        emulator.set_behavior("chat", first_latency_s=LLM_FIRST_TOKEN_S, chunk_interval_s=0.02)
        emulator.set_behavior("speech", first_latency_s=TTS_FIRST_BYTE_S)
        yield emulator


@pytest.fixture
async def worker(
    livekit_server: LiveKitServer,
    database_dsn: str,
    stt: DeepgramEmulator,
    openai: OpenAIEmulator,
    tmp_path: Path,
) -> AsyncIterator[WorkerProcess]:
    env = {
        "KANE_ENV": "production",
        "KANE_MAX_SESSIONS": "1",
        "LIVEKIT_URL": livekit_server.url,
        "LIVEKIT_API_KEY": livekit_server.api_key,
        "LIVEKIT_API_SECRET": livekit_server.api_secret,
        "DEEPGRAM_API_KEY": "e2e-deepgram-key-0123456789",
        "DEEPGRAM_BASE_URL": stt.base_url,
        "OPENAI_API_KEY": "e2e-openai-key-0123456789",
        "OPENAI_BASE_URL": openai.base_url,
        "KANE_TTS": "openai",
        "DATABASE_URL": database_dsn,
    }
    async with running_worker(env, tmp_path / "worker.log") as process:
        yield process
    # Nothing secret may reach the log: keys, the LiveKit secret, minted tokens.
    log = process.log()
    for secret in (
        env["DEEPGRAM_API_KEY"],
        env["OPENAI_API_KEY"],
        livekit_server.api_secret,
        process.api_token,
    ):
        assert secret not in log


async def join(worker: WorkerProcess, user_id: str) -> tuple[dict, ReferenceClient]:
    response = await worker.connect(user_id)
    assert response.status_code == 200, response.text
    grant = response.json()
    client = ReferenceClient(grant["url"], grant["token"], bot_identity="kane")
    await client.connect()
    return grant, client


async def session_row(dsn: str, session_id: str) -> asyncpg.Record:
    conn = await asyncpg.connect(dsn)
    try:
        return await conn.fetchrow("SELECT * FROM sessions WHERE id = $1::uuid", session_id)
    finally:
        await conn.close()


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

    RESULTS.mkdir(parents=True, exist_ok=True)  # noqa: ASYNC240
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
