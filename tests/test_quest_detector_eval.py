"""Precision and recall of the partial-quest detector on people's morning talk.

Each utterance of `data/quest_utterances.jsonl` is fed as an STT would: interim transcripts
growing word by word, then the final, per turn. The drafts standing after the last final
(not retracted, from a final) are compared with the expected quests: a draft matches an
expected quest when the kinds agree and every keyword is in its title (case-insensitive).
Run with ``pytest -s`` to see the scores and every miss.
"""

import json
from dataclasses import dataclass, field
from pathlib import Path

from pipecat.frames.frames import InterimTranscriptionFrame, TranscriptionFrame
from pipecat.tests.utils import run_test

from frames.quests import QuestDraftFrame
from processors.partial_quests import PartialQuestDetector

DATA = Path(__file__).parent / "data" / "quest_utterances.jsonl"

# Set from measurement, a little below it. Measured when written: 0.974 / 0.974 on all 81;
# "dev" (69, the rules were written beside it) 1.0 / 1.0; "holdout" (12, written after the
# rules and never tuned on) 0.846 / 0.846. New talk will score nearer the holdout.
PRECISION_FLOOR = 0.9
RECALL_FLOOR = 0.9
INTERIM_FLOOR = 0.9


def utterances() -> list[dict]:
    return [json.loads(line) for line in DATA.read_text().splitlines() if line.strip()]


def as_heard(turns: list[str]) -> list:
    """Interims growing a word at a time, then the final, for each turn."""
    frames: list = []
    for turn in turns:
        words = turn.split()
        for n in range(1, len(words) + 1):
            frames.append(InterimTranscriptionFrame(" ".join(words[:n]), "person", "t"))
        frames.append(TranscriptionFrame(turn, "person", "t"))
    return frames


def matches(title: str, kind: str, expected: dict) -> bool:
    return kind == expected["kind"] and all(
        k.lower() in title.lower() for k in expected["keywords"]
    )


@dataclass
class Outcome:
    standing: list[QuestDraftFrame] = field(default_factory=list)
    draft_frames: int = 0
    interim_hits: int = 0
    interim_expected: int = 0


async def detect(utterance: dict) -> Outcome:
    down, _ = await run_test(PartialQuestDetector(), frames_to_send=as_heard(utterance["turns"]))
    outcome = Outcome()
    last: dict[str, QuestDraftFrame] = {}
    early: list[QuestDraftFrame] = []  # drafts standing before any final carried their words
    finals_seen: list[str] = []
    for frame in down:
        if isinstance(frame, QuestDraftFrame):
            outcome.draft_frames += 1
            last[frame.draft_id] = frame
            if not frame.retracted and not frame.from_final:
                early.append(frame)
        elif isinstance(frame, TranscriptionFrame):
            finals_seen.append(frame.text)
    outcome.standing = [f for f in last.values() if not f.retracted and f.from_final]
    for keywords in utterance.get("interim_before_final", []):
        outcome.interim_expected += 1
        if any(all(k.lower() in f.title.lower() for k in keywords) for f in early):
            outcome.interim_hits += 1
    return outcome


async def test_detector_precision_and_recall_on_the_evaluation_set():
    tp = predicted = expected_total = 0
    by_split: dict[str, list[int]] = {}  # split -> [true positives, predicted, expected]
    interim_hits = interim_expected = draft_frames = 0
    misses = []
    for utterance in utterances():
        outcome = await detect(utterance)
        expected = list(utterance["expect"])
        predicted += len(outcome.standing)
        expected_total += len(expected)
        unmatched = []
        for draft in outcome.standing:
            hit = next((e for e in expected if matches(draft.title, draft.kind, e)), None)
            if hit is None:
                unmatched.append(f"{draft.kind}:{draft.title!r}")
            else:
                expected.remove(hit)
                tp += 1
        if unmatched or expected:
            misses.append(f"  {utterance['id']}: extra {unmatched}, missed {expected}")
        counts = by_split.setdefault(utterance.get("split", "dev"), [0, 0, 0])
        counts[0] += len(outcome.standing) - len(unmatched)
        counts[1] += len(outcome.standing)
        counts[2] += len(utterance["expect"])
        interim_hits += outcome.interim_hits
        interim_expected += outcome.interim_expected
        draft_frames += outcome.draft_frames

    precision = tp / predicted if predicted else 1.0
    recall = tp / expected_total if expected_total else 1.0
    interim = interim_hits / interim_expected if interim_expected else 1.0
    report = (
        f"quest detector on {len(utterances())} utterances: precision {precision:.3f} "
        f"({tp}/{predicted}), recall {recall:.3f} ({tp}/{expected_total}), "
        f"drafts before the final {interim:.3f} ({interim_hits}/{interim_expected}), "
        f"{draft_frames} draft frames for {predicted} quests"
    )
    for split, (hits, said, meant) in sorted(by_split.items()):
        report += f"; {split}: P {hits / max(said, 1):.3f} R {hits / max(meant, 1):.3f}"
    print("\n" + report + ("\n" + "\n".join(misses) if misses else ""))
    assert precision >= PRECISION_FLOOR, report
    assert recall >= RECALL_FLOOR, report
    assert interim >= INTERIM_FLOOR, report
