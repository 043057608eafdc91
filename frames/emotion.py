"""Frames of how the person sounds, and of how KANE should sound back."""

from __future__ import annotations

from dataclasses import dataclass, field

from pipecat.frames.frames import SystemFrame

from frames.tap_only import TapOnlyFrame


@dataclass
class EmotionFrame(TapOnlyFrame):
    """How the person sounded in a turn (or in part of a long one).

    For the phone and the record only: the stages' end stops it (`TapOnlyFrame`); what
    the LLM and the TTS are told goes as a note and a `ToneFrame`.

    Parameters:
        label: The strongest label: calm, excited, stressed, tired, frustrated, uncertain,
            neutral.
        scores: A score 0..1 for each label.
        valence: Unpleasant (-1) to pleasant (+1).
        arousal: Low (0) to high (1) energy.
        source: The analyzer that estimated it.
        features: What the estimate rests on (speaking rate, energy, sentiment...).
        changed: The label changed, or a score moved past the threshold, since the last one.
        within_turn: Estimated while the turn goes on.
    """

    label: str = "neutral"
    scores: dict[str, float] = field(default_factory=dict)
    valence: float = 0.0
    arousal: float = 0.0
    source: str = ""
    features: dict[str, float] = field(default_factory=dict)
    changed: bool = False
    within_turn: bool = False


@dataclass
class ToneFrame(SystemFrame):
    """How KANE's voice should sound from now on.

    A system frame, so it overtakes the turn's reply on its way to the voice instead of
    queueing behind the LLM's answer.

    Parameters:
        instructions: Free-text delivery instructions (OpenAI gpt-4o-mini-tts).
        description: Acting description (Hume Octave).
        speed: Speaking speed, 1.0 normal, where the voice supports it.
    """

    instructions: str = ""
    description: str = ""
    speed: float | None = None
