"""The local emotion analyzer: prosody plus text sentiment, by readable rules, no network.

Per turn it measures the voice (`emotion.prosody`: loudness, pitch level and spread, speaking
rate over speaking time, pauses) and reads the words (`emotion.sentiment`: VADER plus cue
phrases), turns both into cues between 0 and 1, and scores each label as a weighted sum of
cues (`RULES`), softmaxed into scores that sum to 1. Thresholds live in `LocalParams`.

Pitch and loudness are judged against fixed references (a lowish adult voice at a typical
microphone level), not against the speaker's own baseline, so a high-voiced speaker reads a
little more aroused than they are.

Example:
    analyzer = LocalEmotionAnalyzer()
    await analyzer.start()
    estimate = await analyzer.analyze_turn(turn)  # estimate.label, .scores, .valence
"""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass

import numpy as np

from emotion import sentiment
from emotion.analyzer import LABELS, EmotionEstimate, Label, TurnAudio
from emotion.prosody import Prosody, measure
from emotion.sentiment import TextCues
from services.process_threads import TURN_END, process_thread


@dataclass(frozen=True)
class LocalParams:
    """Where the local analyzer's cues start and saturate.

    Parameters:
        quiet_db: Speech this quiet (RMS dBFS) is low energy (cue 0).
        loud_db: Speech this loud is high energy (cue 1).
        pitch_ref_hz: A middle pitch; the pitch-level cue is 0.5 here.
        pitch_span_st: Semitones from the reference to a pitch-level cue of 0 or 1.
        flat_var_st: Pitch spread (semitone std) at or under which speech sounds flat.
        lively_var_st: Pitch spread at which speech sounds fully lively.
        slow_wps: Words per second of speaking time at or under which speech is slow.
        fast_wps: Words per second at or over which speech is fast.
        rising_st: Rise of the last voiced stretch (semitones) that counts fully as rising.
        pausy_ratio: Share of the speaking span in pauses that counts fully as hesitant.
        lively_arousal: Arousal where the high-arousal cue starts.
        high_arousal: Arousal where it is full (excitement needs it).
        min_speech_s: Under this much speech, the rate is not judged.
        temperature: Softmax temperature over the rule sums (lower = more decisive).
        text_valence: Weight of the words in valence (the rest is prosody).
    """

    quiet_db: float = -36.0
    loud_db: float = -14.0
    pitch_ref_hz: float = 110.0
    pitch_span_st: float = 6.0
    flat_var_st: float = 1.0
    lively_var_st: float = 4.0
    slow_wps: float = 3.0
    fast_wps: float = 5.5
    rising_st: float = 2.0
    pausy_ratio: float = 0.25
    lively_arousal: float = 0.4
    high_arousal: float = 0.65
    min_speech_s: float = 0.4
    temperature: float = 0.25
    text_valence: float = 0.8


# label -> (bias, {cue: weight}). Cues are 0..1; see `_cues` for what each one measures.
RULES: dict[Label, tuple[float, dict[str, float]]] = {
    "calm": (-0.1, {"calm_words": 1.0, "positive": 0.6, "low_arousal": 0.4, "high_arousal": -0.4,
                    "negative": -0.8, "hedges": -0.4, "stress_words": -0.6, "tired_words": -0.6,
                    "fast": -0.4}),
    "excited": (-0.3, {"positive": 0.8, "high_arousal": 1.0, "exclaim": 0.3, "excite_words": 0.5,
                       "negative": -1.0, "tired_words": -0.6}),
    "stressed": (-0.1, {"stress_words": 1.1, "fast": 0.6, "pitch_high": 0.3, "negative": 0.3,
                        "positive": -0.4}),
    "tired": (-0.2, {"tired_words": 1.3, "slow": 0.6, "low_energy": 0.5, "flat": 0.3,
                     "positive": -0.4, "fast": -0.5}),
    "frustrated": (-0.2, {"frustration_words": 0.9, "negative": 0.9, "loud_negative": 0.6,
                          "positive": -0.8, "tired_words": -0.3}),
    "uncertain": (-0.1, {"hedges": 1.4, "question": 0.4, "rising": 0.3, "pausy": 0.3}),
    "neutral": (0.35, {}),
}  # fmt: skip


class LocalEmotionAnalyzer:
    """Estimates emotion from a turn's prosody and words, on this machine.

    Per-turn only: `feed` is ignored and `analyze_turn` does the work on the process's
    turn-end thread (about 6 ms for a 5 s turn), after the Smart Turn runs asked for before
    it (`services.process_threads.TURN_END`). An estimate wants the GIL for parts of its few
    milliseconds (numpy on short arrays), and every thread that wants it takes turns with the
    event loop: on one thread, estimates of turns that end together queue, the loop shares
    the GIL with one at most, and no estimate takes the core from a Smart Turn run a turn is
    waiting for; the tone is wanted when the answer is spoken, most of a second later. It
    never fails for want of a connection, so it is the fallback behind remote analyzers.
    """

    name = "local"

    def __init__(self, *, params: LocalParams | None = None) -> None:
        self._params = params or LocalParams()

    def __str__(self) -> str:
        return "LocalEmotionAnalyzer"

    async def start(self) -> None:
        """Load VADER's lexicon (off the event loop)."""
        await asyncio.to_thread(sentiment.load)

    def feed(self, pcm: bytes, sample_rate: int) -> None:
        """Ignored: the analysis runs on the whole turn."""

    async def analyze_turn(self, turn: TurnAudio) -> EmotionEstimate:
        """Estimate the turn's emotion (CPU work on the process's turn-end thread)."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(process_thread(TURN_END), self.estimate, turn)

    async def close(self) -> None:
        """Nothing to release."""

    def estimate(self, turn: TurnAudio) -> EmotionEstimate:
        """Estimate synchronously (blocks for the prosody and sentiment work).

        Args:
            turn: The turn's audio and words.

        Returns:
            The estimate, with the measured features.
        """
        usable = len(turn.pcm) - len(turn.pcm) % 2
        samples = np.frombuffer(turn.pcm[:usable], dtype="<i2")
        prosody = measure(samples, turn.sample_rate)
        words = TextCues.read(turn.text)
        return self.judge(prosody, words)

    def judge(self, prosody: Prosody, words: TextCues) -> EmotionEstimate:
        """Map measured prosody and text cues to an estimate by the rules.

        Args:
            prosody: The turn's voice measurements.
            words: The turn's text cues.

        Returns:
            The estimate.
        """
        p = self._params
        wps = words.words / prosody.speech_s if prosody.speech_s >= p.min_speech_s else 0.0
        cues = _cues(prosody, words, wps, p)
        totals = {label: bias + sum(w * cues[c] for c, w in weights.items())
                  for label, (bias, weights) in RULES.items()}  # fmt: skip
        top = max(totals.values())
        exp = {label: math.exp((total - top) / p.temperature) for label, total in totals.items()}
        norm = sum(exp.values())
        scores: dict[str, float] = {label: round(exp[label] / norm, 4) for label in LABELS}
        label = max(LABELS, key=lambda name: scores[name])

        # Lively intonation sounds pleasant; slow, quiet, flat speech sounds low.
        voice_valence = (cues["lively"] - 0.3) - 0.6 * cues["slow"] * cues["low_energy"]
        # The cue phrases carry valence VADER misses ("incredible", "behind", "exhausted").
        word_valence = (
            words.compound
            + 0.3 * cues["excite_words"]
            + 0.2 * cues["calm_words"]
            - 0.3 * max(cues["stress_words"], cues["tired_words"], cues["frustration_words"])
        )
        valence = p.text_valence * word_valence + (1 - p.text_valence) * voice_valence
        return EmotionEstimate(
            label=label,
            scores=scores,
            valence=round(_clip(valence, -1.0, 1.0), 4),
            arousal=round(cues["arousal"], 4),
            source=self.name,
            features={
                "energy_db": round(prosody.energy_db, 2),
                "pitch_hz": round(prosody.pitch_hz, 1),
                "pitch_var": round(prosody.pitch_var, 3),
                "words_per_s": round(wps, 3),
                "pause_ratio": round(prosody.pause_ratio, 3),
                "sentiment": words.compound,
                "pitch_rise": round(prosody.pitch_rise, 3),
                "pause_count": float(prosody.pause_count),
                "speech_s": round(prosody.speech_s, 3),
            },
        )


def _cues(prosody: Prosody, words: TextCues, wps: float, p: LocalParams) -> dict[str, float]:
    """Every cue the rules weigh, each 0..1 (0.5 where the voice says nothing)."""
    heard = prosody.speech_s > 0.0
    pitched = prosody.pitch_hz > 0.0
    timed = wps > 0.0
    energy = _ramp(prosody.energy_db, p.quiet_db, p.loud_db) if heard else 0.5
    if pitched:
        semitones = 12.0 * math.log2(prosody.pitch_hz / p.pitch_ref_hz)
        pitch_high = _clip(0.5 + semitones / (2 * p.pitch_span_st), 0.0, 1.0)
        lively = _ramp(prosody.pitch_var, p.flat_var_st, p.lively_var_st)
    else:
        pitch_high, lively = 0.5, 0.3
    rate = _ramp(wps, p.slow_wps, p.fast_wps) if timed else 0.5
    arousal = 0.35 * energy + 0.25 * rate + 0.2 * pitch_high + 0.2 * lively
    return {
        "energy": energy,
        "low_energy": 1.0 - energy,
        "pitch_high": pitch_high,
        "lively": lively,
        "flat": 1.0 - _ramp(prosody.pitch_var, 0.5 * p.flat_var_st, 1.5 * p.flat_var_st)
        if pitched
        else 0.0,
        "slow": _ramp(-wps, -p.slow_wps, -(p.slow_wps - 1.0)) if timed else 0.0,
        "fast": _ramp(wps, p.fast_wps - 1.5, p.fast_wps) if timed else 0.0,
        "arousal": arousal,
        "low_arousal": 1.0 - arousal,
        "high_arousal": _ramp(arousal, p.lively_arousal, p.high_arousal),
        "rising": _ramp(prosody.pitch_rise, 0.0, p.rising_st) if pitched else 0.0,
        "pausy": _ramp(prosody.pause_ratio, 0.0, p.pausy_ratio),
        "positive": max(words.compound, 0.0),
        "negative": max(-words.compound, 0.0),
        "loud_negative": max(-words.compound, 0.0) * energy,
        "hedges": words.hedges,
        "question": words.question,
        "exclaim": words.exclaim,
        "stress_words": words.stress,
        "tired_words": words.tired,
        "frustration_words": words.frustration,
        "excite_words": words.excitement,
        "calm_words": words.calm,
    }


def _ramp(value: float, start: float, end: float) -> float:
    """0 at `start`, 1 at `end`, linear between and clipped outside."""
    return _clip((value - start) / (end - start), 0.0, 1.0)


def _clip(value: float, low: float, high: float) -> float:
    return min(max(value, low), high)
