"""Conversations, UI interactions and the owner's tables against a real PostgreSQL."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, time

import asyncpg
import pytest

from storage.database import Database

PIPELINE = {"stt": {"service": "deepgram", "model": "nova-3"}, "llm": {"model": "gpt-4.1"}}


async def new_session(database: Database, user_id: str = "user-1") -> uuid.UUID:
    session_id = uuid.uuid4()
    await database.sessions.create_session(session_id, user_id, f"room-{session_id}", {})
    return session_id


async def test_start_then_finish_stores_the_conversation(database: Database) -> None:
    conversations = database.conversations
    session_id = await new_session(database)

    await conversations.start(session_id, "user-1", PIPELINE)
    started = await conversations.get(session_id)
    assert started is not None
    assert (started.user_id, started.pipeline, started.duration_s) == ("user-1", PIPELINE, None)
    assert (
        await database.pool.fetchval("SELECT pipeline FROM sessions WHERE id = $1", session_id)
        == PIPELINE
    )

    journey = [{"at_s": 3.5, "emotion": "calm", "score": 0.8}]
    stored = await conversations.finish(
        session_id,
        transcript="I want to ship the demo today.",
        ai_response="What does done look like?",
        duration_s=312.5,
        user_audio_url="file:///rec/user.ogg",
        bot_audio_url="file:///rec/bot.ogg",
        audio_url="file:///rec/mix.ogg",
        turn_count=7,
        quests_created=2,
        quest_refinements=1,
        correction_count=1,
        main_quest_identified=True,
        success_criteria_defined=True,
        emotional_journey=journey,
        speaking_pace=142.0,
        clarity_score=0.75,
    )
    assert stored is True
    done = await conversations.get(session_id)
    assert done is not None
    assert done.timestamp == started.timestamp and done.pipeline == PIPELINE
    assert (done.transcript, done.ai_response, done.turn_count, done.duration_s) == (
        "I want to ship the demo today.",
        "What does done look like?",
        7,
        312.5,
    )
    assert (done.quests_created, done.quest_refinements, done.correction_count) == (2, 1, 1)
    assert done.main_quest_identified and done.success_criteria_defined
    assert done.emotional_journey == journey
    assert (done.speaking_pace, done.clarity_score) == (142.0, 0.75)
    assert (done.user_audio_url, done.bot_audio_url, done.audio_url) == (
        "file:///rec/user.ogg",
        "file:///rec/bot.ogg",
        "file:///rec/mix.ogg",
    )


async def test_finish_without_start_and_for_unknown_sessions(database: Database) -> None:
    session_id = await new_session(database, "user-2")
    common = dict(
        transcript="",
        ai_response="",
        duration_s=1.0,
        user_audio_url=None,
        bot_audio_url=None,
        audio_url=None,
        turn_count=0,
    )
    assert await database.conversations.finish(session_id, **common) is True
    record = await database.conversations.get(session_id)
    assert record is not None and record.user_id == "user-2" and record.quests_created == 0
    assert await database.conversations.finish(uuid.uuid4(), **common) is False
    assert await database.conversations.get(uuid.uuid4()) is None
    with pytest.raises(asyncpg.ForeignKeyViolationError):
        await database.conversations.start(uuid.uuid4(), "nobody", {})


async def test_ui_interactions_are_kept_in_order_once(database: Database) -> None:
    session_id = await new_session(database)
    record_ui = database.conversations.record_ui
    assert await record_ui(session_id, 2, "quest_confirmed", {"quest_id": "q1"})
    assert await record_ui(
        session_id, 1, "card_opened", {"card": "main"}, at=datetime(2026, 1, 1, tzinfo=UTC)
    )
    assert await record_ui(session_id, 1, "card_opened", {"card": "again"}) is False
    rows = await database.conversations.ui_interactions(session_id)
    assert [(r["seq"], r["kind"], r["payload"]) for r in rows] == [
        (1, "card_opened", {"card": "main"}),
        (2, "quest_confirmed", {"quest_id": "q1"}),
    ]


async def test_one_active_main_quest_per_user(database: Database) -> None:
    insert = "INSERT INTO quests (user_id, title, kind, status) VALUES ($1, $2, $3, $4)"
    pool = database.pool
    await pool.execute(insert, "u", "Ship the demo", "main", "active")
    await pool.execute(insert, "u", "Call mum", "side", "active")
    await pool.execute(insert, "u", "Old main", "main", "done")
    await pool.execute(insert, "other", "Their main", "main", "active")
    with pytest.raises(asyncpg.UniqueViolationError):
        await pool.execute(insert, "u", "Second main", "main", "active")
    with pytest.raises(asyncpg.CheckViolationError):
        await pool.execute(insert, "u", "Odd", "bonus", "active")


async def test_owner_tables_take_their_columns(database: Database) -> None:
    session_id = await new_session(database)
    quest_id = uuid.uuid4()
    await database.pool.execute(
        "INSERT INTO quest_history (quest_id, version, title, changes_from_previous, "
        "trigger_phrase, confidence, user_id, session_id, source, kind, status) "
        "VALUES ($1, 1, 'Ship', $2, 'I have to ship', 0.9, 'u', $3, 'partial', 'main', 'draft')",
        quest_id,
        {"title": [None, "Ship"]},
        session_id,
    )
    await database.pool.execute(
        "INSERT INTO user_patterns (user_id, common_main_quests, speaking_triggers, "
        "average_quests_per_day, preferred_session_time, needs_coaching_probability) "
        "VALUES ('u', $1, $2, 2.5, $3, 0.3)",
        ["Ship"],
        ["I have to"],
        time(7, 30),
    )
    history = await database.pool.fetchrow("SELECT * FROM quest_history")
    assert history["changes_from_previous"] == {"title": [None, "Ship"]}
    pattern = await database.pool.fetchrow("SELECT * FROM user_patterns")
    assert pattern["preferred_session_time"] == time(7, 30)
    assert pattern["common_main_quests"] == ["Ship"]
