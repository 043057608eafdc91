"""The session benchmark's interval over rounds, its mixed rounds, and runs pooled."""

from __future__ import annotations

import argparse
import dataclasses
import json
import subprocess

import pytest

from bench import session_pool
from bench.loopback_transport import TurnTiming
from bench.session_pool import pool, round_pairs
from bench.session_rounds import RoundResult, split_round
from bench.session_runs import SessionOutcome, Stopwatch, mixed, slot_kind
from bench.session_shards import ShardedRounds, split
from bench.session_stats import (
    RoundPair,
    code_version,
    machine_figures,
    mixed_round_pair,
    round_intervals,
    summarize_kind,
)


def pair(kind: list[float], base: list[float]) -> RoundPair:
    return RoundPair(kind, base, [k - b for k, b in zip(kind, base, strict=True)])


def test_a_kind_slower_by_the_same_in_every_round_has_a_point_interval():
    pairs = [pair([1000.0 + x + 10, 1200.0 + x + 10], [1000.0 + x, 1200.0 + x]) for x in range(6)]
    assert round_intervals(pairs) == {
        "p50_ms": [10.0, 10.0],
        "p99_ms": [10.0, 10.0],
        "paired_median_ms": [10.0, 10.0],
    }


def test_rounds_that_disagree_widen_the_interval_to_what_they_say():
    quiet = [pair([1000.0 + d for d in (0, 1, 2)], [1000.0, 1001.0, 1002.0]) for _ in range(3)]
    busy = [pair([1040.0 + d for d in (0, 1, 2)], [1000.0, 1001.0, 1002.0]) for _ in range(3)]
    intervals = round_intervals(quiet + busy)
    low, high = intervals["paired_median_ms"]
    assert low == 0.0 and high == 40.0
    low, high = intervals["p50_ms"]
    assert 0.0 <= low < 20.0 < high <= 40.0


def test_slow_turns_in_one_round_widen_the_p99_interval_not_the_p50_one():
    turns = [1000.0 + d for d in range(100)]
    calm = [pair(turns, turns) for _ in range(5)]
    stalled = pair(turns[:-3] + [1400.0] * 3, turns)  # three turns ~300 ms late, one round
    intervals = round_intervals([*calm, stalled])
    assert intervals["p50_ms"] == [0.0, 0.0]
    low, high = intervals["p99_ms"]
    assert low == 0.0  # drawn without the stalled round
    assert high > 200.0  # drawn with it often enough, its slow turns are the p99


def test_one_round_gives_no_interval():
    assert round_intervals([pair([1.0], [0.0])]) == {
        "p50_ms": None,
        "p99_ms": None,
        "paired_median_ms": None,
    }


def outcome(kind: str, slot: int, v2v_s: list[float]) -> SessionOutcome:
    turns = [TurnTiming(text="t", speech_end_s=10.0, first_audio_s=10.0 + v) for v in v2v_s]
    return SessionOutcome(kind, slot, f"s{slot}", turns, Stopwatch(), [], 0, 0)


def mixed_round(kind: str, v2v_by_slot: list[list[float]]) -> RoundResult:
    """A round of `kind` (mixed) whose slot s answered after `v2v_by_slot[s]` seconds."""
    return RoundResult(
        kind=kind,
        sessions=len(v2v_by_slot),
        index=0,
        outcomes=[outcome(slot_kind(kind, s), s, v) for s, v in enumerate(v2v_by_slot)],
        setup_s=1.0,
        talk_s=10.0,
        teardown_s=1.0,
        cpu_own_s=4.0,
        cpu_postgres_s=0.0,
        cpu_emulators_s=0.0,
        system_cpu_pct=50.0,
        rss_before_mb=100.0,
        rss_peak_mb=120.0,
        input_backlog_peak=0,
        chat_requests=8,
        loadavg=(1.0, 1.0),
        journal={"events_by_taps": 7},
    )


def test_a_mixed_round_gives_its_slots_the_kinds_in_turn():
    assert [slot_kind(mixed("bare", "kane"), s) for s in range(5)] == [
        "bare",
        "kane",
        "bare",
        "kane",
        "bare",
    ]
    assert [slot_kind(mixed("kane", "bare"), s) for s in range(2)] == ["kane", "bare"]
    assert slot_kind("kane", 3) == "kane"


def test_a_mixed_round_splits_into_its_kinds_each_with_the_whole_rounds_machine():
    parts = split_round(mixed_round(mixed("bare", "kane"), [[1.0], [1.1], [1.2], [1.3]]))
    assert sorted(parts) == ["bare", "kane"]
    assert [o.slot for o in parts["bare"].outcomes] == [0, 2]
    assert [o.slot for o in parts["kane"].outcomes] == [1, 3]
    assert parts["kane"].journal == {"events_by_taps": 7}  # KANE's sessions' journal
    assert parts["bare"].journal == {}
    for part in parts.values():  # the machine's figures are the mix's
        assert (part.sessions, part.cpu_own_s, part.talk_s) == (4, 4.0, 10.0)


def test_a_mixed_pair_compares_each_slot_as_kane_with_itself_as_bare():
    # Slots 0 and 1 take 1.0 s and 2.0 s whatever they run; KANE adds 5 ms to each turn.
    first = split_round(mixed_round(mixed("bare", "kane"), [[1.0, 1.0], [2.005, 2.005]]))
    second = split_round(mixed_round(mixed("kane", "bare"), [[1.005, 1.005], [2.0, 2.0]]))
    pair = mixed_round_pair("kane", [first, second])
    assert sorted(round(ms, 6) for ms in pair.kind_ms) == [1005.0, 1005.0, 2005.0, 2005.0]
    assert sorted(round(ms, 6) for ms in pair.base_ms) == [1000.0, 1000.0, 2000.0, 2000.0]
    assert [round(ms, 6) for ms in pair.paired_ms] == [5.0] * 4


class AnsweringShards(ShardedRounds):
    """Shards that answer a round at once: shard i's part is its slots as the kind it was
    given, slot s answering after 1 + s/1000 s (+ 5 ms as KANE), its CPU i + 1 s, and 10
    journal events from a KANE shard."""

    def __init__(self, processes: int):
        super().__init__(argparse.Namespace(), [], None, None, processes)  # type: ignore[arg-type]
        self.given: list[list[str]] = []

    async def _run_shares(self, kinds, n, index, turns, unfinished):
        self.given.append(kinds)
        parts = []
        for shard, (kind, slots) in enumerate(zip(kinds, split(n, self._count), strict=True)):
            added = 0.005 if kind == "kane" else 0.0
            outcomes = [outcome(kind, s, [1 + s / 1000 + added]) for s in slots]
            part = mixed_round(kind, [[1.0]] * len(slots))
            journal = {"accepted": 10, "events_by_taps": 10} if kind == "kane" else {}
            parts.append(
                dataclasses.replace(
                    part, sessions=n, outcomes=outcomes, cpu_own_s=shard + 1.0, journal=journal
                )
            )
        return parts, 8, (1.0, 1.0)


async def test_side_by_side_rounds_give_each_process_one_kind_and_its_own_cpu():
    shards = AnsweringShards(processes=4)
    first = await shards.side_by_side(("bare", "kane"), 8, 0, 1)
    assert shards.given == [["bare", "kane", "bare", "kane"]]
    assert [o.slot for o in first["bare"].outcomes] == [0, 1, 4, 5]
    assert [o.slot for o in first["kane"].outcomes] == [2, 3, 6, 7]
    # Each kind's CPU is its own processes' (shards 1 and 3: 2 + 4 s), over its 4 sessions.
    assert (first["kane"].sessions, first["kane"].cpu_own_s) == (4, 6.0)
    assert machine_figures([first["kane"]])["cpu_pct_per_session"] == 15.0
    assert first["kane"].journal["accepted"] == 20 and first["bare"].journal == {}
    # The other way round, every slot has said its turn as each kind: KANE's 5 ms shows.
    second = await shards.side_by_side(("kane", "bare"), 8, 0, 1)
    pair = mixed_round_pair("kane", [first, second])
    assert [round(ms, 6) for ms in pair.paired_ms] == [5.0] * 8


async def test_side_by_side_rounds_refuse_processes_the_kinds_cannot_share():
    with pytest.raises(ValueError, match="even number of processes"):
        await AnsweringShards(processes=3).side_by_side(("bare", "kane"), 6, 0, 1)
    with pytest.raises(ValueError, match="a session for each"):
        await AnsweringShards(processes=2).side_by_side(("bare", "kane"), 1, 0, 1)


def result_with(*levels: tuple[int, list[RoundPair]]) -> dict[str, object]:
    """A benchmark result keeping the rounds of its KANE-against-bare levels."""
    return {
        "levels": [
            {"sessions": n, "round_pairs": [p.to_json() for p in pairs]} for n, pairs in levels
        ]
    }


def test_a_kept_round_reads_back_as_it_was_to_a_hundredth_of_a_ms():
    kept = pair([1000.004, 1200.5], [990.0, 1201.0]).to_json()
    assert RoundPair(**json.loads(json.dumps(kept))) == RoundPair(
        [1000.0, 1200.5], [990.0, 1201.0], [10.0, -0.5]
    )


def test_runs_pooled_read_their_rounds_together_at_the_level_asked():
    turns = [1000.0 + d for d in range(100)]
    first = result_with((8, [pair(turns, turns)]), (24, [pair(turns, turns)] * 2))
    # The second run's rounds were 30 ms slower for KANE in every turn.
    second = result_with((24, [pair([t + 30 for t in turns], turns)] * 2))
    pairs = round_pairs(first, "levels", 24) + round_pairs(second, "levels", 24)
    pooled = pool(pairs)
    assert pooled["rounds"] == 4
    assert pooled["kind"]["count"] == pooled["bare"]["count"] == 400
    assert pooled["added_ms"]["paired_median_ms"] == 15.0  # half the turns +0, half +30
    assert pooled["added_interval_95_ms"]["paired_median_ms"] == [0.0, 30.0]
    # Either run alone says something else.
    assert pool(round_pairs(first, "levels", 24))["added_ms"]["p50_ms"] == 0.0
    assert pool(round_pairs(second, "levels", 24))["added_ms"]["p50_ms"] == 30.0
    assert round_pairs(second, "levels", 8) == []
    assert round_pairs(second, "mixed", 24) == []


def test_a_result_that_did_not_keep_its_rounds_is_refused(tmp_path, capsys):
    old = tmp_path / "old.json"
    old.write_text(json.dumps({"levels": [{"sessions": 24, "added_ms": {}}]}))
    new = tmp_path / "new.json"
    new.write_text(json.dumps(result_with((24, [pair([1010.0], [1000.0])] * 2))))
    assert session_pool.main([str(new), str(old)]) == 2
    assert "old.json: not pooled: levels at 24 sessions keeps no round_pairs" in (
        capsys.readouterr().err
    )
    output = tmp_path / "pooled.json"
    assert session_pool.main([str(new), str(new), "--output", str(output)]) == 0
    pooled = json.loads(output.read_text())
    assert pooled["rounds"] == 4 and pooled["added_ms"]["p50_ms"] == 10.0


def test_a_kinds_summary_keeps_each_rounds_machine_to_tell_a_slow_round():
    rounds = [mixed_round("bare", [[1.0], [1.1]]), mixed_round("bare", [[1.5], [1.6]])]
    rounds[1] = dataclasses.replace(rounds[1], index=1, system_cpu_pct=90.0, cpu_postgres_s=2.0)
    summary = summarize_kind(rounds)
    assert summary["by_round"] == [
        {
            "index": 0,
            "system_cpu_pct": 50.0,
            "cpu_pct_per_session": 20.0,  # 4 s of CPU over 10 s, two sessions
            "cpu_pct_postgres": 0.0,
            "cpu_pct_emulators": 0.0,
            "loop_preempted_per_s": 0.0,
        },
        {
            "index": 1,
            "system_cpu_pct": 90.0,
            "cpu_pct_per_session": 20.0,
            "cpu_pct_postgres": 20.0,
            "cpu_pct_emulators": 0.0,
            "loop_preempted_per_s": 0.0,
        },
    ]


def test_a_run_records_the_commit_it_ran_from_and_whether_its_tree_had_changes(tmp_path):
    def git(*args: str) -> str:
        done = subprocess.run(["git", "-C", str(tmp_path), *args], capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()

    assert code_version(tmp_path) == {"commit": None, "uncommitted_changes": None}
    git("init", "-q")
    (tmp_path / "bot.py").write_text("a = 1\n")
    git("add", "bot.py")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "one")
    assert code_version(tmp_path) == {
        "commit": git("rev-parse", "HEAD"),
        "uncommitted_changes": False,
    }
    (tmp_path / "bot.py").write_text("a = 2\n")
    assert code_version(tmp_path)["uncommitted_changes"] is True
