"""The contract every emotion analyzer keeps, and what it estimates."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Protocol

Label = Literal["calm", "excited", "stressed", "tired", "frustrated", "uncertain", "neutral"]
LABELS: tuple[Label, ...] = (
    "calm",
    "excited",
    "stressed",
    "tired",
    "frustrated",
    "uncertain",
    "neutral",
)


class AnalyzerFailed(Exception):
    """An analyzer can no longer answer (for example its connection dropped)."""


@dataclass(frozen=True)
class TurnAudio:
    """One user turn as the emotion stage hands it to an analyzer.

    Parameters:
        pcm: The person's audio of the turn, 16-bit mono little-endian.
        sample_rate: Its rate (16 kHz in the pipeline).
        text: What they said (the turn's final transcripts, joined).
        stt_confidence: The STT's mean confidence over the turn, if it gave one.
        started_at: When the turn started (seconds, monotonic).
        ended_at: When it ended (seconds, monotonic).
    """

    pcm: bytes
    sample_rate: int
    text: str
    stt_confidence: float | None = None
    started_at: float = 0.0
    ended_at: float = 0.0


@dataclass(frozen=True)
class EmotionEstimate:
    """How the person sounded in one turn.

    Parameters:
        label: The strongest of the label set.
        scores: A score 0..1 for each label of the set.
        valence: Unpleasant (-1) to pleasant (+1).
        arousal: Low (0) to high (1) energy.
        source: The analyzer that made it ("local", "hume").
        features: What it was based on (energy, pitch, speaking rate, sentiment...).
    """

    label: Label
    scores: dict[str, float]
    valence: float
    arousal: float
    source: str
    features: dict[str, float] = field(default_factory=dict)


class EmotionAnalyzer(Protocol):
    """Estimates how the person feels, turn by turn.

    `feed` gets the person's audio as it arrives (a streaming analyzer sends it on at
    real-time pace; a per-turn analyzer may ignore it); `analyze_turn` answers at the end of
    each turn. An analyzer that can no longer answer raises `AnalyzerFailed`.
    """

    name: str

    async def start(self) -> None:
        """Connect or load what the analyzer needs."""
        ...

    def feed(self, pcm: bytes, sample_rate: int) -> None:
        """The person's audio as it arrives (never blocks)."""
        ...

    async def analyze_turn(self, turn: TurnAudio) -> EmotionEstimate:
        """The estimate for a turn that has just ended."""
        ...

    async def close(self) -> None:
        """Release connections and threads."""
        ...
