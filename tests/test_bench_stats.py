"""The session benchmark's interval over rounds."""

from __future__ import annotations

from bench.session_stats import RoundPair, round_intervals


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
