"""Audio helpers of the reference client: WAV in and out, levels, resampling."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

DEFAULT_VOICE_THRESHOLD_DBFS = -45.0
"""Frames whose RMS level is above this count as sound (speech), below as silence."""


def load_wav(path: str | Path, sample_rate: int) -> np.ndarray:
    """Read a WAV file as mono int16 samples at ``sample_rate``.

    Args:
        path: The file to read (any format soundfile reads).
        sample_rate: Wanted sample rate; the file is resampled with soxr when it differs.

    Returns:
        Mono int16 samples.
    """
    data, file_rate = sf.read(str(path), dtype="float32", always_2d=True)
    mono = data.mean(axis=1)
    if file_rate != sample_rate:
        mono = soxr.resample(mono, file_rate, sample_rate, "HQ")
    return to_int16(mono)


def to_int16(samples: np.ndarray) -> np.ndarray:
    """Convert float samples in [-1, 1] to int16 with clipping."""
    return np.clip(np.round(samples * 32768.0), -32768, 32767).astype(np.int16)


def write_wav(path: str | Path, samples: np.ndarray, sample_rate: int) -> Path:
    """Write mono int16 samples to a 16-bit WAV file, creating parent folders."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(out), samples.astype(np.int16, copy=False), sample_rate, subtype="PCM_16")
    return out


def level_dbfs(samples: np.ndarray) -> float:
    """Return the RMS level of int16 samples in dB relative to full scale (-inf for silence)."""
    if samples.size == 0:
        return float("-inf")
    rms = float(np.sqrt(np.mean(np.square(samples.astype(np.float64)))))
    if rms == 0.0:
        return float("-inf")
    return 20.0 * float(np.log10(rms / 32768.0))


def voiced_span(
    samples: np.ndarray,
    sample_rate: int,
    *,
    threshold_dbfs: float = DEFAULT_VOICE_THRESHOLD_DBFS,
    window_ms: int = 10,
) -> tuple[int, int] | None:
    """Find where sound starts and ends in a clip.

    Args:
        samples: Mono int16 samples.
        sample_rate: Their sample rate.
        threshold_dbfs: RMS level above which a window counts as sound.
        window_ms: Analysis window length.

    Returns:
        ``(first, end)`` sample indices (end exclusive, window-aligned) of the voiced part,
        or None when the clip is silent throughout.
    """
    window = max(1, sample_rate * window_ms // 1000)
    voiced = [
        start
        for start in range(0, samples.size, window)
        if level_dbfs(samples[start : start + window]) > threshold_dbfs
    ]
    if not voiced:
        return None
    return voiced[0], min(voiced[-1] + window, samples.size)
