"""Journal writer benchmark: events/s into PostgreSQL, µs per write() call, lost = 0.

Run by hand (not by pytest)::

    uv run python -m bench.journal_bench              # embedded PostgreSQL, 500k events
    uv run python -m bench.journal_bench --events 1000000
    DATABASE_URL=postgresql://... uv run python -m bench.journal_bench

Prints a table and writes ``bench/results/journal.json``. Targets (DESIGN.md §6):
≥ 100k events/s, ≤ 5 µs per event on the caller's side, zero lost.

The producer writes bursts on the event loop, as the tap would, and yields in between so
the writer's task runs on the same loop (its COPY encoding competes with the producer,
as it would with the pipeline). It waits for a flush once more than ``--backlog`` events are
pending, so the rate measured is what the writer sustains, not how fast a queue fills.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from loguru import logger

from storage.database import Database
from storage.embedded import EmbeddedPostgres
from storage.journal import JournalEvent

RESULTS = Path(__file__).with_name("results") / "journal.json"
SESSIONS = 24  # DESIGN.md §6: one worker, 24 concurrent sessions
TIMED_CALLS = 100  # write() calls per perf_counter_ns measurement
BURST = 5000  # events written between two yields to the loop


def make_events(sessions: list[uuid.UUID], start: int, count: int) -> list[JournalEvent]:
    now = datetime.now(UTC)
    mono = time.monotonic_ns()
    events = []
    for n in range(start, start + count):
        events.append(
            JournalEvent(
                session_id=sessions[n % SESSIONS],
                seq=n // SESSIONS,
                mono_ns=mono + n,
                wall_time=now,
                kind="TranscriptionFrame",
                direction="downstream",
                source="DeepgramSTTService#0",
                payload={"text": f"I want to finish the deck before lunch {n}", "confidence": 0.93},
            )
        )
    return events


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def measure_loop_lag(lags: list[float], stop: asyncio.Event) -> None:
    """How late a 1 ms timer fires: the stalls the writer's work puts on the loop."""
    while not stop.is_set():
        t0 = time.perf_counter()
        await asyncio.sleep(0.001)
        lags.append(time.perf_counter() - t0 - 0.001)


async def run_throughput(
    database: Database, spool: Path, total: int, backlog: int, max_batch: int
) -> dict:
    writer = database.journal_writer(spool, max_batch=max_batch)
    writer.start()
    lags: list[float] = []
    stop_ticker = asyncio.Event()
    ticker = asyncio.create_task(measure_loop_lag(lags, stop_ticker))
    sessions = [uuid.uuid4() for _ in range(SESSIONS)]
    # Built beforehand: the rate measured is the writer's, not the event factory's.
    bursts = [make_events(sessions, n, min(BURST, total - n)) for n in range(0, total, BURST)]
    per_event_ns: list[float] = []
    write_ns = 0
    started = time.perf_counter()
    for events in bursts:
        if writer.pending > backlog:
            await writer.flush()  # back-pressure, so the queue never spills
        for i in range(0, len(events), TIMED_CALLS):
            chunk = events[i : i + TIMED_CALLS]
            t0 = time.perf_counter_ns()
            for event in chunk:
                writer.write(event)
            elapsed = time.perf_counter_ns() - t0
            write_ns += elapsed
            per_event_ns.append(elapsed / len(chunk))
        await asyncio.sleep(0)
    await writer.flush()
    elapsed_s = time.perf_counter() - started
    stop_ticker.set()
    await ticker
    await writer.close()

    counts = await database.pool.fetchrow(
        "SELECT count(*), count(DISTINCT (session_id, seq)) FROM frame_journal"
    )
    assert counts is not None
    stored, distinct = counts
    return {
        "events": total,
        "elapsed_s": round(elapsed_s, 3),
        "events_per_s": round(total / elapsed_s),
        "max_batch": max_batch,
        "loop_lag_ms_p99": round(percentile(lags, 0.99) * 1000, 2),
        "loop_lag_ms_max": round(max(lags) * 1000, 2),
        "write_us_median": round(statistics.median(per_event_ns) / 1000, 3),
        "write_us_p99": round(percentile(per_event_ns, 0.99) / 1000, 3),
        "write_us_mean": round(write_ns / total / 1000, 3),
        "stored": stored,
        "duplicates": stored - distinct,
        "lost": total - distinct,
        "batches": writer.batches,
        "spooled": writer.spooled,
    }


async def run_overflow(database: Database, spool: Path, total: int) -> dict:
    """write() cost when the queue is full and every event spills to the spool file."""
    writer = database.journal_writer(spool, queue_size=1000)
    writer.start()
    sessions = [uuid.uuid4() for _ in range(SESSIONS)]
    events = make_events(sessions, 0, total)
    per_event_ns = []
    for i in range(0, total, TIMED_CALLS):  # no yield: the writer cannot run meanwhile
        chunk = events[i : i + TIMED_CALLS]
        t0 = time.perf_counter_ns()
        for event in chunk:
            writer.write(event)
        per_event_ns.append((time.perf_counter_ns() - t0) / len(chunk))
    spilled = writer.spooled
    await writer.close()
    stored = await database.pool.fetchval(
        "SELECT count(*) FROM frame_journal WHERE session_id = ANY($1)", sessions
    )
    return {
        "events": total,
        "spilled": spilled,
        "write_us_median": round(statistics.median(per_event_ns[10:]) / 1000, 3),
        "write_us_p99": round(percentile(per_event_ns[10:], 0.99) / 1000, 3),
        "lost": total - stored,
    }


async def main(args: argparse.Namespace) -> int:
    logger.remove()
    logger.add(sys.stderr, level="WARNING")
    workdir = Path(tempfile.mkdtemp(prefix="kane-journal-bench-"))
    server: EmbeddedPostgres | None = None
    try:
        if os.environ.get("DATABASE_URL"):
            database = await Database.open(os.environ["DATABASE_URL"])
            await database.pool.execute("TRUNCATE frame_journal")
        else:
            server = EmbeddedPostgres(workdir / "pgdata")
            database = await Database.open(await server.start(database="journal_bench"))
        try:
            version = await database.pool.fetchval("SHOW server_version")
            throughput = await run_throughput(
                database, workdir / "journal.spool", args.events, args.backlog, args.max_batch
            )
            await database.pool.execute("TRUNCATE frame_journal")
            overflow = await run_overflow(database, workdir / "overflow.spool", args.overflow)
        finally:
            await database.close()
    finally:
        if server is not None:
            await server.stop()
        shutil.rmtree(workdir, ignore_errors=True)

    result: dict[str, Any] = {
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "postgres": version,
        "targets": {"events_per_s": 100_000, "write_us": 5.0, "lost": 0},
        "throughput": throughput,
        "overflow": overflow,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")

    ok_rate = throughput["events_per_s"] >= 100_000
    ok_write = throughput["write_us_p99"] <= 5.0
    ok_lost = throughput["lost"] == 0 and throughput["duplicates"] == 0 and overflow["lost"] == 0
    rows = [
        ("events/s into Postgres", f"{throughput['events_per_s']:,}", "≥ 100,000", ok_rate),
        ("write() µs, median", f"{throughput['write_us_median']:.2f}", "≤ 5", ok_write),
        ("write() µs, p99", f"{throughput['write_us_p99']:.2f}", "≤ 5", ok_write),
        ("lost / duplicated", f"{throughput['lost']} / {throughput['duplicates']}", "0", ok_lost),
        (
            "loop stall ms, p99 / max",
            f"{throughput['loop_lag_ms_p99']:.1f} / {throughput['loop_lag_ms_max']:.1f}",
            "",
            True,
        ),
        ("write() µs p99, queue full", f"{overflow['write_us_p99']:.2f}", "(spills)", True),
    ]
    print(
        f"journal bench: {args.events:,} events, {SESSIONS} sessions, "
        f"max_batch {args.max_batch}, PostgreSQL {version}"
    )
    print(f"{'measure':28} {'value':>12}  {'target':>10}")
    for name, value, target, ok in rows:
        print(f"{name:28} {value:>12}  {target:>10}  {'ok' if ok else 'MISSED'}")
    print(f"wrote {RESULTS}")
    return 0 if ok_rate and ok_write and ok_lost else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=500_000, help="events to write")
    parser.add_argument("--overflow", type=int, default=50_000, help="events, queue-full run")
    parser.add_argument("--max-batch", type=int, default=5000, help="JournalWriter max_batch")
    parser.add_argument("--backlog", type=int, default=50_000, help="producer backs off above")
    sys.exit(asyncio.run(main(parser.parse_args())))
