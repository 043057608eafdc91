"""The frame journal writer against a real (embedded) PostgreSQL: COPY, order, durability.

Every test checks the same user-visible promise: each (session, seq) written is in
``frame_journal`` exactly once, and no event committed before an older one of its session.
"""

from __future__ import annotations

import asyncio
import sys
import time
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import pytest

from storage.database import Database, init_connection
from storage.embedded import EmbeddedPostgres
from storage.journal import COLUMNS, JournalEvent, JournalWriter

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def spool_path(tmp_path: Path) -> Path:
    return tmp_path / "spool" / "journal.spool"


class Events:
    """Makes events for a few sessions, each with its own 0, 1, 2, ... seq."""

    def __init__(self, sessions: int = 3) -> None:
        self.sessions = [uuid.uuid4() for _ in range(sessions)]
        self.next_seq = dict.fromkeys(self.sessions, 0)
        self.made = 0

    def make(self, count: int) -> list[JournalEvent]:
        events = []
        for _ in range(count):
            session = self.sessions[self.made % len(self.sessions)]
            seq = self.next_seq[session]
            self.next_seq[session] = seq + 1
            self.made += 1
            events.append(
                JournalEvent(
                    session_id=session,
                    seq=seq,
                    mono_ns=time.monotonic_ns(),
                    wall_time=datetime.now(UTC),
                    kind="TranscriptionFrame",
                    direction="downstream",
                    source="DeepgramSTTService#0",
                    payload={"text": f"event {seq}", "n": self.made},
                )
            )
        return events


def read(path: Path) -> bytes:
    return path.read_bytes()  # small files, in tests


def write_all(writer: JournalWriter, events: Iterable[JournalEvent]) -> None:
    for event in events:
        writer.write(event)


async def assert_journal_complete(pool: asyncpg.Pool, events: Events) -> None:
    """Every (session, seq) once, and within a session no newer event committed earlier."""
    rows = await pool.fetch(
        "SELECT session_id, seq, xmin::text::bigint AS xid FROM frame_journal ORDER BY 1, 2"
    )
    assert len(rows) == events.made
    for session in events.sessions:
        mine = [row for row in rows if row["session_id"] == session]
        assert [row["seq"] for row in mine] == list(range(events.next_seq[session]))
        xids = [row["xid"] for row in mine]
        assert xids == sorted(xids), "a newer event was committed before an older one"


async def test_copy_round_trip_keeps_every_field(database: Database, spool_path: Path) -> None:
    writer = database.journal_writer(spool_path)
    writer.start()
    session = uuid.uuid4()
    sent = [
        JournalEvent(
            session,
            0,
            123,
            datetime(2026, 1, 2, 3, 4, 5, 678901, UTC),
            "StartFrame",
            "downstream",
            "PipelineSource#0",
            {},
        ),
        JournalEvent(
            session,
            1,
            456,
            datetime.now(UTC),
            "LLMTextFrame",
            "downstream",
            "OpenAILLMService#0",
            {"text": "Grüße, ☀️", "nested": {"a": [1, 2.5, None]}},
        ),
        JournalEvent(
            session,
            2,
            789,
            datetime.now(UTC),
            "FunctionCallResultFrame",
            "upstream",
            "OpenAILLMService#0",
            {"function_name": "create_quest", "arguments": {"title": "Ship"}, "result": True},
        ),
    ]
    write_all(writer, sent)
    await writer.close()

    rows = await database.pool.fetch(f"SELECT {', '.join(COLUMNS)} FROM frame_journal ORDER BY seq")
    assert [JournalEvent(**dict(row)) for row in rows] == sent
    assert (writer.written, writer.spooled, writer.pending, writer.last_error) == (3, 0, 0, None)
    assert not read(spool_path)


async def test_flush_makes_written_events_visible(database: Database, spool_path: Path) -> None:
    # A long interval: only flush() can make them visible this soon.
    writer = database.journal_writer(spool_path, flush_interval_s=60)
    writer.start()
    events = Events()
    try:
        await writer.flush()  # nothing written: returns at once
        for _ in range(3):
            write_all(writer, events.make(250))
            async with asyncio.timeout(5):
                await writer.flush(events.sessions[0])
            count = await database.pool.fetchval("SELECT count(*) FROM frame_journal")
            assert count == events.made
    finally:
        await writer.close()
    await assert_journal_complete(database.pool, events)


async def test_order_and_100k_events(database: Database, spool_path: Path) -> None:
    writer = database.journal_writer(spool_path)
    writer.start()
    events = Events(sessions=24)
    started = time.perf_counter()
    for _ in range(20):  # as a busy worker would: bursts, with the loop running in between
        write_all(writer, events.make(5000))
        await asyncio.sleep(0)
    await writer.flush()
    elapsed = time.perf_counter() - started
    await writer.close()

    await assert_journal_complete(database.pool, events)
    assert events.made == 100_000
    assert (writer.written, writer.spooled, writer.stats.rejected) == (100_000, 0, 0)
    print(f"100k events in {elapsed:.2f} s, {writer.batches} batches")


@pytest.mark.parametrize("yield_every", [None, 700], ids=["tight-loop", "while-copying"])
async def test_full_queue_spills_to_spool_and_loses_nothing(
    database: Database, spool_path: Path, yield_every: int | None
) -> None:
    writer = database.journal_writer(spool_path, queue_size=1000, max_batch=400)
    writer.start()
    events = Events()
    for i, event in enumerate(events.make(20_000)):
        writer.write(event)
        if yield_every and i % yield_every == 0:
            await asyncio.sleep(0)  # lets a COPY start, so the queue spills while it runs
    assert writer.spooled > 0
    await writer.close()

    await assert_journal_complete(database.pool, events)
    assert writer.pending == 0 and not read(spool_path)


async def test_database_stopped_mid_stream_loses_and_duplicates_nothing(
    pg_data_dir: Path, spool_path: Path
) -> None:
    server = EmbeddedPostgres(pg_data_dir)
    dsn = await server.start()
    database = await Database.open(dsn)
    writer = database.journal_writer(spool_path, retry_max_s=0.2)
    writer.start()
    events = Events()
    stop_writing = asyncio.Event()

    async def produce() -> None:  # ~100k events/s, as a steady stream
        while not stop_writing.is_set():
            write_all(writer, events.make(500))
            await asyncio.sleep(0.005)

    producer = asyncio.create_task(produce())
    try:
        await asyncio.sleep(0.5)
        assert writer.written > 0 and writer.spooled == 0
        await server.stop()
        await asyncio.sleep(0.5)
        # Away: events go to the spool, and flush still returns once they are fsync'd there.
        async with asyncio.timeout(5):
            await writer.flush()
        assert writer.spooled > 0 and writer.last_error is not None
        assert await server.start() == dsn
        await asyncio.sleep(1.0)
        stop_writing.set()
        await producer
        async with asyncio.timeout(30):
            await writer.flush()
        await writer.close()

        assert writer.pending == 0
        await assert_journal_complete(database.pool, events)
        print(f"{events.made} events, {writer.spooled} through the spool")
    finally:
        stop_writing.set()
        await producer
        await database.close()
        await server.stop()


_CRASHING_WRITER = """
import asyncio, os, sys, time, uuid
from datetime import UTC, datetime
from pathlib import Path
import asyncpg
from storage.database import init_connection
from storage.journal import COLUMNS, JournalEvent, JournalWriter

async def main():
    # Nothing listens here: every batch goes to the spool.
    pool = await asyncpg.create_pool(
        "postgresql://postgres@/kane?host=/nonexistent", min_size=0, init=init_connection
    )
    writer = JournalWriter(pool, spool_path=Path(sys.argv[1]))
    writer.start()
    session = uuid.UUID(sys.argv[2])
    for seq in range(int(sys.argv[3])):
        writer.write(JournalEvent(session, seq, time.monotonic_ns(), datetime.now(UTC),
                                  "TextFrame", "downstream", "test", {"text": str(seq)}))
    await writer.flush()
    os._exit(0)  # a hard exit: no close(), no atexit

asyncio.run(main())
"""


async def test_restarted_writer_drains_the_spool_a_crashed_one_left(
    database: Database, spool_path: Path
) -> None:
    session, count = uuid.uuid4(), 5000
    crash = await asyncio.create_subprocess_exec(
        sys.executable, "-c", _CRASHING_WRITER, str(spool_path), str(session), str(count), cwd=ROOT
    )
    assert await crash.wait() == 0
    assert read(spool_path).count(b"\n") == count
    with spool_path.open("ab") as spool:  # killed in the middle of a line
        spool.write(b'["' + str(session).encode() + b'",99')
    # Some of these were stored before the crash (a batch whose reply never came back).
    records = [
        (session, seq, 0, datetime.now(UTC), "TextFrame", "downstream", "test", {})
        for seq in range(0, count, 3)
    ]
    await database.pool.copy_records_to_table(
        "frame_journal",
        records=records,
        columns=COLUMNS,
    )

    writer = database.journal_writer(spool_path)
    writer.start()
    await writer.close()

    seqs = await database.pool.fetch(
        "SELECT seq FROM frame_journal WHERE session_id = $1 ORDER BY seq", session
    )
    assert [row["seq"] for row in seqs] == list(range(count))
    assert writer.written == count - len(records)
    assert not read(spool_path)
    assert b",99" in read(Path(f"{spool_path}.rejected"))


async def test_rows_postgres_refuses_are_kept_aside_not_retried_forever(
    database: Database, spool_path: Path
) -> None:
    writer = database.journal_writer(spool_path)
    writer.start()
    events = Events(sessions=1)
    batch = events.make(10)
    batch[4].payload = {"text": "nul \x00 byte"}  # jsonb cannot hold U+0000
    batch[6].payload = {"blob": b"\x01\x02"}  # not JSON: stored as its str()
    write_all(writer, batch)
    await writer.close()

    rows = await database.pool.fetch("SELECT seq, payload FROM frame_journal ORDER BY seq")
    assert [row["seq"] for row in rows] == [0, 1, 2, 3, 5, 6, 7, 8, 9]
    assert rows[5]["payload"] == {"blob": "b'\\x01\\x02'"}
    assert writer.stats.rejected == 1
    assert b"nul \\u0000 byte" in read(Path(f"{spool_path}.rejected"))


async def test_one_writer_per_spool_and_no_writes_after_close(
    database: Database, spool_path: Path
) -> None:
    first = database.journal_writer(spool_path)
    first.start()
    second = database.journal_writer(spool_path)
    with pytest.raises(RuntimeError, match="in use"):
        second.start()
    await first.close()
    with pytest.raises(RuntimeError, match="closed"):
        first.write(Events().make(1)[0])


async def test_pool_without_a_server_spools_until_close(spool_path: Path) -> None:
    pool = await asyncpg.create_pool(
        "postgresql://postgres@/kane?host=/nonexistent", min_size=0, init=init_connection
    )
    writer = JournalWriter(pool, spool_path=spool_path)
    writer.start()
    write_all(writer, Events().make(100))
    async with asyncio.timeout(5):
        await writer.close()  # does not wait for a database that is not there
    await pool.close()
    assert (writer.written, writer.spooled, writer.pending) == (0, 100, 100)
    assert read(spool_path).count(b"\n") == 100
