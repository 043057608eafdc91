"""Check-ins against a real PostgreSQL under a fake clock, and the signed webhook."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from checkins import (
    CheckinParams,
    CheckinScheduler,
    WebhookError,
    WebhookNotifier,
    verify_signature,
)
from storage.database import Database

DAY = date(2026, 3, 10)


class FakeClock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def set(self, day: date, hh: int, mm: int, ss: int = 0) -> None:
        self.now = datetime.combine(day, time(hh, mm, ss), tzinfo=UTC)

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


class RecordingNotifier:
    """Records what it was asked to send; fails the first ``failures`` sends."""

    def __init__(self, failures: int = 0) -> None:
        self.sent: list[tuple[str, dict[str, Any]]] = []
        self.calls = 0
        self.delivered = asyncio.Event()
        self._failures = failures

    async def send(self, user_id: str, payload: dict[str, Any]) -> None:
        self.calls += 1
        await asyncio.sleep(0)  # let concurrent workers interleave
        if self.calls <= self._failures:
            raise ConnectionError("receiver down")
        self.sent.append((user_id, payload))
        self.delivered.set()

    def days(self, user_id: str) -> list[str]:
        return [payload["day"] for uid, payload in self.sent if uid == user_id]


async def draft(user_id: str) -> dict[str, Any]:
    return {"main_quest": {"title": f"{user_id}'s recurring quest", "confidence": 0.8}}


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(datetime.combine(DAY, time(8, 0), tzinfo=UTC))


async def prefer(db: Database, user_id: str, at: time) -> None:
    await db.pool.execute(
        "INSERT INTO user_patterns (user_id, preferred_session_time) VALUES ($1, $2) "
        "ON CONFLICT (user_id) DO UPDATE SET preferred_session_time = $2",
        user_id,
        at,
    )


def scheduler(
    db: Database,
    notifier: RecordingNotifier,
    clock: FakeClock,
    worker_id: str = "w1",
    **options: Any,
) -> CheckinScheduler:
    return CheckinScheduler(
        db.pool, notifier, draft=draft, clock=clock, worker_id=worker_id, **options
    )


async def test_a_checkin_fires_once_at_the_preferred_minute_and_again_the_next_day(
    database: Database, clock: FakeClock
) -> None:
    await prefer(database, "ana", time(9, 0))
    notifier = RecordingNotifier()
    worker = scheduler(database, notifier, clock)

    clock.set(DAY, 8, 59, 45)
    assert await worker.tick() == 0
    assert notifier.sent == []

    clock.set(DAY, 9, 0)
    assert await worker.tick() == 1
    [(user_id, payload)] = notifier.sent
    assert user_id == "ana"
    assert payload == {
        "type": "checkin",
        "id": f"checkin:ana:{DAY}",
        "user_id": "ana",
        "day": DAY.isoformat(),
        "due_at": "2026-03-10T09:00:00+00:00",
        "draft": {"main_quest": {"title": "ana's recurring quest", "confidence": 0.8}},
    }

    for hh, mm in [(9, 0), (9, 15), (13, 0), (23, 59)]:
        clock.set(DAY, hh, mm, 30)
        assert await worker.tick() == 0
    next_day = DAY + timedelta(days=1)
    clock.set(next_day, 8, 59, 59)
    assert await worker.tick() == 0
    clock.set(next_day, 9, 0, 10)
    assert await worker.tick() == 1
    assert notifier.days("ana") == [DAY.isoformat(), next_day.isoformat()]
    row = await worker.store.get("ana", DAY)
    assert row is not None
    assert (row.status, row.attempts, row.claimed_by) == ("sent", 0, "w1")
    assert row.sent_at == datetime.combine(DAY, time(9, 0), tzinfo=UTC)


async def test_preferred_time_is_read_in_the_configured_time_zone(
    database: Database, clock: FakeClock
) -> None:
    await prefer(database, "ben", time(9, 0))
    notifier = RecordingNotifier()
    worker = scheduler(database, notifier, clock, tz="Europe/Berlin")  # UTC+1 in March

    clock.set(DAY, 7, 59, 59)
    assert await worker.tick() == 0
    clock.set(DAY, 8, 0)
    assert await worker.tick() == 1
    assert notifier.sent[0][1]["due_at"] == "2026-03-10T08:00:00+00:00"


async def test_a_restarted_worker_neither_misses_nor_repeats(
    database_dsn: str, clock: FakeClock
) -> None:
    notifier = RecordingNotifier()
    first = await Database.open(database_dsn)
    await prefer(first, "ana", time(9, 0))
    await prefer(first, "ben", time(9, 30))
    clock.set(DAY, 8, 30)
    await scheduler(first, notifier, clock, "before").tick()  # schedules, sends nothing
    clock.set(DAY, 9, 35)
    await first.close()  # the worker is down through ana's and ben's due times

    second = await Database.open(database_dsn)
    clock.set(DAY, 9, 40)
    assert await scheduler(second, notifier, clock, "after").tick() == 2
    await second.close()

    third = await Database.open(database_dsn)  # and once more, later the same day
    clock.set(DAY, 10, 0)
    assert await scheduler(third, notifier, clock, "again").tick() == 0
    await third.close()
    assert sorted(user for user, _ in notifier.sent) == ["ana", "ben"]


async def test_a_checkin_due_before_midnight_is_sent_after_a_restart_past_midnight(
    database: Database, clock: FakeClock
) -> None:
    await prefer(database, "owl", time(23, 55))
    notifier = RecordingNotifier()
    clock.set(DAY + timedelta(days=1), 0, 10)  # no worker ran at 23:55
    assert await scheduler(database, notifier, clock).tick() == 1
    assert notifier.days("owl") == [DAY.isoformat()]


async def test_a_checkin_too_late_to_matter_is_given_up(
    database: Database, clock: FakeClock
) -> None:
    await prefer(database, "ana", time(9, 0))
    notifier = RecordingNotifier()
    worker = scheduler(database, notifier, clock, params=CheckinParams(max_late_s=3600))
    clock.set(DAY, 8, 0)
    await worker.tick()
    clock.set(DAY, 10, 30)  # the worker was down from 08:00 to 10:30
    assert await worker.tick() == 0
    row = await worker.store.get("ana", DAY)
    assert row is not None
    assert (row.status, row.last_error) == ("failed", "expired: not sent in time")
    assert notifier.sent == []


async def test_two_workers_at_once_send_each_checkin_exactly_once(
    database_dsn: str, clock: FakeClock
) -> None:
    a, b = await Database.open(database_dsn), await Database.open(database_dsn)
    try:
        users = [f"user{i:02d}" for i in range(30)]
        for user in users:
            await prefer(a, user, time(9, 0))
        notifier = RecordingNotifier()
        params = CheckinParams(batch_size=7, concurrency=3)
        workers = [
            scheduler(a, notifier, clock, "a", params=params),
            scheduler(b, notifier, clock, "b", params=params),
        ]
        clock.set(DAY, 8, 59)
        await asyncio.gather(*(w.tick() for w in workers))
        for second in range(0, 60, 5):
            clock.set(DAY, 9, 0, second)
            await asyncio.gather(*(w.tick() for w in workers))
        assert sorted(user for user, _ in notifier.sent) == users
        claimed_by = await a.pool.fetch("SELECT DISTINCT claimed_by FROM checkins")
        assert {row["claimed_by"] for row in claimed_by} == {"a", "b"}  # both did work
    finally:
        await a.close()
        await b.close()


async def test_a_failing_notifier_is_retried_with_backoff_then_marked_failed(
    database: Database, clock: FakeClock
) -> None:
    await prefer(database, "ana", time(9, 0))
    notifier = RecordingNotifier(failures=99)
    params = CheckinParams(max_attempts=3, backoff_s=30)
    worker = scheduler(database, notifier, clock, params=params)

    clock.set(DAY, 9, 0)
    await worker.tick()
    assert notifier.calls == 1
    clock.set(DAY, 9, 0, 20)  # backing off until 09:00:30
    await worker.tick()
    assert notifier.calls == 1
    clock.set(DAY, 9, 0, 30)
    await worker.tick()
    assert notifier.calls == 2
    clock.set(DAY, 9, 1, 0)  # second backoff is 60 s: until 09:01:30
    await worker.tick()
    assert notifier.calls == 2
    clock.set(DAY, 9, 1, 30)
    await worker.tick()
    assert notifier.calls == 3
    clock.set(DAY, 9, 30)
    await worker.tick()
    assert notifier.calls == 3
    row = await worker.store.get("ana", DAY)
    assert row is not None
    assert (row.status, row.attempts) == ("failed", 3)
    assert row.last_error == "ConnectionError: receiver down"


async def test_a_retry_after_a_failure_delivers_the_same_draft(
    database: Database, clock: FakeClock
) -> None:
    await prefer(database, "ana", time(9, 0))
    notifier = RecordingNotifier(failures=1)
    drafts = 0

    async def counting_draft(user_id: str) -> dict[str, Any]:
        nonlocal drafts
        drafts += 1
        return {"n": drafts}

    worker = CheckinScheduler(
        database.pool, notifier, draft=counting_draft, clock=clock, worker_id="w1"
    )
    clock.set(DAY, 9, 0)
    assert await worker.tick() == 0
    clock.set(DAY, 9, 1)
    assert await worker.tick() == 1
    assert [payload["draft"] for _, payload in notifier.sent] == [{"n": 1}]
    row = await worker.store.get("ana", DAY)
    assert row is not None
    assert (row.status, row.attempts) == ("sent", 1)


async def test_a_checkin_stuck_with_a_dead_worker_is_sent_after_its_lease(
    database: Database, clock: FakeClock
) -> None:
    await prefer(database, "ana", time(9, 0))
    clock.set(DAY, 9, 0)
    dead = scheduler(database, RecordingNotifier(), clock, "dead")
    # The dead worker scheduled and claimed the row, then died before sending.
    await dead.store.ensure([DAY], tz="UTC", not_before=clock.now - timedelta(hours=1))
    [claimed] = await dead.store.claim("dead", now=clock.now, limit=10)

    notifier = RecordingNotifier()
    worker = scheduler(database, notifier, clock, "alive", params=CheckinParams(lease_s=300))
    clock.set(DAY, 9, 4, 59)
    assert await worker.tick() == 0
    clock.set(DAY, 9, 5, 1)
    assert await worker.tick() == 1
    assert notifier.days("ana") == [DAY.isoformat()]
    # The dead worker's late word changes nothing, and a sent row is never taken back.
    assert not await dead.store.mark_sent(claimed, now=clock.now)
    assert not await dead.store.mark_failed(claimed, error="late", retry_at=clock.now)
    clock.set(DAY, 15, 0)
    assert await worker.tick() == 0
    row = await worker.store.get("ana", DAY)
    assert row is not None
    assert (row.status, row.claimed_by, row.attempts) == ("sent", "alive", 1)


async def test_the_webhook_posts_a_body_signed_with_hmac_sha256() -> None:
    received: list[tuple[bytes, dict[str, str]]] = []
    status = 204

    async def receive(request: web.Request) -> web.Response:
        received.append((await request.read(), dict(request.headers)))
        return web.Response(status=status)

    app = web.Application()
    app.router.add_post("/hooks/kane", receive)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    secret = "s3cret-shared-key"
    try:
        async with aiohttp.ClientSession() as http:
            notifier = WebhookNotifier(
                f"http://127.0.0.1:{port}/hooks/kane?token=abc", secret, http=http, timeout_s=5
            )
            assert "token" not in str(notifier) and secret not in repr(notifier)
            payload = {"type": "checkin", "id": "checkin:ana:2026-03-10", "draft": {"q": "é"}}
            await notifier.send("ana", payload)

            status = 500
            with pytest.raises(WebhookError, match="HTTP 500"):
                await notifier.send("ana", payload)
    finally:
        await runner.cleanup()

    body, headers = received[0]
    assert headers["Content-Type"] == "application/json"
    assert json.loads(body) == payload
    timestamp = headers["X-Kane-Timestamp"]
    expected = hmac.new(
        secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256
    ).hexdigest()
    assert headers["X-Kane-Signature"] == f"sha256={expected}"
    assert verify_signature(
        secret, body=body, timestamp=timestamp, signature=headers["X-Kane-Signature"]
    )
    assert not verify_signature(
        secret, body=body + b" ", timestamp=timestamp, signature=headers["X-Kane-Signature"]
    )
    assert not verify_signature(
        "wrong", body=body, timestamp=timestamp, signature=headers["X-Kane-Signature"]
    )
    assert not verify_signature(
        secret,
        body=body,
        timestamp=timestamp,
        signature=headers["X-Kane-Signature"],
        now=int(timestamp) + 3600,
    )


async def test_a_started_worker_ticks_in_the_background_until_stopped(
    database: Database, clock: FakeClock
) -> None:
    await prefer(database, "ana", time(9, 0))
    clock.set(DAY, 9, 0)
    notifier = RecordingNotifier()
    worker = scheduler(database, notifier, clock, poll_s=0.02)
    worker.start()
    await asyncio.wait_for(notifier.delivered.wait(), 5)
    await worker.stop()
    clock.set(DAY + timedelta(days=1), 9, 0)
    await asyncio.sleep(0.1)  # stopped: tomorrow's check-in waits for a worker
    assert notifier.days("ana") == [DAY.isoformat()]
