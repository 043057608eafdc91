"""Draft latency benchmark: interim transcript in, quest draft out (DESIGN.md §6: ≤ 20 ms p99).

Run by hand (not by pytest)::

    uv run python -m bench.draft_bench
    uv run python -m bench.draft_bench --rounds 10 --sessions 24

Feeds the evaluation set's utterances (``tests/data/quest_utterances.jsonl``) as an STT
would, interims growing a word at a time and then the final, through ``source -> detector ->
sink`` pipelines. The source stamps each interim as it enters; the sink stamps each draft as
it arrives and pairs it with the interim just before it (a draft follows its transcript).
Also times the detector's reading of one interim alone. Prints p50/p95/p99 and writes
``bench/results/draft.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from loguru import logger
from pipecat.frames.frames import (
    EndFrame,
    Frame,
    InterimTranscriptionFrame,
    TranscriptionFrame,
)
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.worker import PipelineWorker
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
from pipecat.workers.runner import WorkerRunner

from frames.quests import QuestDraftFrame
from processors.partial_quests import PartialQuestDetector

DATA = Path(__file__).parents[1] / "tests" / "data" / "quest_utterances.jsonl"
RESULTS = Path(__file__).with_name("results") / "draft.json"
TARGET_P99_MS = 20.0
TARGET_READ_MS = 1.0


def load_turns() -> list[list[str]]:
    return [json.loads(line)["turns"] for line in DATA.read_text().splitlines() if line.strip()]


def as_heard(turns: list[str]) -> list[Frame]:
    frames: list[Frame] = []
    for turn in turns:
        words = turn.split()
        for n in range(1, len(words) + 1):
            frames.append(InterimTranscriptionFrame(" ".join(words[:n]), "person", "t"))
        frames.append(TranscriptionFrame(turn, "person", "t"))
    return frames


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def summary(values_ms: list[float]) -> dict[str, float]:
    return {
        "count": len(values_ms),
        "p50_ms": round(percentile(values_ms, 0.50), 4),
        "p95_ms": round(percentile(values_ms, 0.95), 4),
        "p99_ms": round(percentile(values_ms, 0.99), 4),
        "max_ms": round(max(values_ms), 4),
    }


class Stamp(FrameProcessor):
    """The pipeline's first stage: notes when each interim transcript enters."""

    def __init__(self, entered: dict[int, int]):
        super().__init__()
        self._entered = entered

    async def process_frame(self, frame: Frame, direction: FrameDirection):
        await super().process_frame(frame, direction)
        if isinstance(frame, InterimTranscriptionFrame):
            self._entered[frame.id] = time.perf_counter_ns()
        await self.push_frame(frame, direction)


class Sink(FrameProcessor):
    """The last stage: pairs each draft with the interim it followed, and times the pair."""

    def __init__(self, entered: dict[int, int], latencies_ms: list[float]):
        super().__init__()
        self._entered = entered
        self._latencies = latencies_ms
        self._last_interim: int | None = None
        self.seen = asyncio.Event()

    async def process_frame(self, frame: Frame, direction: FrameDirection):
        now = time.perf_counter_ns()
        await super().process_frame(frame, direction)
        if isinstance(frame, InterimTranscriptionFrame):
            self._last_interim = frame.id
        elif isinstance(frame, TranscriptionFrame):
            self._last_interim = None
        elif isinstance(frame, QuestDraftFrame) and self._last_interim is not None:
            self._latencies.append((now - self._entered[self._last_interim]) / 1e6)
        if isinstance(frame, InterimTranscriptionFrame | TranscriptionFrame):
            self.seen.set()
        await self.push_frame(frame, direction)


async def run_session(utterances: list[list[str]], rounds: int, gap_s: float) -> list[float]:
    """One pipeline fed the whole set `rounds` times; latencies of interim drafts, in ms."""
    entered: dict[int, int] = {}
    latencies: list[float] = []
    sink = Sink(entered, latencies)
    pipeline = Pipeline([Stamp(entered), PartialQuestDetector(), sink])
    worker = PipelineWorker(pipeline, cancel_on_idle_timeout=False, enable_rtvi=False)
    started = asyncio.Event()

    @worker.event_handler("on_pipeline_started")
    async def _started(worker, frame):
        started.set()

    async def feed() -> None:
        await started.wait()
        for _ in range(rounds):
            for turns in utterances:
                for frame in as_heard(turns):
                    sink.seen.clear()
                    await worker.queue_frame(frame)
                    await sink.seen.wait()  # one transcript in flight, as from an STT
                    await asyncio.sleep(gap_s)
        await worker.queue_frame(EndFrame())

    runner = WorkerRunner(handle_sigint=False)
    await runner.add_workers(worker)
    await asyncio.gather(runner.run(), feed())
    return latencies


def time_reading(utterances: list[list[str]], rounds: int) -> list[float]:
    """The detector's own work per interim (``read``), outside any pipeline, in ms."""
    spent: list[float] = []
    for _ in range(rounds):
        for turns in utterances:
            detector = PartialQuestDetector()
            for frame in as_heard(turns):
                assert isinstance(frame, InterimTranscriptionFrame | TranscriptionFrame)
                final = isinstance(frame, TranscriptionFrame)
                t0 = time.perf_counter_ns()
                detector.read(frame.text, final=final)
                if not final:
                    spent.append((time.perf_counter_ns() - t0) / 1e6)
    return spent


async def main(args: argparse.Namespace) -> int:
    logger.remove()
    logger.add(sys.stderr, level="WARNING")
    utterances = load_turns()
    reading = summary(time_reading(utterances, args.rounds))
    sessions = await asyncio.gather(
        *(run_session(utterances, args.rounds, args.gap_ms / 1000) for _ in range(args.sessions))
    )
    latency = summary([ms for session in sessions for ms in session])

    result: dict[str, Any] = {
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "utterances": len(utterances),
        "rounds": args.rounds,
        "sessions": args.sessions,
        "gap_ms": args.gap_ms,
        "targets": {"draft_p99_ms": TARGET_P99_MS, "read_ms": TARGET_READ_MS},
        "interim_to_draft": latency,
        "read_per_interim": reading,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")

    ok_latency = latency["p99_ms"] <= TARGET_P99_MS
    ok_read = reading["p99_ms"] <= TARGET_READ_MS
    print(
        f"draft bench: {len(utterances)} utterances x {args.rounds} rounds, "
        f"{args.sessions} concurrent session(s), {args.gap_ms} ms between transcripts"
    )
    print(f"{'measure':30} {'p50':>8} {'p95':>8} {'p99':>8} {'max':>8}  target")
    for name, s, target, ok in (
        ("interim -> draft at sink, ms", latency, f"p99 ≤ {TARGET_P99_MS:g}", ok_latency),
        ("detector read per interim, ms", reading, f"< {TARGET_READ_MS:g}", ok_read),
    ):
        print(
            f"{name:30} {s['p50_ms']:8.3f} {s['p95_ms']:8.3f} {s['p99_ms']:8.3f} "
            f"{s['max_ms']:8.3f}  {target} {'ok' if ok else 'MISSED'}  (n={s['count']})"
        )
    print(f"wrote {RESULTS}")
    return 0 if ok_latency and ok_read else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5, help="passes over the set")
    parser.add_argument("--sessions", type=int, default=1, help="concurrent pipelines")
    parser.add_argument("--gap-ms", type=float, default=1.0, help="pause between transcripts")
    sys.exit(asyncio.run(main(parser.parse_args())))
