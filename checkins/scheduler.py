"""The check-in worker: once a day, at each user's preferred session time, send the draft.

Durability comes from the ``checkins`` table (``checkins.store``), not from this process:
the row of a check-in is created ahead of its due time, claimed by exactly one worker with
``FOR UPDATE SKIP LOCKED``, and marked sent once the notifier accepted it. A restarted
worker finds the rows its predecessor left (nothing missed) and never claims a sent row
(nothing repeated); a worker that died mid-send loses its claim when the lease runs out.

Delivery is at least once, not exactly once: a worker that dies after the notifier
accepted a check-in but before the row was marked sent leaves it to be sent again after
the lease. Receivers deduplicate on the payload's ``id``.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import socket
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import asyncpg
from loguru import logger
from pydantic import BaseModel, Field, model_validator

from checkins.notifier import Notifier
from checkins.store import Checkin, CheckinStore

Draft = Callable[[str], Awaitable[dict[str, Any]]]


def utcnow() -> datetime:
    """Returns the current time, timezone-aware, in UTC."""
    return datetime.now(UTC)


def default_worker_id() -> str:
    """Returns an id unique to this process: ``host:pid:random``."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


class CheckinParams(BaseModel):
    """Tuning of the check-in worker; the defaults suit a 15-second poll.

    Parameters:
        lease_s: How long a claimed row may stay in ``sending`` before another worker
            takes it over (its worker is presumed dead).
        attempt_timeout_s: Limit on drafting and sending one check-in; at most half the
            lease, so a live worker never loses its claim mid-send.
        max_attempts: Attempts (failures and expired leases) before a row is failed.
        backoff_s: Wait after the first failure; doubles with each further one.
        max_backoff_s: Longest wait between attempts.
        max_late_s: A check-in not sent this long after its due time is given up (a worker
            down all night does not send yesterday's check-in in the morning).
        batch_size: Most rows one tick claims.
        concurrency: Most check-ins one worker sends at once.
    """

    lease_s: float = Field(default=300.0, gt=0)
    attempt_timeout_s: float = Field(default=60.0, gt=0)
    max_attempts: int = Field(default=5, ge=1)
    backoff_s: float = Field(default=30.0, ge=0)
    max_backoff_s: float = Field(default=900.0, ge=0)
    max_late_s: float = Field(default=7200.0, gt=0)
    batch_size: int = Field(default=50, ge=1)
    concurrency: int = Field(default=8, ge=1)

    @model_validator(mode="after")
    def _attempt_fits_lease(self) -> CheckinParams:
        if self.attempt_timeout_s * 2 > self.lease_s:
            raise ValueError("attempt_timeout_s must be at most half of lease_s")
        return self

    def backoff(self, failures: int) -> timedelta:
        """Returns the wait before the next attempt after ``failures`` failed ones."""
        return timedelta(seconds=min(self.backoff_s * 2 ** (failures - 1), self.max_backoff_s))


class CheckinScheduler:
    """Sends each user a daily check-in with today's draft, at their preferred session time.

    ``tick()`` does one pass; ``start()`` runs it every ``poll_s`` seconds until ``stop()``.
    Any number of schedulers (processes) may run on one database: each check-in is sent once.

    The payload the notifier gets::

        {"type": "checkin", "id": "checkin:<user_id>:<day>", "user_id": ..., "day": "YYYY-MM-DD",
         "due_at": "<ISO 8601>", "draft": <what draft(user_id) returned>}
    """

    def __init__(
        self,
        pool: asyncpg.Pool,
        notifier: Notifier,
        *,
        draft: Draft,
        worker_id: str,
        clock: Callable[[], datetime] = utcnow,
        poll_s: float = 15.0,
        tz: str = "UTC",
        params: CheckinParams | None = None,
    ) -> None:
        """Creates a scheduler; nothing runs until ``tick()`` or ``start()``.

        Args:
            pool: Pool on a migrated database, set up by ``storage.database.init_connection``.
            notifier: Delivers the check-ins.
            draft: Returns today's plan draft of a user (JSON-serialisable).
            worker_id: Unique to this process (see ``default_worker_id``).
            clock: Returns the current time, timezone-aware.
            poll_s: Seconds between ticks once started.
            tz: IANA zone that users' ``preferred_session_time`` is local to; also decides
                where a day begins.
            params: Leases, retries and limits.

        Raises:
            ValueError: ``tz`` is not a known zone or ``poll_s`` is not positive.
        """
        try:
            self._zone = ZoneInfo(tz)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {tz!r}") from exc
        if poll_s <= 0:
            raise ValueError("poll_s must be positive")
        self._store = CheckinStore(pool)
        self._notifier = notifier
        self._draft = draft
        self._worker_id = worker_id
        self._clock = clock
        self._poll_s = poll_s
        self._tz = tz
        self._params = params or CheckinParams()
        self._sending = asyncio.Semaphore(self._params.concurrency)
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()

    def __str__(self) -> str:
        return f"CheckinScheduler({self._worker_id})"

    @property
    def store(self) -> CheckinStore:
        """The check-in rows."""
        return self._store

    async def tick(self) -> int:
        """Does one pass: reclaim, expire, create today's rows, claim the due ones, send.

        Returns:
            How many check-ins this pass delivered.
        """
        params = self._params
        now = self._clock()
        today = now.astimezone(self._zone).date()
        too_late = now - timedelta(seconds=params.max_late_s)

        for user_id, day, status in await self._store.reclaim(
            stale_before=now - timedelta(seconds=params.lease_s),
            now=now,
            max_attempts=params.max_attempts,
        ):
            logger.warning(f"{self}: check-in {user_id}/{day} outlived its lease; now {status}")
        if expired := await self._store.expire(due_before=too_late):
            logger.warning(f"{self}: {expired} check-in(s) expired unsent")
        # Yesterday too: a check-in due just before midnight still gets its row after a
        # restart past midnight (if it is not too late by then).
        created = await self._store.ensure(
            [today - timedelta(days=1), today], tz=self._tz, not_before=too_late
        )
        if created:
            logger.debug(f"{self}: {created} check-in(s) scheduled")
        claimed = await self._store.claim(self._worker_id, now=now, limit=params.batch_size)
        if not claimed:
            return 0
        delivered = await asyncio.gather(*(self._deliver(checkin) for checkin in claimed))
        return sum(delivered)

    def start(self) -> None:
        """Runs ``tick()`` every ``poll_s`` seconds in a background task."""
        if self._task is not None:
            return
        self._stopping.clear()
        self._task = asyncio.create_task(self._run(), name=str(self))
        logger.info(f"{self}: started (every {self._poll_s:g} s, times in {self._tz})")

    async def stop(self, *, timeout_s: float = 10.0) -> None:
        """Stops the background task, letting a tick under way finish first.

        Args:
            timeout_s: How long to wait for that tick before cancelling it (its claimed
                rows are then taken over by another worker after the lease).
        """
        task, self._task = self._task, None
        if task is None:
            return
        self._stopping.set()
        try:
            await asyncio.wait_for(asyncio.shield(task), timeout_s)
        except TimeoutError:
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass
        logger.info(f"{self}: stopped")

    async def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                await self.tick()
            except Exception as exc:  # the database may be away; the next tick retries
                logger.error(f"{self}: tick failed: {_describe(exc)}")
            try:
                await asyncio.wait_for(self._stopping.wait(), self._poll_s)
            except TimeoutError:
                pass

    async def _deliver(self, checkin: Checkin) -> bool:
        """Drafts and sends one claimed check-in and records the outcome; never raises."""
        label = f"check-in {checkin.user_id}/{checkin.day}"
        async with self._sending:
            try:
                async with asyncio.timeout(self._params.attempt_timeout_s):
                    # A retry sends what the first attempt drafted.
                    payload = checkin.payload or await self._payload(checkin)
                    if not await self._store.set_payload(checkin, payload):
                        logger.warning(f"{self}: {label} was taken over; not sending")
                        return False
                    await self._notifier.send(checkin.user_id, payload)
            except Exception as exc:
                await self._record_failure(checkin, label, exc)
                return False
            try:
                if not await self._store.mark_sent(checkin, now=self._clock()):
                    logger.warning(f"{self}: {label} sent, but its lease had expired")
            except Exception as exc:
                # The row stays in 'sending' and is sent again after the lease.
                logger.error(f"{self}: {label} sent but not recorded: {_describe(exc)}")
            logger.info(f"{self}: {label} sent")
            return True

    async def _record_failure(self, checkin: Checkin, label: str, exc: Exception) -> None:
        failures = checkin.attempts + 1
        retry_at = None
        if failures < self._params.max_attempts:
            retry_at = self._clock() + self._params.backoff(failures)
        error = _describe(exc)
        try:
            await self._store.mark_failed(checkin, error=error, retry_at=retry_at)
        except Exception as db_exc:
            logger.error(f"{self}: {label} failure not recorded: {_describe(db_exc)}")
            return
        if retry_at is None:
            logger.error(f"{self}: {label} failed for good after {failures} attempts: {error}")
        else:
            logger.warning(
                f"{self}: {label} attempt {failures} failed ({error}); retry at {retry_at}"
            )

    async def _payload(self, checkin: Checkin) -> dict[str, Any]:
        payload = {
            "type": "checkin",
            "id": f"checkin:{checkin.user_id}:{checkin.day.isoformat()}",
            "user_id": checkin.user_id,
            "day": checkin.day.isoformat(),
            "due_at": checkin.due_at.isoformat(),
            "draft": await self._draft(checkin.user_id),
        }
        # Plain JSON (a draft may hold datetimes or UUIDs), as stored and as sent.
        normalised: dict[str, Any] = json.loads(json.dumps(payload, default=str))
        return normalised


def _describe(exc: BaseException) -> str:
    message = str(exc)
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__
