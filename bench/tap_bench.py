"""Tap benchmark: what FrameTap + the journal cost a pipeline, against the same pipeline bare.

Run by hand (not by pytest)::

    uv run python -m bench.tap_bench                 # embedded PostgreSQL, 9 rounds each
    uv run python -m bench.tap_bench --rounds 15 --turns 40

Prints a table and writes ``bench/results/tap.json``. Target (DESIGN.md §6): the journal
costs the pipeline ≤ 5 µs an event, and loses none.

Each round runs a fresh ``PipelineWorker`` of pass-through processors twice, once bare and
once with a ``FrameTap`` writing into a real ``JournalWriter`` on an embedded PostgreSQL (and
a phone stub that only collects); the order alternates between rounds. A feeder queues a
realistic mix of frames one at a time and waits for each to reach the end of the pipeline
before queueing the next, so a frame's latency (queued → last processor) is its cost on the
path, with no backlog in it. The tap runs on an observer task of its own, but on the same
event loop: whatever of its work lands between a frame's push and its arrival is counted.

Separately, ``FrameTap.on_push_frame`` is timed directly, per event, off any pipeline: that
is the work the observer task does, which costs CPU but not path latency while the loop has
time to spare.
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
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from loguru import logger
from pipecat.frames.frames import (
    AggregatedTextFrame,
    BotSpeakingFrame,
    BotStartedSpeakingFrame,
    BotStoppedSpeakingFrame,
    EndFrame,
    Frame,
    InputAudioRawFrame,
    InterimTranscriptionFrame,
    LLMFullResponseEndFrame,
    LLMFullResponseStartFrame,
    LLMTextFrame,
    TranscriptionFrame,
    TTSAudioRawFrame,
    TTSStartedFrame,
    TTSStoppedFrame,
    TTSTextFrame,
    UserSpeakingFrame,
    UserStartedSpeakingFrame,
    UserStoppedSpeakingFrame,
)
from pipecat.observers.base_observer import BaseObserver, FramePushed
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.worker import PipelineWorker
from pipecat.processors.filters.identity_filter import IdentityFilter
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
from pipecat.workers.runner import WorkerRunner

from storage.database import Database
from storage.embedded import EmbeddedPostgres
from storage.journal import JournalWriter
from tap.observer import FrameTap
from tap.payloads import is_raw_media

RESULTS = Path(__file__).with_name("results") / "tap.json"
TARGET_US_PER_EVENT = 5.0
USER_AUDIO = b"\x01\x00" * 320  # 20 ms, 16 kHz mono
BOT_AUDIO = b"\x01\x00" * 480  # 20 ms, 24 kHz mono


def make_turn(n: int) -> list[Frame]:
    """One conversational turn as the pipeline sees it (~340 frames, ~75 journaled)."""
    words = f"I want to finish the quarterly deck before lunch and call Sam {n}".split()
    frames: list[Frame] = [UserStartedSpeakingFrame()]
    for i in range(150):  # 3 s of speech
        frames.append(InputAudioRawFrame(audio=USER_AUDIO, sample_rate=16000, num_channels=1))
        if i % 15 == 14:
            frames.append(UserSpeakingFrame())
            frames.append(InterimTranscriptionFrame(" ".join(words[: i // 12]), "ada", "t"))
    frames += [
        TranscriptionFrame(" ".join(words), "ada", "t"),
        UserStoppedSpeakingFrame(),
        LLMFullResponseStartFrame(),
    ]
    reply = [f"tok{i} " for i in range(40)]
    for i, token in enumerate(reply):
        frames.append(LLMTextFrame(token))
        if i % 8 == 7:
            sentence = "".join(reply[i - 7 : i + 1])
            frames.append(AggregatedTextFrame(sentence, "sentence"))
    frames += [LLMFullResponseEndFrame(), TTSStartedFrame(), BotStartedSpeakingFrame()]
    for i in range(100):  # 2 s of bot speech
        frames.append(TTSAudioRawFrame(audio=BOT_AUDIO, sample_rate=24000, num_channels=1))
        if i % 20 == 0:
            frames.append(TTSTextFrame("".join(reply[i // 20 * 8 : i // 20 * 8 + 8]), "sentence"))
            frames.append(BotSpeakingFrame())
    frames += [TTSStoppedFrame(), BotStoppedSpeakingFrame()]
    return frames


class CollectingPhone:
    """Stands in for the PhoneLink (which needs LiveKit): keeps what it is told."""

    def __init__(self) -> None:
        self.sent: list[Any] = []

    def send(self, message: Any) -> None:
        self.sent.append(message)


class ArrivalTimer(FrameProcessor):
    """Last processor: notes when each frame the feeder queued arrives, then passes it on."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.queued_ns: dict[int, int] = {}
        self.latencies_ns: list[int] = []
        self.arrived = asyncio.Event()

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        queued = self.queued_ns.pop(frame.id, None)
        if queued is not None:
            self.latencies_ns.append(time.perf_counter_ns() - queued)
            self.arrived.set()
        await self.push_frame(frame, direction)


class NullObserver(BaseObserver):
    """An observer that does nothing: what any observer costs, whatever it does."""

    def __init__(self) -> None:
        super().__init__(observe_every_push=False)


VARIANTS = ("bare", "null", "tap")


@dataclass
class Run:
    """One pass of the frames through one pipeline."""

    variant: str
    frames: int
    wall_s: float
    latencies_ns: list[int]
    events: int = 0
    phone_messages: int = 0


@dataclass
class Totals:
    """What the tapped runs journaled, to check against the table at the end."""

    sessions: list[uuid.UUID] = field(default_factory=list)
    events: int = 0


async def run_pipeline(
    variant: str, frames: list[Frame], processors: int, writer: JournalWriter, totals: Totals
) -> Run:
    timer = ArrivalTimer()
    tap: FrameTap | None = None
    phone = CollectingPhone()
    observers: list[BaseObserver] = []
    if variant == "tap":
        session = uuid.uuid4()
        tap = FrameTap(session_id=str(session), journal=writer, phone=phone)  # type: ignore[arg-type]
        totals.sessions.append(session)
        observers.append(tap)
    elif variant == "null":
        observers.append(NullObserver())
    worker = PipelineWorker(
        Pipeline([*(IdentityFilter() for _ in range(processors)), timer]),
        observers=observers,
        enable_rtvi=False,
        idle_timeout_secs=None,
    )
    started = asyncio.Event()

    @worker.event_handler("on_pipeline_started")
    async def on_started(_worker: PipelineWorker, _frame: Frame) -> None:
        started.set()

    runner = WorkerRunner(handle_sigint=False)
    await runner.add_workers(worker)
    running = asyncio.create_task(runner.run())
    await started.wait()
    await asyncio.sleep(0.05)  # let start-up chatter settle

    t0 = time.perf_counter()
    for frame in frames:
        timer.arrived.clear()
        timer.queued_ns[frame.id] = time.perf_counter_ns()
        await worker.queue_frame(frame)
        await timer.arrived.wait()
    wall_s = time.perf_counter() - t0

    await worker.queue_frame(EndFrame())
    await running
    run = Run(variant, len(frames), wall_s, timer.latencies_ns)
    if tap is not None:
        run.events = tap.events
        run.phone_messages = len(phone.sent)
        totals.events += tap.events
    return run


async def time_on_push_frame(writer: JournalWriter, turns: int, totals: Totals) -> dict[str, Any]:
    """``FrameTap.on_push_frame`` called directly: ns per journaled event and per audio frame."""
    session = uuid.uuid4()
    tap = FrameTap(session_id=str(session), journal=writer, phone=CollectingPhone())  # type: ignore[arg-type]
    totals.sessions.append(session)
    source, destination = IdentityFilter(), IdentityFilter()

    def pushed(frame: Frame) -> FramePushed:
        return FramePushed(source, destination, frame, FrameDirection.DOWNSTREAM, 0)

    per_event_ns: list[float] = []
    per_audio_ns: list[float] = []
    started = time.perf_counter()
    for n in range(turns):
        turn = make_turn(n)
        journaled = [pushed(f) for f in turn if not is_raw_media(f)]
        audio = [pushed(f) for f in turn if is_raw_media(f)]
        t0 = time.perf_counter_ns()
        for data in journaled:
            await tap.on_push_frame(data)
        t1 = time.perf_counter_ns()
        for data in audio:
            await tap.on_push_frame(data)
        t2 = time.perf_counter_ns()
        per_event_ns.append((t1 - t0) / len(journaled))
        per_audio_ns.append((t2 - t1) / len(audio))
        if n % 20 == 19:
            await writer.flush()  # let the writer ship, outside the timed part
    await writer.flush()
    elapsed_s = time.perf_counter() - started
    totals.events += tap.events
    return {
        "turns": turns,
        "events": tap.events,
        # Frames in, rows committed: the tap and the writer alone, no pipeline around them.
        "events_per_s_into_postgres": round(tap.events / elapsed_s),
        "us_per_event_median": round(statistics.median(per_event_ns) / 1000, 3),
        "us_per_event_p99": round(percentile(per_event_ns, 0.99) / 1000, 3),
        "us_per_audio_frame_median": round(statistics.median(per_audio_ns) / 1000, 3),
    }


def percentile(values: list[float] | list[int], q: float) -> float:
    ordered = sorted(values)
    return float(ordered[min(len(ordered) - 1, int(q * len(ordered)))])


def us(ns: float) -> float:
    return round(ns / 1000, 2)


async def bench(database: Database, spool: Path, args: argparse.Namespace) -> dict[str, Any]:
    writer = database.journal_writer(spool)
    writer.start()
    totals = Totals()
    frames_per_run = sum(len(make_turn(n)) for n in range(args.turns))

    # Warm-up, not reported: imports, payload field caches, the pool's connections.
    for variant in VARIANTS:
        await run_pipeline(variant, make_turn(0), args.processors, writer, totals)

    runs: dict[str, list[Run]] = {variant: [] for variant in VARIANTS}
    for r in range(args.rounds):
        order = VARIANTS[r % 3 :] + VARIANTS[: r % 3]  # each variant goes first in turn
        for variant in order:
            frames = [f for n in range(args.turns) for f in make_turn(n)]
            runs[variant].append(
                await run_pipeline(variant, frames, args.processors, writer, totals)
            )
    await writer.flush()
    direct = await time_on_push_frame(writer, args.direct_turns, totals)
    await writer.close()

    stored = await database.pool.fetchrow(
        "SELECT count(*), count(DISTINCT (session_id, seq)) FROM frame_journal "
        "WHERE session_id = ANY($1)",
        totals.sessions,
    )
    assert stored is not None
    rows, distinct = stored

    tapped = runs["tap"]
    events_per_run = statistics.median(run.events for run in tapped)

    def latency(variant: str) -> dict[str, float]:
        pooled = [lat for run in runs[variant] for lat in run.latencies_ns]
        return {
            "us_median": us(statistics.median(pooled)),
            "us_mean": us(statistics.fmean(pooled)),
            "us_p99": us(percentile(pooled, 0.99)),
        }

    def added(variant: str, over: str) -> dict[str, Any]:
        """Per round, mean latency of ``variant`` minus ``over``'s; median of the rounds."""
        per_round = [
            statistics.fmean(a.latencies_ns) - statistics.fmean(b.latencies_ns)
            for a, b in zip(runs[variant], runs[over], strict=True)
        ]
        pooled_p99 = [
            percentile([lat for run in runs[v] for lat in run.latencies_ns], 0.99)
            for v in (variant, over)
        ]
        per_frame = statistics.median(per_round)
        return {
            "us_per_frame": us(per_frame),
            "us_per_frame_rounds": [us(v) for v in per_round],
            "us_per_event": us(per_frame * frames_per_run / events_per_run),
            "us_p99": us(pooled_p99[0] - pooled_p99[1]),
        }

    return {
        "frames_per_run": frames_per_run,
        "events_per_run": events_per_run,
        "phone_messages_per_run": statistics.median(run.phone_messages for run in tapped),
        "latency": {variant: latency(variant) for variant in VARIANTS},
        "added": {
            "tap_over_bare": added("tap", "bare"),
            "tap_over_null_observer": added("tap", "null"),
            "null_observer_over_bare": added("null", "bare"),
        },
        "on_push_frame": direct,
        "journal": {
            "events": totals.events,
            "stored": rows,
            "duplicates": rows - distinct,
            "lost": totals.events - distinct,
            "session_events_per_s": round(
                sum(run.events for run in tapped) / sum(run.wall_s for run in tapped)
            ),
            "spooled": writer.spooled,
        },
    }


async def main(args: argparse.Namespace) -> int:
    logger.remove()
    logger.add(sys.stderr, level="WARNING")
    workdir = Path(tempfile.mkdtemp(prefix="kane-tap-bench-"))
    server = EmbeddedPostgres(workdir / "pgdata")
    try:
        database = await Database.open(await server.start(database="tap_bench"))
        try:
            version = await database.pool.fetchval("SHOW server_version")
            measured = await bench(database, workdir / "journal.spool", args)
        finally:
            await database.close()
    finally:
        await server.stop()
        shutil.rmtree(workdir, ignore_errors=True)

    result: dict[str, Any] = {
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "postgres": version,
        "rounds": args.rounds,
        "turns_per_run": args.turns,
        "processors": args.processors,
        "targets": {"added_us_per_event": TARGET_US_PER_EVENT, "lost": 0},
        **measured,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")

    latency, added, direct, journal = (
        result["latency"],
        result["added"],
        result["on_push_frame"],
        result["journal"],
    )
    tap_cost = added["tap_over_bare"]
    ok_cost = tap_cost["us_per_event"] <= TARGET_US_PER_EVENT
    ok_lost = journal["lost"] == 0 and journal["duplicates"] == 0
    rows: list[tuple[str, str, str]] = []
    for variant in VARIANTS:
        lat = latency[variant]
        rows.append(
            (f"path µs/frame p50/p99, {variant}", f"{lat['us_median']} / {lat['us_p99']}", "")
        )
    for name, cost in added.items():
        target = f"≤ {TARGET_US_PER_EVENT:g}/event" if name == "tap_over_bare" else ""
        rows.append(
            (
                f"added µs, {name.replace('_', ' ')}",
                f"{cost['us_per_frame']}/fr {cost['us_per_event']}/ev",
                target,
            )
        )
        rows.append(("  p99 added", f"{cost['us_p99']}", ""))
    rows += [
        (
            "on_push_frame µs/event p50/p99",
            f"{direct['us_per_event_median']} / {direct['us_per_event_p99']}",
            "(off path)",
        ),
        ("on_push_frame µs/audio frame", f"{direct['us_per_audio_frame_median']}", "(skipped)"),
        ("events/s, tap+writer alone", f"{direct['events_per_s_into_postgres']:,}", ""),
        ("events/s, in the sessions", f"{journal['session_events_per_s']:,}", ""),
        (
            "events / rows / lost / dup",
            f"{journal['events']} / {journal['stored']} / "
            f"{journal['lost']} / {journal['duplicates']}",
            "0 lost",
        ),
    ]
    print(
        f"tap bench: {args.rounds} rounds × (bare, null observer, tap), "
        f"{result['frames_per_run']:,} frames ({result['events_per_run']:,.0f} journaled) per run, "
        f"{args.processors} IdentityFilters, PostgreSQL {version}"
    )
    print(f"{'measure':34} {'value':>22}  {'target':>12}")
    for name, value, target in rows:
        print(f"{name:34} {value:>22}  {target:>12}")
    print(f"{'verdict':34} {'ok' if ok_cost and ok_lost else 'MISSED':>22}")
    print(f"wrote {RESULTS}")
    return 0 if ok_cost and ok_lost else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=9, help="rounds of (bare, tap) runs")
    parser.add_argument("--turns", type=int, default=20, help="conversation turns per run")
    parser.add_argument("--processors", type=int, default=4, help="pass-through processors")
    parser.add_argument("--direct-turns", type=int, default=200, help="turns, on_push_frame")
    sys.exit(asyncio.run(main(parser.parse_args())))
