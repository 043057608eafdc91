"""What a turn's words say about the mood: VADER sentiment plus a few cue-phrase lists.

VADER (``vadersentiment``) ships its lexicon in the wheel, so this works offline; the lexicon
loads on first use (about 20 ms), not at import.

Example:
    words = TextCues.read("Maybe, I guess, I'm not sure what to do")
    words.compound, words.hedges
"""

from __future__ import annotations

import math
import re
import threading
from dataclasses import dataclass
from typing import Any

# Cue phrases, matched on word boundaries in the lowercased text, apostrophes dropped.
HEDGES = (
    "maybe", "i guess", "not sure", "um", "umm", "uh", "uhm", "hmm", "erm", "i dont know",
    "dunno", "perhaps", "probably", "i suppose", "kind of", "sort of", "no idea", "i think",
    "might", "or something", "not certain", "unsure",
)  # fmt: skip
STRESS = (
    "so much", "too much", "behind", "deadline", "deadlines", "overwhelmed", "overwhelming",
    "stressed", "stress", "pressure", "in a rush", "rushing", "hurry", "no time", "running out",
    "late", "panic", "panicking", "worried", "anxious", "cant keep up", "at once", "urgent",
    "asap", "swamped", "drowning",
)  # fmt: skip
TIRED = (
    "tired", "exhausted", "sleepy", "barely slept", "didnt sleep", "no energy", "drained",
    "worn out", "fatigued", "knackered", "wiped out", "so slow", "low energy", "yawn", "nap",
)  # fmt: skip
FRUSTRATION = (
    "hate", "stupid", "annoying", "annoyed", "again", "broke", "broken", "sick of", "fed up",
    "ridiculous", "useless", "damn", "keeps", "still not", "frustrated", "frustrating",
    "why does", "why is", "nothing works", "waste",
)  # fmt: skip
EXCITEMENT = (
    "amazing", "awesome", "cant wait", "finally", "lets go", "shipped", "thrilled", "excited",
    "fantastic", "incredible", "wow", "yes", "love it",
)  # fmt: skip
CALM = (
    "easy", "relaxed", "calm", "slowly", "steady", "peaceful", "no rush", "quiet", "gently",
    "one thing at a time", "fine", "simple", "take it easy",
)  # fmt: skip


def _pattern(phrases: tuple[str, ...]) -> re.Pattern[str]:
    alternatives = "|".join(re.escape(p) for p in sorted(phrases, key=len, reverse=True))
    return re.compile(rf"\b(?:{alternatives})\b")


_PATTERNS = {
    name: _pattern(phrases)
    for name, phrases in (
        ("hedges", HEDGES),
        ("stress", STRESS),
        ("tired", TIRED),
        ("frustration", FRUSTRATION),
        ("excitement", EXCITEMENT),
        ("calm", CALM),
    )
}
_WORD = re.compile(r"[A-Za-z0-9']+")


def saturate(count: float) -> float:
    """Map a count of cues to 0..1: one cue ~0.63, two ~0.86, three ~0.95."""
    return 1.0 - math.exp(-count)


@dataclass(frozen=True)
class TextCues:
    """What the words of a turn suggest.

    Parameters:
        words: Number of words.
        compound: VADER's compound sentiment, -1..1.
        positive: VADER's positive share, 0..1.
        negative: VADER's negative share, 0..1.
        hedges: Hedge phrases ("maybe", "not sure", "um"), 0..1 (saturating count).
        stress: Pressure phrases ("so much", "deadline", "behind"), 0..1.
        tired: Fatigue phrases ("tired", "barely slept"), 0..1.
        frustration: Annoyance phrases ("hate", "again", "stupid"), 0..1.
        excitement: Enthusiasm phrases ("amazing", "can't wait"), 0..1.
        calm: Ease phrases ("take it easy", "no rush"), 0..1.
        question: 1 if the turn ends with a question mark, else 0.
        exclaim: Exclamation marks, 0..1.
    """

    words: int
    compound: float
    positive: float
    negative: float
    hedges: float
    stress: float
    tired: float
    frustration: float
    excitement: float
    calm: float
    question: float
    exclaim: float

    @classmethod
    def read(cls, text: str) -> TextCues:
        """Read the cues of one turn's text (blocks ~0.1 ms; loads VADER on first use)."""
        scores = _vader().polarity_scores(text) if text.strip() else {}
        plain = text.lower().replace("'", "").replace("\u2019", "")
        hits = {name: saturate(len(p.findall(plain))) for name, p in _PATTERNS.items()}
        return cls(
            words=len(_WORD.findall(text)),
            compound=float(scores.get("compound", 0.0)),
            positive=float(scores.get("pos", 0.0)),
            negative=float(scores.get("neg", 0.0)),
            question=1.0 if text.rstrip().endswith("?") else 0.0,
            exclaim=saturate(text.count("!")),
            **hits,
        )


_analyzer: Any = None
_analyzer_lock = threading.Lock()


def _vader() -> Any:
    """The process-wide VADER analyzer (its lexicon is read-only once loaded)."""
    global _analyzer
    with _analyzer_lock:
        if _analyzer is None:
            from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

            _analyzer = SentimentIntensityAnalyzer()
        return _analyzer


def load() -> None:
    """Load VADER's lexicon now rather than on the first turn."""
    _vader()
