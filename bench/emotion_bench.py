"""Emotion benchmark: what the local analyzer costs per turn, for 2 s, 5 s and 10 s turns.

Run by hand (not by pytest)::

    uv run python -m bench.emotion_bench               # 200 runs per length
    uv run python -m bench.emotion_bench --runs 500

Prints a table and writes ``bench/results/emotion.json``. Target: under 20 ms for a 5 s
turn. Turns are eSpeak NG speech at 16 kHz, cut or padded to length. ``cpu`` times
``LocalEmotionAnalyzer.estimate`` directly (the work); ``turn`` times ``analyze_turn`` from
an event loop, thread hop included.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from emotion.analyzer import TurnAudio
from emotion.local import LocalEmotionAnalyzer
from speech.espeak import synthesize_at

RATE = 16000
LENGTHS_S = (2.0, 5.0, 10.0)
TARGET_5S_MS = 20.0
SENTENCE = (
    "I have so much to do today, maybe I'll start with the report, "
    "then the slides, and I'm a bit behind on the budget. "
)
RESULTS = Path(__file__).parent / "results" / "emotion.json"


def make_turn(seconds: float) -> TurnAudio:
    """A turn of eSpeak speech exactly ``seconds`` long, with its words."""
    speech = synthesize_at(SENTENCE, RATE, rate_wpm=170)
    repeats = int(np.ceil(seconds * RATE / speech.size))
    audio = np.tile(speech, repeats)[: round(seconds * RATE)]
    words = len(SENTENCE.split()) * seconds * RATE / speech.size
    text = " ".join((SENTENCE.split() * repeats)[: max(1, round(words))])
    return TurnAudio(pcm=audio.astype("<i2").tobytes(), sample_rate=RATE, text=text)


def summary(values_s: list[float]) -> dict[str, float]:
    ms = np.asarray(values_s) * 1e3
    return {
        "count": int(ms.size),
        "p50_ms": round(float(np.percentile(ms, 50)), 3),
        "p99_ms": round(float(np.percentile(ms, 99)), 3),
        "max_ms": round(float(ms.max()), 3),
    }


async def time_turns(analyzer: LocalEmotionAnalyzer, turn: TurnAudio, runs: int) -> list[float]:
    costs = []
    for _ in range(runs):
        start = time.perf_counter()
        await analyzer.analyze_turn(turn)
        costs.append(time.perf_counter() - start)
    return costs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=200, help="runs per turn length")
    args = parser.parse_args()

    analyzer = LocalEmotionAnalyzer()
    asyncio.run(analyzer.start())
    rows: dict[str, dict[str, object]] = {}
    for seconds in LENGTHS_S:
        turn = make_turn(seconds)
        for _ in range(5):  # warm up
            analyzer.estimate(turn)
        cpu = []
        for _ in range(args.runs):
            start = time.perf_counter()
            estimate = analyzer.estimate(turn)
            cpu.append(time.perf_counter() - start)
        hop = asyncio.run(time_turns(analyzer, turn, args.runs))
        rows[f"{seconds:g}s"] = {
            "cpu": summary(cpu),
            "turn": summary(hop),
            "label": estimate.label,
        }

    print(f"{'turn':>6} {'cpu p50':>9} {'cpu p99':>9} {'turn p50':>9} {'turn p99':>9}  label")
    for name, row in rows.items():
        cpu_s, turn_s = row["cpu"], row["turn"]
        assert isinstance(cpu_s, dict) and isinstance(turn_s, dict)
        print(
            f"{name:>6} {cpu_s['p50_ms']:>8.2f}ms {cpu_s['p99_ms']:>7.2f}ms "
            f"{turn_s['p50_ms']:>7.2f}ms {turn_s['p99_ms']:>7.2f}ms  {row['label']}"
        )
    five = rows["5s"]["cpu"]
    assert isinstance(five, dict)
    met = five["p99_ms"] < TARGET_5S_MS
    print(f"target: 5 s turn < {TARGET_5S_MS:g} ms (p99 {five['p99_ms']:.2f} ms): "
          f"{'met' if met else 'MISSED'}")  # fmt: skip

    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    report = {
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "sample_rate": RATE,
        "runs": args.runs,
        "targets": {"turn_5s_ms": TARGET_5S_MS},
        "target_met": met,
        "turns": rows,
    }
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
