"""After a spoken turn, everything of it is kept: journal, recordings, record, phone messages."""

import asyncio
import json
import time
import wave
from pathlib import Path
from urllib.parse import urlparse

import asyncpg
import pytest

from storage.database import init_connection
from tests.e2e.conftest import join
from tests.support.speech import ONBOARDING_SENTENCE

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


async def journal_of(dsn: str, session_id: str) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(dsn)
    await init_connection(conn)
    try:
        return await conn.fetch(
            "SELECT seq, kind, direction, source, payload FROM frame_journal"
            " WHERE session_id = $1::uuid ORDER BY seq",
            session_id,
        )
    finally:
        await conn.close()


async def conversation_of(dsn: str, session_id: str) -> asyncpg.Record:
    conn = await asyncpg.connect(dsn)
    try:
        return await conn.fetchrow(
            "SELECT * FROM conversations WHERE session_id = $1::uuid", session_id
        )
    finally:
        await conn.close()


def wav_seconds(url: str) -> float:
    with wave.open(urlparse(url).path, "rb") as wav:
        return wav.getnframes() / wav.getframerate()


def first_index(items, predicate, start=0) -> int:
    for i in range(start, len(items)):
        if predicate(items[i]):
            return i
    raise AssertionError("not found")


async def test_a_spoken_turn_is_kept_whole(worker, stt, openai, onboarding_wav, database_dsn):
    stt.script_utterance(ONBOARDING_SENTENCE)
    grant, client = await join(worker, "ada")
    joined_at = time.monotonic()
    try:
        assert await client.wait_for_bot_audio(timeout_s=20, after=0.0) is not None
        assert await client.wait_for_bot_silence(0.8, timeout_s=20)
        await client.speak(onboarding_wav)
        assert await client.wait_for_bot_audio(timeout_s=20) is not None
        answer_onset = next(t for t in client.bot_audio_onsets if t > client.speech_ended_at)
        assert await client.wait_for_bot_silence(0.8, timeout_s=20)
    finally:
        await client.close()
        left_at = time.monotonic()

    # The phone heard the session as it happened, in the protocol's envelopes.
    kane = [m for m in client.messages if m.topic == "kane" and m.kind == "data"]
    types = [m.type for m in kane]
    assert types[0] == "session_started", types
    assert types[1] == "plan_draft", types  # today's drafted plan (empty for a new person)
    assert [m.payload["seq"] for m in kane] == list(range(1, len(kane) + 1))
    assert {m.payload["session_id"] for m in kane} == {grant["session_id"]}
    partial = first_index(kane, lambda m: m.type == "partial_transcript")
    final = first_index(kane, lambda m: m.type == "final_transcript")
    assert partial < final
    assert "onboarding flow" in kane[final].payload["data"]["text"]
    response = first_index(kane, lambda m: m.type == "bot_response", start=final)
    assert kane[response].received_at < answer_onset, "bot_response came after the audio"
    assert {"thinking", "speaking", "listening"} <= {
        m.payload["data"]["state"] for m in kane if m.type == "bot_state"
    }
    # Stock LiveKit clients follow along too.
    streams = [m for m in client.messages if m.topic == "lk.transcription"]
    assert any(
        "onboarding flow" in str(m.payload) and m.attributes.get("lk.transcription_final") == "true"
        for m in streams
    )
    assert client.agent_state in {"listening", "speaking", "thinking"}

    await worker.wait_for(
        lambda h: any(
            e["session_id"] == grant["session_id"] for e in h["sessions"]["recent_endings"]
        ),
        timeout_s=20,
    )

    # The journal holds every frame but audio, numbered without a gap, in order.
    rows = await journal_of(database_dsn, grant["session_id"])
    assert [r["seq"] for r in rows] == list(range(1, len(rows) + 1))
    kinds = [r["kind"] for r in rows]
    assert not [k for k in kinds if "Audio" in k and "Raw" in k]
    said = first_index(
        rows,
        lambda r: r["kind"] == "TranscriptionFrame" and "onboarding" in r["payload"]["text"],
    )
    llm = first_index(rows, lambda r: r["kind"] == "LLMTextFrame", start=said)
    spoken = first_index(rows, lambda r: r["kind"] == "TTSTextFrame", start=llm)
    speaking = first_index(rows, lambda r: r["kind"] == "BotStartedSpeakingFrame", start=llm)
    assert said < llm < spoken and llm < speaking
    assert "BotStoppedSpeakingFrame" in kinds[speaking:]
    assert kinds[-1] == "session_ended"

    # The conversation record is complete, and its recordings span the conversation.
    record = await conversation_of(database_dsn, grant["session_id"])
    assert "onboarding flow" in record["transcript"]
    assert "main quest" in record["ai_response"].lower() or record["ai_response"]
    assert record["turn_count"] >= 1
    pipeline = json.loads(record["pipeline"])  # a plain connection: jsonb comes as text
    assert pipeline["name"] == "default"
    assert [stage["name"] for stage in pipeline["stages"]][0] == "partial_quests"
    assert record["duration_s"] > 0
    present_s = left_at - joined_at
    user_s, bot_s = wav_seconds(record["user_audio_url"]), wav_seconds(record["bot_audio_url"])
    assert Path(urlparse(record["audio_url"]).path).exists()
    assert abs(user_s - present_s) <= 0.05 * present_s, (user_s, present_s)
    assert abs(bot_s - user_s) <= 0.05 * user_s, (bot_s, user_s)


async def test_bad_messages_from_the_phone_get_an_error_and_the_session_goes_on(
    worker, stt, onboarding_wav, database_dsn
):
    stt.script_utterance(ONBOARDING_SENTENCE)
    grant, client = await join(worker, "ada")
    try:
        assert await client.wait_for_message(type="session_started", timeout_s=20)
        await client.send(b"\xff\x00 not json at all")
        await client.send({"v": 1, "type": "ui_state", "seq": 1, "ts": 0, "data": {"oops": 1}})
        await client.send(b"[" * 10_000)
        await client.send(b" " * 50_000)
        await client.send({"v": 1, "type": "x" * 10, "seq": 2, "ts": 0, "data": {}})
        await client.send(
            {
                "v": 1,
                "type": "ui_state",
                "session_id": grant["session_id"],
                "seq": 3,
                "ts": 0,
                "data": {
                    "current_screen": "today",
                    "selected_quest": None,
                    "visible_quest_ids": ["q1"],
                },
            }
        )
        for _ in range(100):
            if len([m for m in client.messages if m.type == "error"]) >= 5:
                break
            await asyncio.sleep(0.1)
        codes = [m.payload["data"]["code"] for m in client.messages if m.type == "error"]
        assert len(codes) == 5, codes
        assert "too_large" in codes and "not_json" in codes and "invalid" in codes
        # The session goes on: a spoken turn is still answered.
        await client.speak(onboarding_wav)
        assert await client.wait_for_bot_audio(timeout_s=20) is not None
    finally:
        await client.close()
    await worker.wait_for(
        lambda h: any(
            e["session_id"] == grant["session_id"] for e in h["sessions"]["recent_endings"]
        ),
        timeout_s=20,
    )
    rows = await journal_of(database_dsn, grant["session_id"])
    kinds = [r["kind"] for r in rows]
    assert kinds.count("protocol_error") == 5
    assert "UiStateFrame" in kinds
    conn = await asyncpg.connect(database_dsn)
    try:
        ui = await conn.fetch(
            "SELECT kind FROM ui_interactions WHERE session_id = $1::uuid", grant["session_id"]
        )
    finally:
        await conn.close()
    assert [r["kind"] for r in ui] == ["ui_state"]
