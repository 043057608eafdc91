"""Spoken WAV fixtures made with eSpeak NG, cached on disk between runs."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from speech.espeak import write_wav

ONBOARDING_SENTENCE = "My main quest today is to ship the onboarding flow."


def fixture_cache_dir() -> Path:
    """Return the folder spoken fixtures are cached in (``$KANE_CACHE_DIR/speech-fixtures``)."""
    root = Path(os.environ.get("KANE_CACHE_DIR", Path.home() / ".cache" / "kane"))
    return root / "speech-fixtures"


def speech_wav(
    text: str,
    *,
    sample_rate: int = 48000,
    leading_silence_s: float = 0.5,
    trailing_silence_s: float = 1.0,
    rate_wpm: int = 175,
    voice: str = "en-us",
    cache_dir: Path | None = None,
) -> Path:
    """Return a WAV of ``text`` spoken by eSpeak NG, with silence around it.

    The file is made once per set of arguments and cached; writes are atomic, so parallel
    test workers can share the cache.
    """
    params = {
        "text": text,
        "sample_rate": sample_rate,
        "lead": leading_silence_s,
        "trail": trailing_silence_s,
        "rate": rate_wpm,
        "voice": voice,
    }
    key = hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()[:16]
    folder = cache_dir or fixture_cache_dir()
    path = folder / f"{key}.wav"
    if not path.exists():
        partial = folder / f"{key}.{os.getpid()}.partial.wav"
        write_wav(
            partial,
            text,
            sample_rate=sample_rate,
            rate_wpm=rate_wpm,
            voice=voice,
            leading_silence_s=leading_silence_s,
            trailing_silence_s=trailing_silence_s,
        )
        partial.replace(path)
    return path


@pytest.fixture(scope="session")
def onboarding_wav() -> Path:
    """48 kHz WAV: 0.5 s silence, the onboarding sentence, 1 s silence."""
    return speech_wav(ONBOARDING_SENTENCE)
