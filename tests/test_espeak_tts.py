"""eSpeak NG as a Pipecat TTS service, alone and as a voice of the failover TTS."""

import numpy as np
import pytest
from pipecat.frames.frames import (
    ErrorFrame,
    Frame,
    TTSAudioRawFrame,
    TTSSpeakFrame,
    TTSStartedFrame,
    TTSStoppedFrame,
    TTSUpdateSettingsFrame,
)
from pipecat.pipeline.worker import PipelineParams
from pipecat.services.tts_service import TTSService
from pipecat.tests.utils import run_test

from client.audio import level_dbfs
from frames.emotion import ToneFrame
from services.espeak_tts import ESpeakTTSService, drop_unspeakable
from services.failover_tts import FailoverTTSParams, FailoverTTSService
from speech.espeak import synthesize_at
from tests.support.emulators import of_type
from tests.test_failover_tts import ScriptedTTS

SENTENCE = "Your main quest today is to ship the onboarding flow."
UNSPEAKABLE = ["...", "?!", "—", "…", "( )"]


async def speak(
    tts: TTSService, *frames: Frame, rate: int = 24000
) -> tuple[list[Frame], list[Frame]]:
    down, up = await run_test(
        tts,
        frames_to_send=list(frames),
        pipeline_params=PipelineParams(audio_out_sample_rate=rate),
    )
    return list(down), list(up)


def samples(frames: list[Frame], context_id: str | None = None) -> np.ndarray:
    audio = [
        f.audio
        for f in of_type(frames, TTSAudioRawFrame)
        if context_id is None or f.context_id == context_id
    ]
    return np.frombuffer(b"".join(audio), dtype=np.int16)


def same_length(spoken: np.ndarray, reference: np.ndarray) -> bool:
    # eSpeak varies a sentence's length by a few milliseconds from call to call.
    return spoken.size == pytest.approx(reference.size, rel=0.02)


def median_pitch_hz(audio: np.ndarray, rate: int) -> float:
    """Median fundamental frequency of the loud 40 ms windows, by autocorrelation."""
    size = int(0.04 * rate)
    shortest, longest = rate // 400, rate // 60
    pitches = []
    for start in range(0, audio.size - size, size):
        window = audio[start : start + size].astype(np.float64)
        if np.sqrt(np.mean(window**2)) < 1000:
            continue
        window -= window.mean()
        correlation = np.correlate(window, window, "full")[size - 1 :]
        pitches.append(rate / (shortest + np.argmax(correlation[shortest:longest])))
    return float(np.median(pitches))


def durations(frames: list[Frame], rate: int) -> list[float]:
    """Seconds of audio of each spoken text, in the order they were spoken."""
    return [samples(frames, f.context_id).size / rate for f in of_type(frames, TTSStartedFrame)]


@pytest.mark.parametrize("rate", [24000, 16000])
async def test_a_sentence_is_spoken_at_the_pipeline_rate(rate):
    down, up = await speak(ESpeakTTSService(), TTSSpeakFrame(SENTENCE), rate=rate)

    assert not of_type(up, ErrorFrame)
    tts = [f for f in down if isinstance(f, (TTSStartedFrame, TTSAudioRawFrame, TTSStoppedFrame))]
    assert isinstance(tts[0], TTSStartedFrame) and isinstance(tts[-1], TTSStoppedFrame)
    audio = tts[1:-1]
    assert audio and all(isinstance(f, TTSAudioRawFrame) for f in audio)
    assert {(f.sample_rate, f.num_channels, f.context_id) for f in audio} == {
        (rate, 1, tts[0].context_id)
    }
    # Short frames, so playback starts at once and an interruption cuts in quickly.
    assert max(len(f.audio) // 2 for f in audio) <= 0.04 * rate
    spoken = samples(down)
    assert 0.5 < spoken.size / rate < 5.0
    assert level_dbfs(spoken) > -30
    # All of what eSpeak made reaches the pipeline.
    assert same_length(spoken, synthesize_at(SENTENCE, rate))


async def test_a_speed_update_speaks_faster_or_slower():
    frames = [TTSSpeakFrame(SENTENCE)]
    for speed in (1.6, 0.6):
        frames += [
            TTSUpdateSettingsFrame(delta=ESpeakTTSService.Settings(speed=speed)),
            TTSSpeakFrame(SENTENCE),
        ]

    down, up = await speak(ESpeakTTSService(), *frames)

    assert not of_type(up, ErrorFrame)
    normal, fast, slow = durations(down, 24000)
    assert fast < 0.75 * normal
    assert slow > 1.4 * normal


async def test_speed_is_kept_within_what_espeak_can_do():
    frames: list[Frame] = []
    for speed in (3.0, 10.0, 0.1):
        frames += [
            TTSUpdateSettingsFrame(delta=ESpeakTTSService.Settings(speed=speed)),
            TTSSpeakFrame(SENTENCE),
        ]

    down, up = await speak(ESpeakTTSService(), *frames)

    assert not of_type(up, ErrorFrame)
    fastest, beyond_fastest, slowest = durations(down, 24000)
    assert beyond_fastest == pytest.approx(fastest, rel=0.02)  # both 450 words per minute
    assert slowest > 3 * fastest  # 80 words per minute, not silence or an error


async def test_a_pitch_update_raises_the_voice():
    down, up = await speak(
        ESpeakTTSService(),
        TTSSpeakFrame(SENTENCE),
        TTSUpdateSettingsFrame(delta=ESpeakTTSService.Settings(pitch=90)),
        TTSSpeakFrame(SENTENCE),
        rate=16000,
    )

    assert not of_type(up, ErrorFrame)
    normal, high = (samples(down, f.context_id) for f in of_type(down, TTSStartedFrame))
    assert median_pitch_hz(high, 16000) > 1.3 * median_pitch_hz(normal, 16000)


@pytest.mark.parametrize("text", UNSPEAKABLE)
async def test_text_with_nothing_to_say_gives_no_audio_and_no_error(text):
    down, up = await speak(ESpeakTTSService(), TTSSpeakFrame(text))

    assert not of_type(down, TTSStartedFrame)
    assert not of_type(down, TTSAudioRawFrame)
    assert not of_type(up, ErrorFrame)


async def test_unknown_voice_is_an_error_frame_and_the_service_goes_on():
    tts = ESpeakTTSService(settings=ESpeakTTSService.Settings(voice="no-such-voice"))

    down, up = await speak(
        tts,
        TTSSpeakFrame("Hello there."),
        TTSUpdateSettingsFrame(delta=ESpeakTTSService.Settings(voice="en-us")),
        TTSSpeakFrame(SENTENCE),
    )

    errors = [f.error for f in of_type(up, ErrorFrame)]
    assert "eSpeak NG could not speak: unknown eSpeak NG voice 'no-such-voice'" in errors
    assert all("Hello there" not in e for e in errors)
    assert same_length(samples(down), synthesize_at(SENTENCE, 24000))


def failover(*services: tuple[str, TTSService], **kwargs) -> FailoverTTSService:
    return FailoverTTSService(
        services=list(services),
        params=FailoverTTSParams(first_audio_timeout_s=1.0, chunk_timeout_s=1.0),
        **kwargs,
    )


@pytest.mark.parametrize("failure", ["error", "stall"])
async def test_espeak_speaks_when_the_first_voice_fails(failure):
    first = ScriptedTTS(failure, level=1000)
    tts = failover(("openai", first), ("espeak", ESpeakTTSService()))

    down, up = await speak(tts, TTSSpeakFrame(SENTENCE), rate=16000)

    assert not of_type(up, ErrorFrame)
    assert first.requests == [SENTENCE]
    assert tts.active_name == "espeak"
    assert {f.sample_rate for f in of_type(down, TTSAudioRawFrame)} == {16000}
    assert same_length(samples(down), synthesize_at(SENTENCE, 16000))


async def test_tone_speed_from_the_failover_reaches_espeak():
    plain, _ = await speak(failover(("espeak", ESpeakTTSService())), TTSSpeakFrame(SENTENCE))
    hurried, up = await speak(
        failover(("espeak", ESpeakTTSService())),
        ToneFrame(instructions="Match their energy.", speed=1.5),
        TTSSpeakFrame(SENTENCE),
    )

    assert not of_type(up, ErrorFrame)
    assert samples(hurried).size < 0.8 * samples(plain).size
    rate_wpm = round(175 * 1.5)
    assert same_length(samples(hurried), synthesize_at(SENTENCE, 24000, rate_wpm=rate_wpm))


@pytest.mark.parametrize("text", UNSPEAKABLE)
async def test_failover_with_drop_unspeakable_says_nothing_without_error(text):
    tts = failover(("espeak", ESpeakTTSService()), text_transforms=[("*", drop_unspeakable)])

    down, up = await speak(tts, TTSSpeakFrame(text))

    assert not of_type(down, TTSAudioRawFrame)
    assert not of_type(up, ErrorFrame)


async def test_drop_unspeakable_keeps_anything_with_a_word():
    assert await drop_unspeakable("Ship it!", "sentence") == "Ship it!"
    assert await drop_unspeakable("42.", "sentence") == "42."
    assert await drop_unspeakable(" ... ", "sentence") == ""
