"""Rows of ``checkins``: one per user and local day, claimed by workers with SKIP LOCKED.

Every write that finishes an attempt is fenced on ``(status = 'sending', claimed_by,
attempts)``: once a lease has expired and the row was claimed again, the late worker's
writes change nothing. All times come from the caller, so a fake clock drives the store.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Literal

import asyncpg

CheckinStatus = Literal["pending", "sending", "sent", "failed"]

_COLUMNS = (
    "id, user_id, day, due_at, next_attempt_at, status, attempts, claimed_by, claimed_at, "
    "sent_at, last_error, payload"
)

# A row for each user with a preferred session time and each of the given local days whose
# due time is not too old. Sorted so concurrent workers insert in the same order (no
# deadlock between their speculative inserts).
_ENSURE = """
INSERT INTO checkins (user_id, day, due_at, next_attempt_at)
SELECT user_id, day, due_at, due_at
FROM (
    SELECT p.user_id, d.day, (d.day + p.preferred_session_time) AT TIME ZONE $2 AS due_at
    FROM user_patterns AS p CROSS JOIN unnest($1::date[]) AS d (day)
    WHERE p.preferred_session_time IS NOT NULL
) AS candidates
WHERE due_at >= $3
ORDER BY user_id, day
ON CONFLICT (user_id, day) DO NOTHING
"""

_CLAIM = f"""
WITH due AS (
    SELECT id FROM checkins
    WHERE status = 'pending' AND next_attempt_at <= $2
    ORDER BY next_attempt_at
    LIMIT $3
    FOR UPDATE SKIP LOCKED
)
UPDATE checkins AS c
SET status = 'sending', claimed_by = $1, claimed_at = $2
FROM due
WHERE c.id = due.id
RETURNING {", ".join("c." + column for column in _COLUMNS.split(", "))}
"""

_RECLAIM = """
UPDATE checkins
SET attempts = attempts + 1,
    status = CASE WHEN attempts + 1 >= $3 THEN 'failed' ELSE 'pending' END,
    next_attempt_at = $1,
    last_error = 'lease expired: ' || coalesce(claimed_by, '?') || ' did not finish'
WHERE status = 'sending' AND claimed_at < $2
RETURNING user_id, day, status
"""

_FENCE = "id = $1 AND status = 'sending' AND claimed_by = $2 AND attempts = $3"


@dataclass(frozen=True)
class Checkin:
    """A check-in row.

    Parameters:
        id: Row id.
        user_id: Who the check-in is for.
        day: The user's local day it belongs to.
        due_at: When it is due.
        next_attempt_at: When it may next be claimed (later than ``due_at`` after a failure).
        status: "pending", "sending", "sent" or "failed".
        attempts: Attempts that ended without success.
        claimed_by: The worker that claimed it last.
        claimed_at: When it was claimed last.
        sent_at: When it was delivered.
        last_error: Why the last attempt failed.
        payload: What was (or is being) sent.
    """

    id: int
    user_id: str
    day: date
    due_at: datetime
    next_attempt_at: datetime
    status: CheckinStatus
    attempts: int
    claimed_by: str | None
    claimed_at: datetime | None
    sent_at: datetime | None
    last_error: str | None
    payload: dict[str, Any] | None

    @classmethod
    def from_record(cls, record: asyncpg.Record) -> Checkin:
        """Builds a check-in from a row with all of its columns."""
        return cls(**dict(record))


class CheckinStore:
    """Reads and writes ``checkins`` rows on a pool whose connections decode jsonb."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        """Creates the store.

        Args:
            pool: Pool on a migrated database, set up by ``storage.database.init_connection``.
        """
        self._pool = pool

    async def ensure(self, days: list[date], *, tz: str, not_before: datetime) -> int:
        """Creates the missing check-in rows of ``days`` for every user with a preferred time.

        Args:
            days: Local days to create rows for.
            tz: IANA zone the preferred session times are local to.
            not_before: Rows due earlier than this are not created.

        Returns:
            How many rows were created.
        """
        status = await self._pool.execute(_ENSURE, days, tz, not_before)
        return int(status.rsplit(" ", 1)[-1])

    async def claim(self, worker_id: str, *, now: datetime, limit: int) -> list[Checkin]:
        """Claims up to ``limit`` due pending rows for ``worker_id`` (marks them sending).

        Rows another worker is claiming at the same moment are skipped, not waited for.

        Args:
            worker_id: The claiming worker.
            now: The current time.
            limit: Most rows to claim.
        """
        async with self._pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(_CLAIM, worker_id, now, limit)
        return [Checkin.from_record(row) for row in rows]

    async def reclaim(
        self, *, stale_before: datetime, now: datetime, max_attempts: int
    ) -> list[tuple[str, date, str]]:
        """Ends attempts whose lease expired: back to pending, or failed if out of attempts.

        A row marked sent is never touched.

        Args:
            stale_before: Rows claimed before this are abandoned.
            now: When they may be claimed again.
            max_attempts: Attempts after which a row is failed instead.

        Returns:
            ``(user_id, day, new status)`` of each reclaimed row.
        """
        rows = await self._pool.fetch(_RECLAIM, now, stale_before, max_attempts)
        return [(row["user_id"], row["day"], row["status"]) for row in rows]

    async def expire(self, *, due_before: datetime) -> int:
        """Gives up on pending rows due before ``due_before`` (marks them failed).

        Args:
            due_before: Pending rows due earlier than this are too late to send.

        Returns:
            How many rows expired.
        """
        status = await self._pool.execute(
            "UPDATE checkins SET status = 'failed', last_error = 'expired: not sent in time' "
            "WHERE status = 'pending' AND due_at < $1",
            due_before,
        )
        return int(status.rsplit(" ", 1)[-1])

    async def set_payload(self, checkin: Checkin, payload: dict[str, Any]) -> bool:
        """Records the payload about to be sent, if ``checkin`` is still this claim's.

        Returns:
            False if the claim was lost (the lease expired); do not send then.
        """
        status = await self._pool.execute(
            f"UPDATE checkins SET payload = $4 WHERE {_FENCE}",
            checkin.id,
            checkin.claimed_by,
            checkin.attempts,
            payload,
        )
        return status == "UPDATE 1"

    async def mark_sent(self, checkin: Checkin, *, now: datetime) -> bool:
        """Marks a claimed row sent.

        Returns:
            False if the claim was lost meanwhile.
        """
        status = await self._pool.execute(
            f"UPDATE checkins SET status = 'sent', sent_at = $4 WHERE {_FENCE}",
            checkin.id,
            checkin.claimed_by,
            checkin.attempts,
            now,
        )
        return status == "UPDATE 1"

    async def mark_failed(self, checkin: Checkin, *, error: str, retry_at: datetime | None) -> bool:
        """Ends a claimed row's attempt with an error.

        Args:
            checkin: The claimed row.
            error: What went wrong (stored; must not hold secrets).
            retry_at: When to try again; None marks the row failed for good.

        Returns:
            False if the claim was lost meanwhile.
        """
        status = await self._pool.execute(
            "UPDATE checkins SET attempts = attempts + 1, last_error = $4, "
            "status = CASE WHEN $5::timestamptz IS NULL THEN 'failed' ELSE 'pending' END, "
            f"next_attempt_at = coalesce($5, next_attempt_at) WHERE {_FENCE}",
            checkin.id,
            checkin.claimed_by,
            checkin.attempts,
            error[:1000],
            retry_at,
        )
        return status == "UPDATE 1"

    async def get(self, user_id: str, day: date) -> Checkin | None:
        """Returns the check-in of ``user_id`` on ``day``, if there is one."""
        row = await self._pool.fetchrow(
            f"SELECT {_COLUMNS} FROM checkins WHERE user_id = $1 AND day = $2", user_id, day
        )
        return Checkin.from_record(row) if row else None
