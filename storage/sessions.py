"""Rows of the ``sessions`` table: one per bot session."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg


@dataclass(frozen=True)
class SessionRecord:
    """One stored session.

    Parameters:
        id: Session id.
        user_id: The app user the session belongs to.
        room: LiveKit room name.
        started_at: When the session was created.
        ended_at: When it ended, or None while active.
        end_reason: Why it ended (e.g. "user_left", "error"), or None while active.
        engines: Engine used per stage, e.g. ``{"stt": "deepgram"}``.
    """

    id: uuid.UUID
    user_id: str
    room: str
    started_at: datetime
    ended_at: datetime | None
    end_reason: str | None
    engines: dict[str, Any]


class SessionStore:
    """Creates, ends and counts sessions.

    Expects a pool whose connections decode ``jsonb`` to Python objects, as
    ``Database`` sets up.
    """

    def __init__(self, pool: asyncpg.Pool) -> None:
        """Initializes the store.

        Args:
            pool: Connection pool of a migrated database.
        """
        self._pool = pool

    async def create_session(
        self,
        session_id: uuid.UUID | str,
        user_id: str,
        room: str,
        engines: Mapping[str, Any],
    ) -> None:
        """Records a new, active session.

        Args:
            session_id: Session id (a UUID).
            user_id: The app user.
            room: LiveKit room name.
            engines: Engine per stage; stored as JSON.

        Raises:
            asyncpg.UniqueViolationError: A session with this id exists.
        """
        await self._pool.execute(
            "INSERT INTO sessions (id, user_id, room, engines) VALUES ($1, $2, $3, $4)",
            _as_uuid(session_id),
            user_id,
            room,
            dict(engines),
        )

    async def end_session(self, session_id: uuid.UUID | str, reason: str) -> bool:
        """Marks a session ended now. Ending an ended session changes nothing.

        Args:
            session_id: Session id.
            reason: Why it ended.

        Returns:
            True if an active session was ended, False if it was unknown or already ended.
        """
        status = await self._pool.execute(
            "UPDATE sessions SET ended_at = now(), end_reason = $2 "
            "WHERE id = $1 AND ended_at IS NULL",
            _as_uuid(session_id),
            reason,
        )
        return status == "UPDATE 1"

    async def count_active_sessions(self) -> int:
        """Returns how many sessions have started and not ended."""
        count = await self._pool.fetchval("SELECT count(*) FROM sessions WHERE ended_at IS NULL")
        return int(count)

    async def get_session(self, session_id: uuid.UUID | str) -> SessionRecord | None:
        """Returns a session, or None if there is none with this id.

        Args:
            session_id: Session id.
        """
        row = await self._pool.fetchrow(
            "SELECT id, user_id, room, started_at, ended_at, end_reason, engines "
            "FROM sessions WHERE id = $1",
            _as_uuid(session_id),
        )
        return SessionRecord(**dict(row)) if row is not None else None


def _as_uuid(value: uuid.UUID | str) -> uuid.UUID:
    # Parse here so a malformed id fails as ValueError before reaching the database.
    return value if isinstance(value, uuid.UUID) else uuid.UUID(value)
