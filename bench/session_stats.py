"""What the session benchmark makes of its rounds: quantiles, the accounting of every frame
and event, the machine it ran on, and the plot."""

from __future__ import annotations

import json
import os
import platform
import subprocess
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from bench.session_rounds import RoundResult
from bench.session_runs import STAGES, SessionOutcome, is_kane


def quantiles(values_ms: Sequence[float]) -> dict[str, float | int | None]:
    """Count, p50, p95, p99 and max of `values_ms` (None when there are none)."""
    if not values_ms:
        return {"count": 0, "p50_ms": None, "p95_ms": None, "p99_ms": None, "max_ms": None}
    data = np.asarray(values_ms, dtype=float)
    p50, p95, p99 = np.percentile(data, [50, 95, 99])
    return {
        "count": len(data),
        "p50_ms": round(float(p50), 2),
        "p95_ms": round(float(p95), 2),
        "p99_ms": round(float(p99), 2),
        "max_ms": round(float(data.max()), 2),
    }


ANSWER_TIMEOUT_MS = 15000.0
"""How long the person waits for an answer; a turn left unanswered counts as this long."""


def voice_to_voice_ms(outcomes: Iterable[SessionOutcome]) -> list[float]:
    """Voice-to-voice latency of every turn, in ms; unanswered turns count as the wait."""
    return [
        turn.voice_to_voice_s * 1000 if turn.voice_to_voice_s is not None else ANSWER_TIMEOUT_MS
        for outcome in outcomes
        for turn in outcome.turns
    ]


def stage_offsets_ms(outcomes: Iterable[SessionOutcome]) -> dict[str, list[float]]:
    """For each moment of a turn (`STAGES`, then the first audio handed over), its time after
    the end of the person's speech, in ms, over every answered turn."""
    offsets: dict[str, list[float]] = {stage: [] for stage in (*STAGES, "first_audio")}
    for outcome in outcomes:
        stamps = {
            stage: np.asarray(times) / 1e9 for stage, times in outcome.stopwatch.stages.items()
        }
        ends = [t.speech_end_s for t in outcome.turns] + [float("inf")]
        for turn, next_end in zip(outcome.turns, ends[1:], strict=False):
            if turn.first_audio_s is None:
                continue
            for stage, times in stamps.items():
                after = times[(times >= turn.speech_end_s) & (times < next_end)]
                if len(after):
                    offsets[stage].append(float(after[0] - turn.speech_end_s) * 1000)
            offsets["first_audio"].append((turn.first_audio_s - turn.speech_end_s) * 1000)
    return offsets


def paired_differences_ms(
    kane: Iterable[SessionOutcome], bare: Iterable[SessionOutcome]
) -> list[float]:
    """KANE minus bare for the same turn of the same slot of the same round, in ms."""
    bare_turns = {(o.slot, i): t.voice_to_voice_s for o in bare for i, t in enumerate(o.turns)}
    differences = []
    for outcome in kane:
        for i, turn in enumerate(outcome.turns):
            other = bare_turns.get((outcome.slot, i))
            if turn.voice_to_voice_s is not None and other is not None:
                differences.append((turn.voice_to_voice_s - other) * 1000)
    return differences


@dataclass(frozen=True)
class RoundPair:
    """A round of one kind and the round of its base with the same index, turn by turn.

    Parameters:
        kind_ms: The kind's voice-to-voice latencies.
        base_ms: The base's.
        paired_ms: The kind's less the base's, for the same turn of the same slot.
    """

    kind_ms: list[float]
    base_ms: list[float]
    paired_ms: list[float]

    @classmethod
    def of(cls, kind: Sequence[SessionOutcome], base: Sequence[SessionOutcome]) -> RoundPair:
        """The pair of `kind`'s sessions and `base`'s, turn by turn."""
        return cls(
            kind_ms=voice_to_voice_ms(kind),
            base_ms=voice_to_voice_ms(base),
            paired_ms=paired_differences_ms(kind, base),
        )

    def to_json(self) -> dict[str, list[float]]:
        """The pair as a result keeps it (`round_pairs`), to a hundredth of a ms."""
        return {name: [round(ms, 2) for ms in values] for name, values in asdict(self).items()}


def mixed_round_pair(kind: str, halves: Sequence[dict[str, RoundResult]]) -> RoundPair:
    """The two mixed rounds of one index (`session_rounds.split_round` of each, the slots'
    kinds swapped between them) as one pair: every slot's turns as `kind` and as bare."""
    return RoundPair.of(
        [o for half in halves if kind in half for o in half[kind].outcomes],
        [o for half in halves if "bare" in half for o in half["bare"].outcomes],
    )


def round_intervals(
    pairs: Sequence[RoundPair], *, level: float = 0.95, resamples: int = 2000, seed: int = 0
) -> dict[str, list[float] | None]:
    """Intervals of the added p50 and p99 and the paired median, resampling whole rounds.

    The host's load moves from round to round, so the turns of one round are not
    independent; drawing rounds (with replacement) rather than turns keeps that in. With few
    rounds the interval is coarse, and it says nothing of hours other than the run's. The
    p99 of a few hundred turns is decided by a handful of them: its interval is the one to
    read a p99 target against.

    Args:
        pairs: The rounds, paired.
        level: How much of the resampled statistics the interval holds.
        resamples: How many draws.
        seed: The draws' seed (the same run gives the same interval).

    Returns:
        `p50_ms`, `p99_ms` and `paired_median_ms`, each [low, high] in ms; None with fewer
        than 2 rounds.
    """
    if len(pairs) < 2:
        return {"p50_ms": None, "p99_ms": None, "paired_median_ms": None}
    picks = np.random.default_rng(seed).integers(0, len(pairs), size=(resamples, len(pairs)))
    added, added_p99, paired = [], [], []
    for pick in picks:
        drawn = [pairs[i] for i in pick]
        kind = np.concatenate([p.kind_ms for p in drawn])
        base = np.concatenate([p.base_ms for p in drawn])
        kind_p50, kind_p99 = np.percentile(kind, [50, 99])
        base_p50, base_p99 = np.percentile(base, [50, 99])
        added.append(kind_p50 - base_p50)
        added_p99.append(kind_p99 - base_p99)
        differences = np.concatenate([p.paired_ms for p in drawn])
        paired.append(np.median(differences) if differences.size else np.nan)
    edges = [50 * (1 - level), 50 * (1 + level)]
    return {
        "p50_ms": [round(float(x), 1) for x in np.percentile(added, edges)],
        "p99_ms": [round(float(x), 1) for x in np.percentile(added_p99, edges)],
        "paired_median_ms": [round(float(x), 1) for x in np.nanpercentile(paired, edges)],
    }


@dataclass
class Messages:
    """The phone messages of one session, decoded, with when they were handed over."""

    envelopes: list[tuple[int, dict[str, Any]]] = field(default_factory=list)

    @classmethod
    def of(cls, outcome: SessionOutcome) -> Messages:
        """Decode the packets `outcome`'s session sent on the `kane` topic."""
        return cls([(ns, json.loads(p)) for ns, topic, p in outcome.sent if topic == "kane"])

    def gaps(self) -> int:
        """Messages missing from the envelopes' `seq` (1, 2, 3... without holes)."""
        seqs = [envelope["seq"] for _, envelope in self.envelopes]
        return (max(seqs) - len(set(seqs))) if seqs else 0

    def last_type(self) -> str | None:
        """The type of the last message, `session_ended` when the session closed cleanly."""
        return self.envelopes[-1][1]["type"] if self.envelopes else None

    def of_type(self, kind: str) -> list[tuple[int, dict[str, Any]]]:
        """The messages of one type, in order."""
        return [(ns, e) for ns, e in self.envelopes if e["type"] == kind]


def draft_latencies_ms(outcome: SessionOutcome, messages: Messages) -> tuple[list[float], int]:
    """Interim (or final) transcript leaving the STT -> its quest draft handed to the transport.

    Drafts reach the phone in the order the detector pushed them; each is paired with the
    detector's record by order and checked by its draft id.

    Returns:
        The latencies in ms, and how many drafts could not be paired.
    """
    sent = messages.of_type("quest_draft")
    watch = outcome.stopwatch
    latencies, unpaired = [], abs(len(sent) - len(watch.drafts))
    for (ns, envelope), (draft_id, carrier) in zip(sent, watch.drafts, strict=False):
        left_stt = watch.transcripts.get(carrier) if carrier is not None else None
        if envelope["data"]["draft_id"] != draft_id or left_stt is None:
            unpaired += 1
            continue
        latencies.append((ns - left_stt) / 1e6)
    return latencies, unpaired


def partial_latencies_ms(outcome: SessionOutcome, messages: Messages) -> tuple[list[float], int]:
    """Interim transcript leaving the STT -> its `partial_transcript` handed to the transport."""
    sent = messages.of_type("partial_transcript")
    interims = outcome.stopwatch.interims
    latencies, unpaired = [], abs(len(sent) - len(interims))
    for (ns, envelope), (text, left_stt) in zip(sent, interims, strict=False):
        if envelope["data"]["text"] != text:
            unpaired += 1
            continue
        latencies.append((ns - left_stt) / 1e6)
    return latencies, unpaired


def machine() -> dict[str, Any]:
    """What the benchmark ran on."""
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "nproc": os.cpu_count(),
        "affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "cpu_model": model,
        "python": platform.python_version(),
        "pipecat": metadata.version("pipecat-ai"),
        "platform": platform.platform(),
        **code_version(Path(__file__).resolve().parent.parent),
    }


def code_version(root: Path) -> dict[str, Any]:
    """The commit the benchmark ran from, and whether the tree had changes beside it.

    A run can then be told to belong to a set of runs decided for one commit's code. Both
    are None outside a git checkout (or without git).
    """
    try:
        head = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        changed = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return {"commit": None, "uncommitted_changes": None}
    return {"commit": head, "uncommitted_changes": bool(changed)}


def plot(levels: list[dict[str, Any]], path: Path, *, title: str) -> None:
    """Voice-to-voice p50/p99 of both pipelines, and KANE's added latency, against sessions."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = [level["sessions"] for level in levels]

    def series(kind: str, key: str, measure: str = "voice_to_voice") -> list[float]:
        return [level[kind][measure][key] or np.nan for level in levels]

    fig, (top, bottom) = plt.subplots(2, 1, figsize=(8, 9), sharex=True)
    top.set_yscale("log")
    bottom.set_yscale("symlog", linthresh=10)
    for kind, colour in (("bare", "tab:blue"), ("kane", "tab:orange")):
        top.plot(n, series(kind, "p50_ms"), "o-", color=colour, label=f"{kind} p50")
        top.plot(n, series(kind, "p99_ms"), "s--", color=colour, label=f"{kind} p99")
    top.set_ylabel("voice-to-voice latency (ms, log; unanswered = 15 s)")
    top.set_title(title)
    top.grid(True, alpha=0.3)
    top.legend()

    def added(key: str) -> list[float]:
        # A quantile that is the wait for an answer on either side says nothing of KANE.
        return [
            np.nan
            if max(level["bare"]["voice_to_voice"][key], level["kane"]["voice_to_voice"][key])
            >= ANSWER_TIMEOUT_MS
            else level["added_ms"][key]
            for level in levels
        ]

    bottom.plot(n, added("p50_ms"), "o-", color="tab:green", label="added p50")
    bottom.plot(n, added("p99_ms"), "s--", color="tab:red", label="added p99")
    paired = [level["added_ms"]["paired_median_ms"] for level in levels]
    bottom.plot(n, paired, "x-.", color="tab:olive", label="added, paired median")
    draft = series("kane", "p99_ms", "draft")
    bottom.plot(n, draft, "^:", color="tab:purple", label="draft p99")
    for y, label in ((10, "target p50 10 ms"), (20, "target p99 20 ms"), (50, "50 ms")):
        bottom.axhline(y, color="grey", linestyle=":", linewidth=1)
        bottom.annotate(label, (n[0], y), textcoords="offset points", xytext=(2, 2), fontsize=8)
    bottom.set_xlabel("concurrent sessions")
    bottom.set_ylabel("KANE over bare Pipecat (ms, symlog; none where capped at 15 s)")
    bottom.grid(True, alpha=0.3)
    bottom.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def machine_figures(rounds: Sequence[RoundResult]) -> dict[str, float]:
    """What the machine did while the people of `rounds` talked: the system's CPU (mean of
    the rounds'), the sessions' CPU per session, PostgreSQL's and the emulated cloud's (% of
    a core), and how often a second the kernel preempted the event loops' threads (each
    preemption delays every session on that loop)."""
    n = rounds[0].sessions
    talk = sum(r.talk_s for r in rounds)
    return {
        "system_cpu_pct": round(float(np.mean([r.system_cpu_pct for r in rounds])), 1),
        "cpu_pct_per_session": round(100 * sum(r.cpu_own_s for r in rounds) / talk / n, 2),
        "cpu_pct_postgres": round(100 * sum(r.cpu_postgres_s for r in rounds) / talk, 2),
        "cpu_pct_emulators": round(100 * sum(r.cpu_emulators_s for r in rounds) / talk, 2),
        "loop_preempted_per_s": round(sum(r.loop_preempted for r in rounds) / talk, 1),
    }


def summarize_kind(rounds: list[RoundResult]) -> dict[str, Any]:
    """One kind at one level, over its rounds."""
    outcomes = [o for r in rounds for o in r.outcomes]
    n = rounds[0].sessions
    talk = sum(r.talk_s for r in rounds)
    turns = sum(len(o.turns) for o in outcomes)
    answered = sum(1 for o in outcomes for t in o.turns if t.voice_to_voice_s is not None)
    summary: dict[str, Any] = {
        "rounds": len(rounds),
        "turns": turns,
        "answered": answered,
        "chat_requests": sum(r.chat_requests for r in rounds),
        "voice_to_voice": quantiles(voice_to_voice_ms(outcomes)),
        "input_lag": quantiles([t.input_lag_max_s * 1000 for o in outcomes for t in o.turns]),
        "input_backlog_peak_ms": max(r.input_backlog_peak for r in rounds) * 20,
        "setup_s_per_session": round(sum(r.setup_s for r in rounds) / len(rounds) / n, 3),
        **machine_figures(rounds),
        # The event loops' threads: their CPU per session, and how often a second they gave
        # up their core (idle, or waiting for the GIL); their preemptions are above.
        "loop_cpu_pct_per_session": round(100 * sum(r.loop_cpu_s for r in rounds) / talk / n, 2),
        "loop_waited_per_s": round(sum(r.loop_waited for r in rounds) / talk, 1),
        # The machine's 1-minute load average before and after each round: anything well
        # above what the benchmark itself explains is someone else's work on the cores.
        "loadavg_1m": [[round(a, 2), round(b, 2)] for a, b in (r.loadavg for r in rounds)],
        # Round by round, to tell a slow round's cause: the machine, PostgreSQL, the loops.
        "by_round": [{"index": r.index, **machine_figures([r])} for r in rounds],
        "rss_mb_per_session": round(max((r.rss_peak_mb - r.rss_before_mb) / n for r in rounds), 1),
        "rss_peak_mb": round(max(r.rss_peak_mb for r in rounds), 1),
        "tts_bytes": sum(o.stopwatch.tts_bytes for o in outcomes),
        "bot_bytes_played": sum(o.bot_bytes_out for o in outcomes),
        "speculations": sum(o.speculations for o in outcomes),
        "speculations_kept": sum(o.confirmed for o in outcomes),
    }
    summary["bot_audio_lost_bytes"] = max(0, summary["tts_bytes"] - summary["bot_bytes_played"])
    stages = stage_offsets_ms(outcomes)
    for name, q in (("stages_p50_ms", 50), ("stages_p99_ms", 99)):
        summary[name] = {
            stage: (round(float(np.percentile(values, q)), 1) if values else None)
            for stage, values in stages.items()
        }
    # Smart Turn judged the words unfinished: the turn ended on its 3 s of silence.
    summary["turns_ended_by_silence"] = sum(1 for ms in stages["turn_end"] if ms > 2000)
    by_text: dict[str, list[float]] = {}
    for outcome in outcomes:
        for turn in outcome.turns:
            v2v = turn.voice_to_voice_s
            by_text.setdefault(turn.text, []).append(
                v2v * 1000 if v2v is not None else ANSWER_TIMEOUT_MS
            )
    summary["voice_to_voice_p50_by_turn_ms"] = {
        text: round(float(np.median(values)), 1) for text, values in by_text.items()
    }
    if is_kane(rounds[0].kind):
        drafts, partials = [], []
        unpaired_drafts = unpaired_partials = gaps = unclosed = audio_lost = 0
        for outcome in outcomes:
            messages = Messages.of(outcome)
            latencies, unpaired = draft_latencies_ms(outcome, messages)
            drafts += latencies
            unpaired_drafts += unpaired
            latencies, unpaired = partial_latencies_ms(outcome, messages)
            partials += latencies
            unpaired_partials += unpaired
            gaps += messages.gaps()
            unclosed += messages.last_type() != "session_ended"
            audio_lost += abs((outcome.recorded_user_bytes or 0) - outcome.bytes_in)
        journals = [r.journal for r in rounds]
        summary |= {
            "draft": quantiles(drafts),
            "drafts_unpaired": unpaired_drafts,
            "partial_transcript": quantiles(partials),
            "partials_unpaired": unpaired_partials,
            "phone_messages": sum(len(Messages.of(o).envelopes) for o in outcomes),
            "phone_seq_gaps": gaps,
            "phone_unclosed_sessions": unclosed,
            "user_audio_lost_bytes": audio_lost,
            "journal": {
                "events_by_taps": sum(j["events_by_taps"] for j in journals),
                "rows_in_postgres": sum(j["rows_in_postgres"] for j in journals),
                "sessions_mismatched": sum(j["sessions_mismatched"] for j in journals),
                "spooled": sum(j["spooled"] for j in journals),
                "events_per_s": round(float(np.mean([j["events_per_s"] for j in journals])), 1),
                "backlog_peak": max(j["backlog_peak"] for j in journals),
            },
        }
    return summary


def added_ms(
    kind: dict[str, Any], base: dict[str, Any], paired: Sequence[float]
) -> dict[str, float | None]:
    """`kind`'s voice-to-voice quantiles less `base`'s, and the median of the paired
    differences; None where either side has none.

    Args:
        kind: The kind's `quantiles`.
        base: The base's.
        paired: The paired differences, in ms.
    """
    added: dict[str, float | None] = {
        key: (
            round(kind[key] - base[key], 2)
            if kind[key] is not None and base[key] is not None
            else None
        )
        for key in ("p50_ms", "p95_ms", "p99_ms")
    }
    added["paired_median_ms"] = round(float(np.median(paired)), 2) if paired else None
    return added


def compare(kane: dict[str, Any], bare: dict[str, Any], paired: list[float]) -> dict[str, Any]:
    """KANE's added latency (quantile differences) and ratios, and the paired median."""
    k, b = kane["voice_to_voice"], bare["voice_to_voice"]
    added = added_ms(k, b, paired)
    ratio = {
        key.replace("_ms", ""): (round(k[key] / b[key], 4) if k[key] and b[key] else None)
        for key in ("p50_ms", "p95_ms", "p99_ms")
    }
    by_stage = {
        f"added_{q}_by_stage_ms": {
            stage: round(value - bare[f"stages_{q}_ms"][stage], 1)
            for stage, value in kane[f"stages_{q}_ms"].items()
            if value is not None and bare[f"stages_{q}_ms"].get(stage) is not None
        }
        for q in ("p50", "p99")
    }
    return {"added_ms": added, "ratio": ratio, **by_stage}
