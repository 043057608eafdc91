"""The frame journal writer: every event the tap saw, into ``frame_journal``, losing none.

``write`` costs the caller a deque append. A background task ships the queue to Postgres
with binary ``COPY`` every ``flush_interval_s`` (sooner once ``max_batch`` events wait).
When Postgres is away or refuses a batch, events go to the spool file (``storage.spool``)
and the task keeps retrying; when Postgres is back, the spool is drained, in order, before
anything newer.

Order: events reach Postgres (or the spool) in the order they were written. The spool only
ever receives events from the head of the queue: a full queue moves its *oldest* event to
the spool to make room, and a failed batch (always the head of the queue) is appended
after whatever the queue had already moved out during that batch. So everything in the
spool is older than everything in the queue, and draining the spool first keeps the order.
The one cost: an event moved out while its batch was in flight, when that batch then
succeeds, is in the spool as well; the drain's ``ON CONFLICT DO NOTHING`` makes that a no-op.

Durability: an event is durable once it is in Postgres or in the fsync'd spool. ``flush``
waits for that. On a hard kill (SIGKILL, power loss), events still in memory — the queue
(at most ``flush_interval_s`` worth while Postgres keeps up) and spool lines not yet
fsync'd — are lost; everything else is found and drained by the next writer on the same
spool. ``close`` (session end, SIGTERM) loses nothing.
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections import deque
from dataclasses import dataclass
from datetime import datetime
from itertools import islice
from pathlib import Path
from typing import Any

import asyncpg
from loguru import logger

from storage.spool import JournalSpool, Record, SpoolChunk

COLUMNS = ("session_id", "seq", "mono_ns", "wall_time", "kind", "direction", "source", "payload")
_COLUMN_LIST = ", ".join(COLUMNS)

# Used only on the drain path, where a row may already be stored (see module docstring).
_CREATE_DRAIN_TABLE = "CREATE TEMP TABLE frame_journal_drain (LIKE frame_journal) ON COMMIT DROP"
_INSERT_FROM_DRAIN = (
    f"INSERT INTO frame_journal ({_COLUMN_LIST}) "
    f"SELECT {_COLUMN_LIST} FROM frame_journal_drain ON CONFLICT DO NOTHING"
)
_INSERT_ONE = (
    f"INSERT INTO frame_journal ({_COLUMN_LIST}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) "
    "ON CONFLICT DO NOTHING"
)

# Errors that are about the rows themselves; anything else means "try again later".
_ROW_ERRORS = (asyncpg.DataError, asyncpg.IntegrityConstraintViolationError, TypeError, ValueError)


@dataclass(slots=True)
class JournalEvent:
    """One journal entry: a frame (or other event) the tap saw.

    Parameters:
        session_id: The session.
        seq: Position in the session, unique per session.
        mono_ns: ``time.monotonic_ns()`` when seen, for precise intervals.
        wall_time: Timezone-aware (UTC) time when seen.
        kind: What it is, e.g. the frame class ``TranscriptionFrame``.
        direction: ``downstream`` or ``upstream``.
        source: The processor that pushed it.
        payload: JSON-serializable details (text, function name, ...); never raw audio.
    """

    session_id: uuid.UUID
    seq: int
    mono_ns: int
    wall_time: datetime
    kind: str
    direction: str
    source: str
    payload: dict[str, Any]


@dataclass(frozen=True)
class JournalStats:
    """Counters of a journal writer.

    Parameters:
        accepted: Events passed to ``write``.
        written: Rows inserted into Postgres.
        spooled: Events appended to the spool file.
        pending: Events not yet in Postgres (queued or spooled).
        batches: Successful COPY batches.
        rejected: Events Postgres refused for their content, kept in the rejected file.
        last_error: The last failure, as ``Type: message``, or None.
    """

    accepted: int
    written: int
    spooled: int
    pending: int
    batches: int
    rejected: int
    last_error: str | None


class JournalWriter:
    """Writes journal events to ``frame_journal`` in batches, spooling while Postgres is away.

    ``write`` must be called from the event loop's thread. Example::

        writer = JournalWriter(database.pool, spool_path=Path("/var/lib/kane/journal.spool"))
        writer.start()
        writer.write(JournalEvent(...))   # per frame, never blocks
        await writer.flush()              # e.g. at session end
        await writer.close()              # at shutdown
    """

    def __init__(
        self,
        pool: asyncpg.Pool,
        *,
        spool_path: Path,
        max_batch: int = 5000,
        flush_interval_s: float = 0.2,
        queue_size: int = 100_000,
        retry_max_s: float = 2.0,
        timeout_s: float = 10.0,
    ) -> None:
        """Initializes the writer; call ``start`` to begin shipping.

        Args:
            pool: Pool on a migrated database, with the binary jsonb codec
                (``storage.database.init_connection``).
            spool_path: The spool file; one writer per file (it is locked).
            max_batch: Most rows per COPY.
            flush_interval_s: Longest wait before queued events are shipped. A batch costs
                0.2-0.5 ms of CPU whatever its size, and a session makes ~10 events a second:
                every 0.2 s keeps that small (the phone has its messages already; a hard
                kill loses at most this long of events: see Durability, above).
            queue_size: Events held in memory; beyond that the oldest go to the spool.
            retry_max_s: Longest wait between attempts while Postgres is away.
            timeout_s: Limit on getting a connection and on each statement.
        """
        self._pool = pool
        self._spool = JournalSpool(spool_path)
        self._max_batch = max_batch
        self._flush_interval_s = flush_interval_s
        self._queue_size = queue_size
        self._retry_max_s = retry_max_s
        self._timeout_s = timeout_s

        self._queue: deque[JournalEvent] = deque()
        self._accepted = 0
        # Batch in flight: its size, and how many of its events a full queue has since
        # moved to the spool (they left the head of the queue; the rest are still there).
        self._in_flight = 0
        self._head_spooled = 0
        # Durability bookkeeping, in ordinals (the n-th event written has ordinal n - 1):
        # the oldest event appended to the spool since the last fsync, and during an fsync.
        self._unsynced_from: int | None = None
        self._syncing_from: int | None = None
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []

        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._closed = False
        self._db_ok = True
        self._retry_at = 0.0
        self._retry_delay = 0.0
        self._overflowing = False

        self._written = 0
        self._spooled = 0
        self._batches = 0
        self._rejected = 0
        self._last_error: str | None = None

    def __str__(self) -> str:
        return f"JournalWriter({self._spool.path.name})"

    @property
    def written(self) -> int:
        """Rows inserted into Postgres."""
        return self._written

    @property
    def spooled(self) -> int:
        """Events appended to the spool file."""
        return self._spooled

    @property
    def pending(self) -> int:
        """Events not yet in Postgres: queued in memory or waiting in the spool."""
        return len(self._queue) + self._spool.pending

    @property
    def batches(self) -> int:
        """Successful COPY batches."""
        return self._batches

    @property
    def last_error(self) -> str | None:
        """The last failure, as ``Type: message``, or None."""
        return self._last_error

    @property
    def stats(self) -> JournalStats:
        """All counters at once."""
        return JournalStats(
            accepted=self._accepted,
            written=self._written,
            spooled=self._spooled,
            pending=self.pending,
            batches=self._batches,
            rejected=self._rejected,
            last_error=self._last_error,
        )

    def start(self) -> None:
        """Opens the spool (draining what an earlier run left) and starts shipping.

        Raises:
            RuntimeError: Already started, or another writer holds the spool.
        """
        if self._task is not None:
            raise RuntimeError(f"{self}: already started")
        left = self._spool.open()
        if left:
            logger.info(f"{self}: found {left} spooled events from an earlier run")
        self._task = asyncio.get_running_loop().create_task(self._run(), name=str(self))

    def write(self, event: JournalEvent) -> None:
        """Accepts an event; never blocks, never drops.

        Args:
            event: The event. Not copied: do not change it afterwards.

        Raises:
            RuntimeError: The writer is closed.
        """
        if self._closed:
            raise RuntimeError(f"{self}: closed")
        queue = self._queue
        if len(queue) >= self._queue_size:
            self._overflow()
        queue.append(event)
        self._accepted += 1
        if len(queue) == self._max_batch:
            self._wakeup.set()

    async def flush(self, session_id: uuid.UUID | None = None) -> None:
        """Waits until every event written so far is in Postgres or the fsync'd spool.

        Args:
            session_id: Accepted for readability at call sites; the wait covers every
                session's events (the journal keeps one order for all).

        Raises:
            RuntimeError: The writer is not running.
        """
        target = self._accepted
        if self._durable() >= target:
            return
        if self._task is None or self._task.done():
            raise RuntimeError(f"{self}: not running")
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append((target, waiter))
        self._wakeup.set()
        await waiter

    async def close(self) -> None:
        """Makes everything durable, drains the spool if Postgres is up, and stops."""
        if self._closed:
            return
        if self._task is None:
            self.start()
        assert self._task is not None
        self._closing = True
        self._wakeup.set()
        try:
            await self._task
        finally:
            self._closed = True
            self._spool.close()
        logger.info(f"{self}: closed; {self.stats}")

    # --- caller side --------------------------------------------------------------------

    def _overflow(self) -> None:
        oldest = self._queue.popleft()
        ordinal = self._accepted - len(self._queue) - 1
        try:
            self._spool.append((oldest,))
        except OSError as exc:
            # Keep it in memory rather than drop it; the queue grows past its size.
            self._queue.appendleft(oldest)
            self._note_error(exc)
            return
        self._spooled += 1
        if self._unsynced_from is None:
            self._unsynced_from = ordinal
        if self._head_spooled < self._in_flight:
            self._head_spooled += 1
        if not self._overflowing:
            self._overflowing = True
            logger.warning(f"{self}: queue full ({self._queue_size}); spilling to the spool")

    # --- background task ----------------------------------------------------------------

    async def _run(self) -> None:
        try:
            while True:
                await self._wait()
                await self._cycle()
                self._wake_waiters()
                if self._closing and self._settled():
                    return
        except asyncio.CancelledError:
            for _, waiter in self._waiters:
                waiter.cancel()
            raise
        except Exception as exc:
            logger.exception(f"{self}: stopped by an error")
            for _, waiter in self._waiters:
                if not waiter.done():
                    waiter.set_exception(RuntimeError(f"{self}: stopped: {exc!r}"))
            raise

    async def _wait(self) -> None:
        if not self._wakeup.is_set() and not self._closing:
            try:
                async with asyncio.timeout(self._flush_interval_s):
                    await self._wakeup.wait()
            except TimeoutError:
                pass
        self._wakeup.clear()

    async def _cycle(self) -> None:
        # Older events first: the spool holds only events older than the queue's.
        while True:
            if self._spool.pending:
                if not self._db_ok and time.monotonic() < self._retry_at:
                    break
                await self._drain()
            elif self._queue and self._db_ok:
                await self._ship()
            else:
                break
            await self._sync()
            self._wake_waiters()
        if self._queue:  # Postgres is away: keep them in the spool until it is back
            self._spool_queue()
        if len(self._queue) < self._queue_size // 2:
            self._overflowing = False
        await self._sync()

    async def _ship(self) -> None:
        batch = list(islice(self._queue, self._max_batch))
        records = [
            (e.session_id, e.seq, e.mono_ns, e.wall_time, e.kind, e.direction, e.source, e.payload)
            for e in batch
        ]
        self._in_flight, self._head_spooled = len(batch), 0
        error: Exception | None = None
        try:
            async with self._pool.acquire(timeout=self._timeout_s) as conn:
                await conn.copy_records_to_table(
                    "frame_journal", records=records, columns=COLUMNS, timeout=self._timeout_s
                )
        except Exception as exc:
            error = exc
        finally:
            still_queued = len(batch) - self._head_spooled
            self._in_flight = self._head_spooled = 0
        if error is None:
            for _ in range(still_queued):
                self._queue.popleft()
            self._written += len(batch)
            self._batches += 1
            self._db_back()
            return
        self._note_error(error)
        if not isinstance(error, _ROW_ERRORS):
            self._schedule_retry()
        # The batch's first events may already be in the spool (moved out by a full
        # queue); append the rest after them, keeping the order.
        self._spool_head(still_queued)

    def _spool_queue(self) -> None:
        self._spool_head(len(self._queue))

    def _spool_head(self, count: int) -> None:
        if count == 0:
            return
        events = list(islice(self._queue, count))
        ordinal = self._accepted - len(self._queue)
        try:
            self._spool.append(events)
        except OSError as exc:
            self._note_error(exc)  # they stay queued; tried again next cycle
            return
        for _ in range(count):
            self._queue.popleft()
        self._spooled += count
        if self._unsynced_from is None:
            self._unsynced_from = ordinal

    async def _drain(self) -> None:
        spool = self._spool
        if not self._db_ok:
            logger.debug(f"{self}: retrying; {spool.pending} events in the spool")
        while spool.pending:
            chunk = spool.read(self._max_batch)
            try:
                inserted = await self._insert_idempotent(chunk)
            except Exception as exc:
                self._note_error(exc)
                self._schedule_retry()
                return
            spool.consume(chunk)
            self._written += inserted
            self._batches += 1
            if not self._db_ok:
                logger.info(f"{self}: database back; draining the spool")
            self._db_back()

    async def _insert_idempotent(self, chunk: SpoolChunk) -> int:
        """Stores a spool chunk; rows already stored are skipped, bad rows rejected."""
        if chunk.bad_lines:
            self._reject(chunk.bad_lines, "could not be decoded")
        if not chunk.records:
            return 0
        try:
            async with self._pool.acquire(timeout=self._timeout_s) as conn:
                async with conn.transaction():
                    await conn.execute(_CREATE_DRAIN_TABLE, timeout=self._timeout_s)
                    await conn.copy_records_to_table(
                        "frame_journal_drain",
                        records=chunk.records,
                        columns=COLUMNS,
                        timeout=self._timeout_s,
                    )
                    status = await conn.execute(_INSERT_FROM_DRAIN, timeout=self._timeout_s)
            return _row_count(status)
        except _ROW_ERRORS as exc:
            self._note_error(exc)
            return await self._insert_one_by_one(chunk.records, chunk.lines)

    async def _insert_one_by_one(self, records: list[Record], lines: list[bytes]) -> int:
        inserted, refused = 0, []
        async with self._pool.acquire(timeout=self._timeout_s) as conn:
            for record, line in zip(records, lines, strict=True):
                try:
                    status = await conn.execute(_INSERT_ONE, *record, timeout=self._timeout_s)
                    inserted += _row_count(status)
                except _ROW_ERRORS:
                    refused.append(line)
        self._reject(refused, "were refused by Postgres")
        return inserted

    def _reject(self, lines: list[bytes], why: str) -> None:
        if lines:
            self._spool.reject(lines)
            self._rejected += len(lines)
            logger.error(
                f"{self}: {len(lines)} spooled events {why}; kept in {self._spool.rejected_path}"
            )

    async def _sync(self) -> None:
        if not self._spool.dirty:
            return
        fd = self._spool.begin_sync()
        self._syncing_from, self._unsynced_from = self._unsynced_from, None
        try:
            await asyncio.to_thread(os.fsync, fd)
        finally:
            self._syncing_from = None

    # --- bookkeeping --------------------------------------------------------------------

    def _durable(self) -> int:
        """Ordinal below which every event is in Postgres or in the fsync'd spool."""
        durable = self._accepted - len(self._queue)
        for mark in (self._unsynced_from, self._syncing_from):
            if mark is not None and mark < durable:
                durable = mark
        return durable

    def _wake_waiters(self) -> None:
        if not self._waiters:
            return
        durable, waiting = self._durable(), []
        for target, waiter in self._waiters:
            if waiter.done():
                continue
            if target <= durable:
                waiter.set_result(None)
            else:
                waiting.append((target, waiter))
        self._waiters = waiting

    def _settled(self) -> bool:
        return (
            not self._queue
            and not self._spool.dirty
            and self._unsynced_from is None
            and (not self._spool.pending or not self._db_ok)
        )

    def _schedule_retry(self) -> None:
        if self._db_ok:
            logger.warning(f"{self}: database unavailable, spooling: {self._last_error}")
        self._db_ok = False
        self._retry_delay = min(max(self._retry_delay * 2, 0.05), self._retry_max_s)
        self._retry_at = time.monotonic() + self._retry_delay

    def _note_error(self, exc: BaseException) -> None:
        # Messages only: asyncpg keeps row data in the exception's detail and context.
        self._last_error = f"{type(exc).__name__}: {str(exc)[:200]}"

    def _db_back(self) -> None:
        self._db_ok = True
        self._retry_delay = 0.0


def _row_count(status: str) -> int:
    # "INSERT 0 <rows>"
    return int(status.rsplit(" ", 1)[-1])
