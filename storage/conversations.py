"""Rows of ``conversations`` (one a session) and ``ui_interactions``."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from storage.sessions import _as_uuid

_FINISH = """
INSERT INTO conversations AS c (
    session_id, user_id, transcript, ai_response, duration_s, user_audio_url, bot_audio_url,
    audio_url, turn_count, quests_created, quest_refinements, correction_count,
    main_quest_identified, success_criteria_defined, emotional_journey, speaking_pace,
    clarity_score, pipeline
)
SELECT s.id, s.user_id, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16,
       s.pipeline
FROM sessions s WHERE s.id = $1
ON CONFLICT (session_id) DO UPDATE SET
    transcript = EXCLUDED.transcript,
    ai_response = EXCLUDED.ai_response,
    duration_s = EXCLUDED.duration_s,
    user_audio_url = EXCLUDED.user_audio_url,
    bot_audio_url = EXCLUDED.bot_audio_url,
    audio_url = EXCLUDED.audio_url,
    turn_count = EXCLUDED.turn_count,
    quests_created = EXCLUDED.quests_created,
    quest_refinements = EXCLUDED.quest_refinements,
    correction_count = EXCLUDED.correction_count,
    main_quest_identified = EXCLUDED.main_quest_identified,
    success_criteria_defined = EXCLUDED.success_criteria_defined,
    emotional_journey = EXCLUDED.emotional_journey,
    speaking_pace = EXCLUDED.speaking_pace,
    clarity_score = EXCLUDED.clarity_score
"""


@dataclass(frozen=True)
class ConversationRecord:
    """One stored conversation (the ``conversations`` row of a session).

    Parameters:
        session_id: The session.
        user_id: The app user.
        timestamp: When the conversation started.
        audio_url: Recording of the whole conversation, if any.
        transcript: What the person said.
        ai_response: What the coach said.
        quests_created: Quests created in the session.
        quest_refinements: Changes to existing quests.
        emotional_journey: Emotion over the session, e.g. a list of readings.
        speaking_pace: Words per minute.
        clarity_score: 0..1.
        correction_count: Times the person corrected the coach.
        main_quest_identified: Whether a main quest came out of it.
        success_criteria_defined: Whether it got success criteria.
        duration_s: Length of the session in seconds; None until finished.
        user_audio_url: Recording of the person.
        bot_audio_url: Recording of the coach.
        turn_count: Turns taken.
        pipeline: What ran in the pipeline (services, models, params).
    """

    session_id: uuid.UUID
    user_id: str
    timestamp: datetime
    audio_url: str | None
    transcript: str | None
    ai_response: str | None
    quests_created: int
    quest_refinements: int
    emotional_journey: Any
    speaking_pace: float | None
    clarity_score: float | None
    correction_count: int
    main_quest_identified: bool
    success_criteria_defined: bool
    duration_s: float | None
    user_audio_url: str | None
    bot_audio_url: str | None
    turn_count: int | None
    pipeline: dict[str, Any]


class ConversationStore:
    """Starts and finishes conversation rows; records UI interactions.

    Expects a pool with ``Database``'s jsonb codec: pass dicts, not JSON strings.
    """

    def __init__(self, pool: asyncpg.Pool) -> None:
        """Initializes the store.

        Args:
            pool: Connection pool of a migrated database.
        """
        self._pool = pool

    async def start(
        self, session_id: uuid.UUID | str, user_id: str, pipeline: Mapping[str, Any]
    ) -> None:
        """Records that a session's conversation began, and what its pipeline runs.

        Also stores ``pipeline`` on the session row. Calling it again for the same
        session updates the pipeline and keeps the rest.

        Args:
            session_id: The session (its ``sessions`` row must exist).
            user_id: The app user.
            pipeline: Services, models and params of the pipeline; stored as JSON.

        Raises:
            asyncpg.ForeignKeyViolationError: There is no such session.
        """
        sid, pipeline = _as_uuid(session_id), dict(pipeline)
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute(
                "INSERT INTO conversations (session_id, user_id, pipeline) VALUES ($1, $2, $3) "
                "ON CONFLICT (session_id) DO UPDATE SET pipeline = EXCLUDED.pipeline",
                sid,
                user_id,
                pipeline,
            )
            await conn.execute("UPDATE sessions SET pipeline = $2 WHERE id = $1", sid, pipeline)

    async def finish(
        self,
        session_id: uuid.UUID | str,
        *,
        transcript: str,
        ai_response: str,
        duration_s: float,
        user_audio_url: str | None,
        bot_audio_url: str | None,
        audio_url: str | None,
        turn_count: int,
        quests_created: int = 0,
        quest_refinements: int = 0,
        correction_count: int = 0,
        main_quest_identified: bool = False,
        success_criteria_defined: bool = False,
        emotional_journey: Any = None,
        speaking_pace: float | None = None,
        clarity_score: float | None = None,
    ) -> bool:
        """Stores how a conversation went. Works without ``start`` too (it creates the row).

        Args:
            session_id: The session.
            transcript: What the person said, the whole session.
            ai_response: What the coach said, the whole session.
            duration_s: Length in seconds.
            user_audio_url: Recording of the person.
            bot_audio_url: Recording of the coach.
            audio_url: Recording of the whole conversation.
            turn_count: Turns taken.
            quests_created: Quests created.
            quest_refinements: Changes to existing quests.
            correction_count: Times the person corrected the coach.
            main_quest_identified: Whether a main quest came out of it.
            success_criteria_defined: Whether it got success criteria.
            emotional_journey: JSON-serializable emotion readings, or None.
            speaking_pace: Words per minute, or None.
            clarity_score: 0..1, or None.

        Returns:
            True if stored, False if there is no such session.
        """
        status = await self._pool.execute(
            _FINISH,
            _as_uuid(session_id),
            transcript,
            ai_response,
            duration_s,
            user_audio_url,
            bot_audio_url,
            audio_url,
            turn_count,
            quests_created,
            quest_refinements,
            correction_count,
            main_quest_identified,
            success_criteria_defined,
            emotional_journey,
            speaking_pace,
            clarity_score,
        )
        return status != "INSERT 0 0"

    async def get(self, session_id: uuid.UUID | str) -> ConversationRecord | None:
        """Returns a session's conversation, or None if there is none.

        Args:
            session_id: The session.
        """
        row = await self._pool.fetchrow(
            "SELECT * FROM conversations WHERE session_id = $1", _as_uuid(session_id)
        )
        return ConversationRecord(**dict(row)) if row is not None else None

    async def record_ui(
        self,
        session_id: uuid.UUID | str,
        seq: int,
        kind: str,
        payload: Mapping[str, Any],
        *,
        at: datetime | None = None,
    ) -> bool:
        """Records something the person did on the phone. Recording a seq twice keeps the first.

        Args:
            session_id: The session.
            seq: Position among the session's UI interactions.
            kind: What happened, e.g. ``quest_confirmed``.
            payload: Details; stored as JSON.
            at: When it happened; defaults to now.

        Returns:
            True if recorded, False if this (session, seq) was already there.
        """
        status = await self._pool.execute(
            "INSERT INTO ui_interactions (session_id, seq, at, kind, payload) "
            "VALUES ($1, $2, coalesce($3, now()), $4, $5) ON CONFLICT DO NOTHING",
            _as_uuid(session_id),
            seq,
            at,
            kind,
            dict(payload),
        )
        return status == "INSERT 0 1"

    async def ui_interactions(self, session_id: uuid.UUID | str) -> list[dict[str, Any]]:
        """Returns a session's UI interactions in order, as dicts (seq, at, kind, payload).

        Args:
            session_id: The session.
        """
        rows = await self._pool.fetch(
            "SELECT seq, at, kind, payload FROM ui_interactions WHERE session_id = $1 ORDER BY seq",
            _as_uuid(session_id),
        )
        return [dict(row) for row in rows]
