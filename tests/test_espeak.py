"""eSpeak NG synthesis through the espeakng-loader wheel."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from client.audio import level_dbfs, voiced_span
from speech.espeak import ESpeakError, list_voices, resample, synthesize, synthesize_at, write_wav
from tests.support.speech import ONBOARDING_SENTENCE, speech_wav


def test_synthesis_is_speech_of_plausible_length() -> None:
    audio, rate = synthesize(ONBOARDING_SENTENCE)
    assert audio.dtype == np.int16 and audio.ndim == 1
    assert rate == 22050
    # 10 words at 175 wpm is about 3.4 s; eSpeak runs a little faster than nominal.
    assert 1.8 < audio.size / rate < 5.0
    assert level_dbfs(audio) > -30


def test_faster_rate_is_shorter() -> None:
    slow, rate = synthesize(ONBOARDING_SENTENCE, rate_wpm=120)
    fast, _ = synthesize(ONBOARDING_SENTENCE, rate_wpm=300)
    assert fast.size / rate < 0.6 * slow.size / rate


def test_pitch_and_voice_change_the_audio() -> None:
    low, _ = synthesize("Hello there.", pitch=20)
    high, _ = synthesize("Hello there.", pitch=80)
    british, _ = synthesize("Hello there.", voice="en-gb")
    assert not np.array_equal(low, high)
    assert british.size > 0


def test_unknown_voice_is_an_error() -> None:
    with pytest.raises(ESpeakError):
        synthesize("Hello.", voice="no-such-voice")


@pytest.mark.parametrize("target", [16000, 24000, 48000])
def test_resampling_keeps_duration(target: int) -> None:
    audio, rate = synthesize("Ship the onboarding flow.")
    out = synthesize_at("Ship the onboarding flow.", target)
    assert out.size / target == pytest.approx(audio.size / rate, abs=0.01)
    assert level_dbfs(out) == pytest.approx(level_dbfs(audio), abs=1.0)


def test_resample_of_a_tone_keeps_its_frequency() -> None:
    t = np.arange(22050) / 22050
    tone = (np.sin(2 * np.pi * 440 * t) * 10000).astype(np.int16)
    out = resample(tone, 22050, 16000)
    spectrum = np.abs(np.fft.rfft(out))
    assert np.argmax(spectrum) * 16000 / out.size == pytest.approx(440, abs=2)


def test_write_wav_adds_silence(tmp_path: Path) -> None:
    path = write_wav(
        tmp_path / "hello.wav",
        "Hello.",
        sample_rate=24000,
        leading_silence_s=0.5,
        trailing_silence_s=1.0,
    )
    audio, rate = sf.read(path, dtype="int16")
    assert rate == 24000
    span = voiced_span(audio, rate)
    assert span is not None
    assert span[0] / rate == pytest.approx(0.5, abs=0.06)
    assert (audio.size - span[1]) / rate >= 1.0


def test_concurrent_callers_get_whole_utterances() -> None:
    # eSpeak keeps state between calls, so repeated output differs by a few samples.
    long_size = synthesize(ONBOARDING_SENTENCE)[0].size
    short_size = synthesize("Hello.")[0].size
    results: dict[str, list[int]] = {"long": [], "short": []}

    def speak(kind: str, text: str) -> None:
        for _ in range(3):
            results[kind].append(synthesize(text)[0].size)

    threads = [
        threading.Thread(target=speak, args=("long", ONBOARDING_SENTENCE)),
        threading.Thread(target=speak, args=("short", "Hello.")),
        threading.Thread(target=speak, args=("long", ONBOARDING_SENTENCE)),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(abs(size - long_size) < 500 for size in results["long"])
    assert all(abs(size - short_size) < 500 for size in results["short"])
    assert len(results["long"]) == 6 and len(results["short"]) == 3


def test_voices_are_listed_by_language() -> None:
    voices = list_voices()
    assert len(voices) > 50
    assert any("en-us" in voice.languages for voice in voices)


def test_speech_fixtures_are_cached(tmp_path: Path) -> None:
    first = speech_wav("Fix the login bug first.", sample_rate=16000, cache_dir=tmp_path)
    mtime = first.stat().st_mtime_ns
    again = speech_wav("Fix the login bug first.", sample_rate=16000, cache_dir=tmp_path)
    assert again == first and again.stat().st_mtime_ns == mtime
    assert sf.info(str(first)).samplerate == 16000
