"""Synthetic, speech-like audio: tone bursts whose length follows the text."""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

import numpy as np


@dataclass
class SynthResult:
    """Audio made for a text, with where each word sits in it.

    Parameters:
        pcm: 16-bit signed little-endian mono samples.
        sample_rate: Samples per second of ``pcm``.
        words: ``(word, start_s, end_s)`` for every word of the text.
    """

    pcm: bytes
    sample_rate: int
    words: list[tuple[str, float, float]]

    @property
    def duration_s(self) -> float:
        """Length of the audio in seconds."""
        return len(self.pcm) / 2 / self.sample_rate


def speech_like(
    text: str,
    sample_rate: int = 24_000,
    *,
    ms_per_char: float = 60.0,
    speed: float = 1.0,
    amplitude: float = 0.3,
) -> SynthResult:
    """Render a text as audible tone bursts, about ``ms_per_char`` per character.

    Each word becomes a voiced burst (a fundamental plus two harmonics, with a
    pitch contour and an attack/decay envelope) and each space a short pause, so
    the sound has the rhythm of speech and trips energy-based VADs. The output is
    deterministic for a given text.

    Args:
        text: What is "said".
        sample_rate: Output sample rate in Hz.
        ms_per_char: Milliseconds of audio per character at speed 1.0.
        speed: Playback speed; 2.0 halves the length.
        amplitude: Peak level, 0..1 of full scale.

    Returns:
        The audio and word timings.
    """
    char_s = ms_per_char / 1000.0 / max(speed, 0.05)
    rng = np.random.default_rng(zlib.crc32(text.encode()))
    parts: list[np.ndarray] = []
    words: list[tuple[str, float, float]] = []
    cursor = 0
    for index, word in enumerate(text.split()):
        if index:
            gap = int(char_s * sample_rate)
            parts.append(np.zeros(gap, dtype=np.float32))
            cursor += gap
        n = max(int(len(word) * char_s * sample_rate), int(0.05 * sample_rate))
        parts.append(_burst(n, sample_rate, float(rng.uniform(110.0, 230.0)), amplitude))
        words.append((word, cursor / sample_rate, (cursor + n) / sample_rate))
        cursor += n
    if not parts:
        return SynthResult(pcm=b"", sample_rate=sample_rate, words=[])
    samples = np.concatenate(parts)
    pcm = (np.clip(samples, -1.0, 1.0) * 32767).astype("<i2").tobytes()
    return SynthResult(pcm=pcm, sample_rate=sample_rate, words=words)


def _burst(n: int, sample_rate: int, f0: float, amplitude: float) -> np.ndarray:
    t = np.arange(n, dtype=np.float32) / sample_rate
    # A gentle rise-and-fall pitch contour, like a syllable's intonation.
    contour = f0 * (1.0 + 0.15 * np.sin(np.pi * t / max(t[-1], 1e-3)))
    phase = 2 * np.pi * np.cumsum(contour) / sample_rate
    wave = np.sin(phase) + 0.5 * np.sin(2 * phase) + 0.25 * np.sin(3 * phase)
    ramp = min(n // 4, int(0.015 * sample_rate)) or 1
    envelope = np.ones(n, dtype=np.float32)
    envelope[:ramp] = np.linspace(0.0, 1.0, ramp)
    envelope[-ramp:] = np.linspace(1.0, 0.0, ramp)
    return (amplitude / 1.75 * wave * envelope).astype(np.float32)


def tone(
    seconds: float, sample_rate: int = 16_000, freq: float = 220.0, level: float = 0.3
) -> bytes:
    """Return a sine tone as 16-bit little-endian mono PCM.

    Args:
        seconds: Length of the tone.
        sample_rate: Samples per second.
        freq: Frequency in Hz.
        level: Peak level, 0..1 of full scale.
    """
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    return (level * 32767 * np.sin(2 * np.pi * freq * t)).astype("<i2").tobytes()


def silence(seconds: float, sample_rate: int = 16_000) -> bytes:
    """Return digital silence as 16-bit mono PCM."""
    return bytes(2 * int(seconds * sample_rate))


def rms(pcm: bytes) -> float:
    """Root-mean-square level of 16-bit little-endian PCM, in sample units (0..32768)."""
    if len(pcm) < 2:
        return 0.0
    samples = np.frombuffer(pcm[: len(pcm) - len(pcm) % 2], dtype="<i2").astype(np.float32)
    return float(np.sqrt(np.mean(samples * samples)))


def wav_header(num_bytes: int, sample_rate: int, channels: int = 1) -> bytes:
    """Return a 44-byte RIFF/WAVE header for 16-bit PCM of ``num_bytes`` bytes."""
    byte_rate = sample_rate * channels * 2
    return (
        b"RIFF"
        + struct.pack("<I", 36 + num_bytes)
        + b"WAVEfmt "
        + struct.pack("<IHHIIHH", 16, 1, channels, sample_rate, byte_rate, channels * 2, 16)
        + b"data"
        + struct.pack("<I", num_bytes)
    )
