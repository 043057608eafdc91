"""Session benchmark: KANE's whole pipeline against a bare Pipecat one, N sessions at a time.

Run by hand (not by pytest)::

    uv run python -m bench.session_bench                  # 1, 8, 16, 24, 32 sessions
    uv run python -m bench.session_bench --quick          # 1, 8, 24 sessions, fewer turns
    uv run python -m bench.session_bench --levels 24 --profile   # and profile KANE at 24
    uv run python -m bench.session_bench --processes 1    # every session on one event loop

The sessions of a round run in `--processes` shard processes (default: one per core), each
with its own event loop and its share of the N sessions, as a worker with a process per core
runs them; all of them share one PostgreSQL and the emulated cloud, and start talking at the
same instant. `--processes 1` runs everything in this process, on one event loop.

Each concurrency level runs rounds of N sessions of one kind at a time, alternating bare
and KANE (ABBA over rounds) in one invocation, against the same emulated cloud in its own
process (Deepgram listen per session, OpenAI chat and speech) at stated latencies: STT
results 150 ms after the audio or `Finalize` that triggers them, LLM first token 600 ms,
TTS first byte 200 ms. The person speaks eSpeak NG turns in real time through a
`LoopbackTransport`; sessions start their first turn at random offsets, and wait for the
answer (and a short pause) before the next turn.

Per turn: voice-to-voice latency (the person stops speaking -> the first of the bot's voice
handed to the transport); KANE's added latency is KANE's quantile minus bare's at the same
level, from the same run; `--same-levels` runs bare against itself the same way, which
says how far apart two kinds that are the same come out (the noise floor). Per KANE
session: draft latency (transcript leaves the STT -> its `quest_draft` handed to the
transport), partial transcript latency likewise. Per round: CPU
(% of one core per session, the session processes summed; Postgres and the emulators apart),
RSS per session (the processes' growth summed), journal events per second and backlog, and
an accounting that nothing was lost: journal rows == events the taps wrote, phone messages
without gaps in `seq` up to `session_ended`, the person's recorded audio == the audio sent,
the bot's audio handed to the transport >= what its TTS produced. Writes
``bench/results/session.json`` and ``bench/results/session.png``; with ``--profile``,
``bench/results/session_profile.txt``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from statistics import median
from typing import Any

import uvloop
from loguru import logger

from bench.emulated_cloud import Latencies
from bench.session_rounds import (
    REPLY,
    TURNS,
    UNFINISHED,
    LocalRounds,
    RoundResult,
    Rounds,
    split_round,
    spoken_turns,
)
from bench.session_runs import mixed
from bench.session_shards import ShardedRounds, side_by_side_refusal
from bench.session_shared import SharedServices
from bench.session_stats import (
    RoundPair,
    compare,
    machine,
    mixed_round_pair,
    plot,
    quantiles,
    round_intervals,
    summarize_kind,
    voice_to_voice_ms,
)

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
PROFILES = Path(tempfile.gettempdir())  # whole profiles are large; kept out of the repo
TARGETS = {"added_p50_ms": 10.0, "added_p99_ms": 20.0, "draft_p99_ms": 20.0, "sessions": 24}


async def run(args: argparse.Namespace) -> dict[str, Any]:
    """Every level and the preemptive study; the result as written to JSON."""
    *turns, unfinished = spoken_turns([*TURNS, UNFINISHED])
    shared = SharedServices(slots=_slots(args), reply=REPLY, cloud_nice=args.cloud_nice)
    bench: Rounds = LocalRounds(args, turns, unfinished, shared)
    if args.processes > 1:
        bench = ShardedRounds(args, turns, unfinished, shared, args.processes)
    levels: list[dict[str, Any]] = []
    preemptive: list[dict[str, Any]] = []
    stock: list[dict[str, Any]] = []
    emotion: list[dict[str, Any]] = []
    same: list[dict[str, Any]] = []
    mixes: list[dict[str, Any]] = []
    mixes_same: list[dict[str, Any]] = []
    sides: list[dict[str, Any]] = []
    sides_same: list[dict[str, Any]] = []
    profile: dict[str, Any] | None = None
    try:
        await shared.open()
        await bench.open()
        # Warm-up: models loaded, connections and code paths exercised once; not counted.
        for kind in ("bare", "kane"):
            await bench.round(kind, bench.warmup_sessions, -1, 1)
        for n in args.levels:
            level = await _against_bare(bench, "kane", n, args.rounds, args.turns)
            levels.append(level)
            _print_level(level)
        for n in args.preemptive_levels:
            by_kind = await _alternate(
                bench, ("kane", "kane_preemptive"), n, args.rounds, args.turns, unfinished=True
            )
            study = {"sessions": n, **{k: summarize_kind(v) for k, v in by_kind.items()}}
            on, off = study["kane_preemptive"], study["kane"]
            study["saved_ms"] = {
                key: round(off["voice_to_voice"][key] - on["voice_to_voice"][key], 2)
                for key in ("p50_ms", "p95_ms", "p99_ms")
            }
            study["saved_p50_by_turn_ms"] = {
                text: round(off_ms - on["voice_to_voice_p50_by_turn_ms"][text], 1)
                for text, off_ms in off["voice_to_voice_p50_by_turn_ms"].items()
                if text in on["voice_to_voice_p50_by_turn_ms"]
            }
            preemptive.append(study)
            _print_preemptive(study)
        for n in args.emotion_levels:
            by_kind = await _alternate(
                bench, ("kane", "kane_no_emotion"), n, args.rounds, args.turns
            )
            study = {"sessions": n, **{k: summarize_kind(v) for k, v in by_kind.items()}}
            with_it, without = study["kane"], study["kane_no_emotion"]
            study["emotion_cost"] = {
                "cpu_pct_per_session": round(
                    with_it["cpu_pct_per_session"] - without["cpu_pct_per_session"], 2
                ),
                **{
                    key: round(with_it["voice_to_voice"][key] - without["voice_to_voice"][key], 1)
                    for key in ("p50_ms", "p95_ms", "p99_ms")
                },
                "paired_median_ms": round(
                    median(_paired(_round_pairs(by_kind["kane"], by_kind["kane_no_emotion"]))), 1
                ),
            }
            emotion.append(study)
            print(f"  {n:>2} what the emotion stage costs: {study['emotion_cost']}", flush=True)
        for n in args.same_levels:
            study = await _against_bare(bench, "bare_again", n, args.rounds, args.turns)
            same.append(study)
            _print_same("bare against itself", study)
        # The designs that run both kinds in the same rounds: (counts, kind, sides, kept, label)
        shared_rounds: tuple[tuple[list[int], str, bool, list[dict[str, Any]], str], ...] = (
            (args.mixed_levels, "kane", False, mixes, "mixed: half KANE, half bare, at once"),
            (args.mixed_same_levels, "bare_again", False, mixes_same, "mixed, bare again"),
            (args.sides_levels, "kane", True, sides, "side by side: KANE's processes and bare's"),
            (args.sides_same_levels, "bare_again", True, sides_same, "side by side, bare again"),
        )
        for counts, kind, on_sides, kept, label in shared_rounds:
            for n in counts:
                study = await _mixed(bench, kind, n, args.rounds, args.turns, sides=on_sides)
                kept.append(study)
                if kind == "kane":
                    print(f"  {n:>2} {label}", flush=True)
                    _print_level(study)
                else:
                    _print_same(label, study)
        for n in args.stock_levels:
            by_kind = await _alternate(bench, ("stock", "bare"), n, args.rounds, args.turns)
            study = {"sessions": n, **{k: summarize_kind(v) for k, v in by_kind.items()}}
            study["cpu_pct_per_session_saved"] = round(
                study["stock"]["cpu_pct_per_session"] - study["bare"]["cpu_pct_per_session"], 2
            )
            study["voice_to_voice_p50_saved_ms"] = round(
                study["stock"]["voice_to_voice"]["p50_ms"]
                - study["bare"]["voice_to_voice"]["p50_ms"],
                1,
            )
            stock.append(study)
            print(
                f"  {n:>2} stock Pipecat -> bare on KANE's services and worker options:"
                f" cpu/session {study['stock']['cpu_pct_per_session']}% -> "
                f"{study['bare']['cpu_pct_per_session']}%, v2v p50 saved"
                f" {study['voice_to_voice_p50_saved_ms']} ms",
                flush=True,
            )
        if args.profile:
            if not isinstance(bench, LocalRounds):
                # Profiled in this process, on one event loop, whatever --processes says.
                await bench.close()
                bench = LocalRounds(args, turns, unfinished, shared)
                await bench.open()
                for kind in ("bare", "kane"):
                    await bench.round(kind, 1, -1, 1)
            profile = await _profile(bench, args.profile_sessions, args.turns)
    finally:
        try:
            await bench.close()
        finally:
            await shared.close()

    crossing = next((lv["sessions"] for lv in levels if (lv["added_ms"]["p99_ms"] or 0) > 50), None)
    return {
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "emulated": {
            **Latencies().__dict__,
            "reply": REPLY,
            "stt_note": "a final transcript arrives 150 ms after Pipecat's VAD (200 ms of "
            "silence) sends Finalize, so 350 ms after the speech ends",
        },
        "config": {
            "levels": args.levels,
            "processes": args.processes,
            "cloud_nice": args.cloud_nice,
            "rounds": args.rounds,
            "turns_per_session": args.turns,
            "stagger_s": args.stagger_s,
            "turn_texts": TURNS,
            "unfinished_turn": UNFINISHED,
            "turn_detection": "Pipecat defaults: Silero VAD, Smart Turn v3",
        },
        "targets": TARGETS,
        "levels": levels,
        "p99_added_over_50ms_from_sessions": crossing,
        "preemptive": preemptive,
        "stock_pipecat": stock,
        "emotion_stage": emotion,
        "bare_against_itself": same,
        "mixed": mixes,
        "mixed_bare_against_itself": mixes_same,
        "sides": sides,
        "sides_bare_against_itself": sides_same,
        "profile": profile,
    }


def _slots(args: argparse.Namespace) -> int:
    """Most sessions at once in any round: one STT emulator each."""
    return max(
        [
            *args.levels,
            *args.preemptive_levels,
            *args.stock_levels,
            *args.emotion_levels,
            *args.same_levels,
            *args.mixed_levels,
            *args.mixed_same_levels,
            *args.sides_levels,
            *args.sides_same_levels,
            args.profile_sessions,
            args.processes,
            1,
        ]
    )


async def _alternate(
    bench: Rounds,
    kinds: tuple[str, str],
    n: int,
    rounds: int,
    turns: int,
    *,
    unfinished: bool = False,
) -> dict[str, list[RoundResult]]:
    """Rounds of the two kinds in ABBA order."""
    by_kind: dict[str, list[RoundResult]] = {k: [] for k in kinds}
    for index in range(rounds):
        for kind in kinds if index % 2 == 0 else tuple(reversed(kinds)):
            print(f"  {n:>2} sessions, round {index + 1}/{rounds}: {kind} ...", flush=True)
            by_kind[kind].append(await bench.round(kind, n, index, turns, unfinished=unfinished))
    return by_kind


async def _against_bare(
    bench: Rounds, kind: str, n: int, rounds: int, turns: int
) -> dict[str, Any]:
    """Rounds of bare and `kind`, alternating; each summarized, and `kind`'s added latency."""
    by_kind = await _alternate(bench, ("bare", kind), n, rounds, turns)
    return _added_study(n, kind, by_kind, _round_pairs(by_kind[kind], by_kind["bare"]))


async def _mixed(
    bench: Rounds, kind: str, n: int, rounds: int, turns: int, *, sides: bool = False
) -> dict[str, Any]:
    """Rounds of `n` sessions, half `kind` and half bare at once; `kind`'s added latency.

    Each round index runs twice with the same script and timings, the slots' kinds swapped
    the second time (which comes first alternates), so every slot says its turns once as
    each kind. The two kinds share every moment of the host (its load, the other work of
    their processes, Smart Turn's queue), which rounds of one kind cannot: what differs is
    what a turn costs each kind's pipeline, at a load of half of each. CPU per session is
    the mix's.

    With `sides`, the kinds share the moments of the host but not a process: each shard
    process runs sessions of one kind only (`ShardedRounds.side_by_side`), so a KANE turn
    waits behind KANE sessions in its process (its loop, its Smart Turn queue) as in
    rounds of KANE alone, and each kind's CPU is its own processes'.
    """
    by_kind: dict[str, list[RoundResult]] = {"bare": [], kind: []}
    pairs = []
    for index in range(rounds):
        arrangements = (("bare", kind), (kind, "bare"))
        halves = []
        for kinds in arrangements if index % 2 == 0 else reversed(arrangements):
            label = " | ".join(kinds) if sides else mixed(*kinds)
            print(f"  {n:>2} sessions, round {index + 1}/{rounds}: {label} ...", flush=True)
            if sides:
                assert isinstance(bench, ShardedRounds)
                halves.append(await bench.side_by_side(kinds, n, index, turns))
            else:
                halves.append(split_round(await bench.round(mixed(*kinds), n, index, turns)))
        for k, parts in by_kind.items():
            parts += [half[k] for half in halves if k in half]
        pairs.append(mixed_round_pair(kind, halves))
    return _added_study(n, kind, by_kind, pairs)


def _added_study(
    n: int, kind: str, by_kind: dict[str, list[RoundResult]], pairs: list[RoundPair]
) -> dict[str, Any]:
    """Each kind summarized, and `kind`'s latency added to bare's with its intervals."""
    summaries = {k: summarize_kind(v) for k, v in by_kind.items()}
    added = compare(summaries[kind], summaries["bare"], _paired(pairs))
    added["added_interval_95_ms"] = round_intervals(pairs)
    # Every turn, round by round, so that runs can be pooled (`bench.session_pool`).
    added["round_pairs"] = [pair.to_json() for pair in pairs]
    return {"sessions": n, **summaries, **added}


def _round_pairs(kind: list[RoundResult], base: list[RoundResult]) -> list[RoundPair]:
    """`kind`'s rounds and `base`'s, paired by their index, with their turns' latencies."""
    by_index = sorted(base, key=lambda r: r.index)
    return [
        RoundPair.of(k.outcomes, b.outcomes)
        for k, b in zip(sorted(kind, key=lambda r: r.index), by_index, strict=True)
    ]


def _paired(pairs: list[RoundPair]) -> list[float]:
    """Every turn's paired difference, over the rounds."""
    return [d for pair in pairs for d in pair.paired_ms]


async def _profile(bench: LocalRounds, n: int, turns: int) -> dict[str, Any]:
    """Profile a round of `n` sessions of each kind with pyinstrument; our code's costs."""
    from pyinstrument import Profiler

    from bench.profile_report import compare_files, self_time_by_file

    report: dict[str, Any] = {"sessions": n}
    files: dict[str, dict[str, float]] = {}
    for kind in ("bare", "kane"):
        print(f"  {n:>2} sessions, profiled: {kind} ...", flush=True)
        profiler = Profiler(interval=0.001, async_mode="disabled")
        profiler.start()
        result = await bench.round(kind, n, 99, turns)
        profiler.stop()
        report[kind] = _profile_report(profiler, result, kind)
        report[kind]["voice_to_voice"] = quantiles(voice_to_voice_ms(result.outcomes))
        files[kind] = self_time_by_file(profiler.last_session, root=ROOT)
    report["files_grown_most"] = compare_files(
        files["kane"],
        files["bare"],
        kane_s=report["kane"]["wall_s"],
        bare_s=report["bare"]["wall_s"],
    )
    return report


def _profile_report(profiler: Any, result: RoundResult, kind: str) -> dict[str, Any]:
    from bench.profile_report import our_costs

    text = profiler.output_text(unicode=False, color=False, show_all=False)
    (RESULTS / f"session_profile_{kind}.txt").write_text(text)
    profiler.last_session.save(str(PROFILES / f"session_{kind}.pyisession"))
    # The profile covers the whole round; CPU shares are of its wall time.
    wall = result.setup_s + result.talk_s + result.teardown_s
    return {"wall_s": round(wall, 1), **our_costs(profiler.last_session, root=ROOT, talk_s=wall)}


def _intervals(level: dict[str, Any]) -> str:
    i = level["added_interval_95_ms"]
    if i["p50_ms"] is None:
        return "one round: no interval"
    (p_lo, p_hi), (t_lo, t_hi) = i["p50_ms"], i["p99_ms"]
    m_lo, m_hi = i["paired_median_ms"]
    return (
        f"95% over rounds: p50 [{p_lo:+.1f}, {p_hi:+.1f}], p99 [{t_lo:+.1f}, {t_hi:+.1f}],"
        f" paired [{m_lo:+.1f}, {m_hi:+.1f}]"
    )


def _print_level(level: dict[str, Any]) -> None:
    n = level["sessions"]
    for kind in ("bare", "kane"):
        s = level[kind]
        v = s["voice_to_voice"]
        print(
            f"  {n:>2} {kind:5} v2v p50 {v['p50_ms']:7.1f}  p95 {v['p95_ms']:7.1f}  "
            f"p99 {v['p99_ms']:7.1f} ms (n={v['count']}, answered {s['answered']}/{s['turns']})"
            f"  cpu/session {s['cpu_pct_per_session']:.1f}%  rss/session "
            f"{s['rss_mb_per_session']:.0f} MB  system {s['system_cpu_pct']:.0f}%"
            f"  loops preempted {s['loop_preempted_per_s']:.0f}/s"
        )
    a, r = level["added_ms"], level["ratio"]
    print(
        f"  {n:>2} added p50 {a['p50_ms']:+.1f}  p95 {a['p95_ms']:+.1f}  p99 {a['p99_ms']:+.1f}"
        f" ms (paired median {a['paired_median_ms']:+.1f}); ratio p50 {r['p50']:.3f}"
        f" p99 {r['p99']:.3f}; {_intervals(level)}"
    )
    k = level["kane"]
    d, j = k["draft"], k["journal"]
    print(
        f"  {n:>2} draft p50 {d['p50_ms']} p99 {d['p99_ms']} ms (n={d['count']});"
        f" journal {j['events_per_s']:.0f} ev/s, backlog peak {j['backlog_peak']},"
        f" rows {j['rows_in_postgres']}/{j['events_by_taps']};"
        f" phone gaps {k['phone_seq_gaps']}, unclosed {k['phone_unclosed_sessions']};"
        f" audio lost user {k['user_audio_lost_bytes']} B bot {k['bot_audio_lost_bytes']} B",
        flush=True,
    )


def _print_same(label: str, study: dict[str, Any]) -> None:
    a = study["added_ms"]
    print(
        f"  {study['sessions']:>2} {label}: p50 {a['p50_ms']:+.1f}  p95 {a['p95_ms']:+.1f}"
        f"  p99 {a['p99_ms']:+.1f} ms (paired median {a['paired_median_ms']:+.1f});"
        f" {_intervals(study)}",
        flush=True,
    )


def _print_preemptive(study: dict[str, Any]) -> None:
    on, off = study["kane_preemptive"], study["kane"]
    unfinished = study["saved_p50_by_turn_ms"].get(UNFINISHED)
    print(
        f"  {study['sessions']:>2} preemptive: v2v p50 {off['voice_to_voice']['p50_ms']} -> "
        f"{on['voice_to_voice']['p50_ms']} ms (saved {study['saved_ms']['p50_ms']} ms; on the"
        f" turn Smart Turn misjudges, {unfinished} ms);"
        f" early answers {on['speculations']}, kept {on['speculations_kept']};"
        f" LLM calls {off['chat_requests']} -> {on['chat_requests']}",
        flush=True,
    )


def _plot(result: dict[str, Any], output: Path) -> None:
    if result["levels"]:
        machine = result["machine"]
        processes = result["config"].get("processes", 1)
        shape = "one process" if processes == 1 else f"{processes} processes"
        title = f"KANE vs bare Pipecat: {shape}, {machine['nproc']} cores ({machine['cpu_model']})"
        plot(result["levels"], output.with_suffix(".png"), title=title)


def _levels(text: str) -> list[int]:
    return [int(part) for part in text.split(",") if part.strip()]


def main() -> int:
    """Parse the options, run, print and write the results."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--levels", type=_levels, default=[1, 8, 16, 24, 32])
    parser.add_argument("--rounds", type=int, default=2, help="rounds per kind and level")
    parser.add_argument("--turns", type=int, default=4, help="turns per session per round")
    parser.add_argument("--stagger-s", type=float, default=4.0, help="spread of first turns")
    parser.add_argument("--preemptive-levels", type=_levels, default=[1, 8])
    parser.add_argument(
        "--stock-levels",
        dest="stock_levels",
        type=_levels,
        default=[8],
        help="bare against stock Pipecat (its own services, default worker observers)",
    )
    parser.add_argument(
        "--emotion-levels",
        type=_levels,
        default=[24],
        help="KANE with and without its emotion stage",
    )
    parser.add_argument(
        "--same-levels",
        type=_levels,
        default=[],
        help="bare against itself under another name: how far apart two kinds that are the"
        " same come out (the noise floor of the added latency)",
    )
    parser.add_argument(
        "--mixed-levels",
        type=_levels,
        default=[],
        help="rounds half KANE and half bare at once, then the other way round: KANE's"
        " added latency with the host's moments shared",
    )
    parser.add_argument(
        "--mixed-same-levels",
        type=_levels,
        default=[],
        help="the same with bare against itself (the mixed rounds' noise floor)",
    )
    parser.add_argument(
        "--sides-levels",
        type=_levels,
        default=[],
        help="rounds with KANE in half of the processes and bare in the others, at once,"
        " then the other way round: the host's moments shared, each process of one kind"
        " (needs an even --processes)",
    )
    parser.add_argument(
        "--sides-same-levels",
        type=_levels,
        default=[],
        help="the same with bare against itself (the side-by-side rounds' noise floor)",
    )
    parser.add_argument("--quick", action="store_true", help="1, 8, 24 sessions; 1 round")
    parser.add_argument(
        "--processes",
        type=int,
        default=os.cpu_count() or 1,
        help="shard processes the sessions of a round are spread over (default: one per core);"
        " 1 runs every session in this process, on one event loop",
    )
    parser.add_argument(
        "--cloud-nice",
        type=int,
        default=0,
        help="niceness of the emulated cloud's process; e.g. -5 gives it the CPU before the"
        " sessions, as a cloud on other machines would be (needs root)",
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="profile KANE with pyinstrument (always in one process, on one event loop,"
        " after the levels, whatever --processes says)",
    )
    parser.add_argument("--profile-sessions", type=int, default=24)
    parser.add_argument("--output", type=Path, default=RESULTS / "session.json")
    parser.add_argument("--log-level", default="WARNING")
    parser.add_argument("--replot", action="store_true", help="only redraw the PNG from --output")
    args = parser.parse_args()
    if args.processes < 1:
        parser.error("--processes must be at least 1")
    for n in [*args.sides_levels, *args.sides_same_levels]:
        if refusal := side_by_side_refusal(args.processes, n):
            parser.error(refusal)
    if args.replot:
        result = json.loads(args.output.read_text())
        _plot(result, args.output)
        return 0
    if args.quick:
        args.levels, args.rounds, args.turns = [1, 8, 24], 1, 3
        args.preemptive_levels, args.stock_levels, args.emotion_levels = [1], [], []
    logger.remove()
    logger.add(sys.stderr, level=args.log_level)
    shape = "in this process" if args.processes == 1 else f"over {args.processes} processes"
    print(f"session benchmark: the sessions of each round run {shape}", flush=True)

    # The worker runs on uvloop (api/__main__.py, session/host.py); so does the benchmark.
    result = uvloop.run(run(args))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    _plot(result, args.output)
    crossing = result["p99_added_over_50ms_from_sessions"]
    print(
        "p99 added latency over 50 ms from "
        + (f"{crossing} sessions" if crossing else "no level measured")
    )
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
