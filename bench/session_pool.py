"""Pool the rounds of several session benchmark runs: added latency over all their turns.

Run by hand, on results that keep their rounds (`round_pairs`, written since 2026-12-06)::

    uv run python -m bench.session_pool bench/results/a.json bench/results/b.json --sessions 24

One run's p99 at 24 sessions is decided by a handful of turns from a few rounds; pooling
runs reads it over more turns and more of the host's moments. The interval is drawn over
every pooled round, as one run's is (`session_stats.round_intervals`).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.session_stats import RoundPair, added_ms, quantiles, round_intervals

STUDIES = {
    "levels": "kane",
    "bare_against_itself": "bare again",
    "mixed": "kane",
    "mixed_bare_against_itself": "bare again",
    "sides": "kane",
    "sides_bare_against_itself": "bare again",
}
"""The studies of a result that compare a kind with bare, round by round, and the kind."""


def round_pairs(result: dict[str, Any], study: str, sessions: int) -> list[RoundPair]:
    """The rounds of `study` at `sessions` in one result; none when it has no such level.

    Raises:
        ValueError: The level is there but its rounds were not kept (an older result).
    """
    for level in result.get(study) or []:
        if level["sessions"] != sessions:
            continue
        if "round_pairs" not in level:
            raise ValueError(f"{study} at {sessions} sessions keeps no round_pairs")
        return [RoundPair(**pair) for pair in level["round_pairs"]]
    return []


def pool(pairs: Sequence[RoundPair]) -> dict[str, Any]:
    """Both kinds' voice-to-voice quantiles over every pooled turn, and the added latency.

    Args:
        pairs: The rounds of every run, paired as each run paired them.

    Returns:
        `rounds`, `kind` and `bare` quantiles, `added_ms` (p50, p95, p99 and the paired
        median) and `added_interval_95_ms` drawn over the rounds.
    """
    kind = quantiles([ms for pair in pairs for ms in pair.kind_ms])
    base = quantiles([ms for pair in pairs for ms in pair.base_ms])
    return {
        "rounds": len(pairs),
        "kind": kind,
        "bare": base,
        "added_ms": added_ms(kind, base, [ms for pair in pairs for ms in pair.paired_ms]),
        "added_interval_95_ms": round_intervals(pairs),
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Read the results, pool the chosen level and print it (or say what is missing)."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("results", type=Path, nargs="+", help="session benchmark JSON files")
    parser.add_argument("--sessions", type=int, default=24)
    parser.add_argument("--study", choices=list(STUDIES), default="levels")
    parser.add_argument("--output", type=Path, help="write the pooled result here as JSON")
    args = parser.parse_args(argv)
    pairs: list[RoundPair] = []
    for path in args.results:
        try:
            found = round_pairs(json.loads(path.read_text()), args.study, args.sessions)
        except (OSError, ValueError, KeyError, TypeError) as e:
            print(f"{path}: not pooled: {e}", file=sys.stderr)
            return 2
        print(f"{path}: {len(found)} rounds")
        pairs += found
    if not pairs:
        print(f"no rounds of {args.study} at {args.sessions} sessions", file=sys.stderr)
        return 2
    pooled = {"files": [str(p) for p in args.results], "sessions": args.sessions, **pool(pairs)}
    k, b, a = pooled["kind"], pooled["bare"], pooled["added_ms"]
    i = pooled["added_interval_95_ms"]
    print(
        f"{args.study} at {args.sessions} sessions, {pooled['rounds']} rounds,"
        f" {k['count']} turns a kind\n"
        f"  bare p50 {b['p50_ms']} p95 {b['p95_ms']} p99 {b['p99_ms']} ms;"
        f" {STUDIES[args.study]} p50 {k['p50_ms']} p95 {k['p95_ms']} p99 {k['p99_ms']} ms\n"
        f"  added p50 {a['p50_ms']:+.1f} p95 {a['p95_ms']:+.1f} p99 {a['p99_ms']:+.1f}"
        f" (paired median {a['paired_median_ms']:+.1f}); 95% over rounds p50 {i['p50_ms']},"
        f" p99 {i['p99_ms']}, paired {i['paired_median_ms']}"
    )
    if args.output:
        args.output.write_text(json.dumps(pooled, indent=2) + "\n")
        print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
