import asyncio
import time
from collections.abc import AsyncGenerator

import numpy as np
import pytest
from pipecat.frames.frames import (
    BotStartedSpeakingFrame,
    ErrorFrame,
    Frame,
    LLMFullResponseEndFrame,
    LLMFullResponseStartFrame,
    LLMTextFrame,
    TTSAudioRawFrame,
    TTSSpeakFrame,
)
from pipecat.pipeline.pipeline import Pipeline
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
from pipecat.services.tts_service import TTSService
from pipecat.tests.utils import run_test

from services.failover_tts import FailoverTTSParams, FailoverTTSService


class ScriptedTTS(TTSService):
    """A TTS that behaves as told: speaks, errors, raises, stays silent or stalls."""

    def __init__(self, behaviour: str, *, level: int, rate: int = 24000, **kwargs):
        super().__init__(sample_rate=rate, push_start_frame=True, push_stop_frames=True, **kwargs)
        self.behaviour = behaviour
        self.level = level
        self.requests: list[str] = []
        self.requested_at: list[float] = []

    async def run_tts(self, text: str, context_id: str) -> AsyncGenerator[Frame | None, None]:
        self.requests.append(text)
        self.requested_at.append(time.monotonic())
        if self.behaviour == "error":
            yield ErrorFrame(error="HTTP 500")
            return
        if self.behaviour == "raise":
            raise ConnectionError("connection reset")
        if self.behaviour == "stall":
            await asyncio.sleep(3600)
        if self.behaviour == "silent":
            return
        chunk = np.full(self.sample_rate // 50, self.level, dtype=np.int16).tobytes()
        for _ in range(5):
            yield TTSAudioRawFrame(chunk, self.sample_rate, 1, context_id=context_id)
        if self.behaviour == "drop":
            raise ConnectionError("dropped mid-stream")


async def speak(tts: FailoverTTSService, *texts: str) -> list[TTSAudioRawFrame]:
    down, _ = await run_test(tts, frames_to_send=[TTSSpeakFrame(text) for text in texts])
    return [f for f in down if isinstance(f, TTSAudioRawFrame)]


def levels(frames: list[TTSAudioRawFrame]) -> set[int]:
    return {int(np.frombuffer(f.audio, dtype=np.int16)[len(f.audio) // 4]) for f in frames}


def make(
    *behaviours: str, timeout_s: float = 0.3, playback_wait_s: float = 0.1
) -> tuple[FailoverTTSService, list[ScriptedTTS]]:
    inner = [ScriptedTTS(b, level=1000 * (i + 1)) for i, b in enumerate(behaviours)]
    tts = FailoverTTSService(
        services=[(f"tts{i}", s) for i, s in enumerate(inner)],
        params=FailoverTTSParams(
            first_audio_timeout_s=timeout_s,
            chunk_timeout_s=timeout_s,
            playback_wait_s=playback_wait_s,
        ),
        sample_rate=24000,
    )
    return tts, inner


async def test_first_working_service_speaks():
    tts, inner = make("ok", "ok")
    audio = await speak(tts, "Good morning.")
    assert levels(audio) == {1000}
    assert inner[1].requests == []


@pytest.mark.parametrize("failure", ["error", "raise", "stall", "silent"])
async def test_failed_turn_is_spoken_by_the_next_service(failure):
    tts, inner = make(failure, "ok")
    audio = await speak(tts, "What is your main quest?")
    assert audio, "the turn was not spoken"
    assert levels(audio) == {2000}
    assert inner[1].requests == ["What is your main quest?"]
    assert tts.active_name == "tts1"


async def test_rest_of_the_session_stays_with_the_service_that_worked():
    tts, inner = make("error", "ok")
    await speak(tts, "One.", "Two.")
    assert inner[0].requests == ["One."]
    assert inner[1].requests == ["One.", "Two."]


async def test_drop_mid_sentence_repeats_the_sentence_with_the_next():
    tts, inner = make("drop", "ok")
    audio = await speak(tts, "A sentence that breaks.")
    assert levels(audio) == {1000, 2000}
    assert inner[1].requests == ["A sentence that breaks."]


async def test_every_service_failing_is_an_error_not_a_crash():
    tts, _ = make("error", "raise")
    down, up = await run_test(tts, frames_to_send=[TTSSpeakFrame("Hello.")])
    assert not [f for f in down if isinstance(f, TTSAudioRawFrame)]
    assert any(isinstance(f, ErrorFrame) and "every TTS" in f.error for f in up)


async def test_audio_is_resampled_to_the_pipeline_rate():
    inner = ScriptedTTS("ok", level=1000, rate=48000)
    tts = FailoverTTSService(services=[("hume", inner)], sample_rate=24000)
    audio = await speak(tts, "Hello.")
    assert {f.sample_rate for f in audio} == {24000}
    # Half as many samples, less what the streaming resampler still holds back.
    samples = sum(len(f.audio) for f in audio) // 2
    assert 0.5 * 2400 < samples <= 2400


class Speaker(FrameProcessor):
    """The output transport's part: says the bot started speaking when audio first comes."""

    def __init__(self, log: list[str], inner: ScriptedTTS, *, tells: bool):
        super().__init__()
        self._log, self._inner, self._tells = log, inner, tells
        self._speaking = False

    async def process_frame(self, frame: Frame, direction: FrameDirection):
        await super().process_frame(frame, direction)
        if isinstance(frame, TTSAudioRawFrame) and not self._speaking:
            self._speaking = True
            self._log.append(f"heard after {len(self._inner.requests)} request(s)")
            if self._tells:
                await self.push_frame(BotStartedSpeakingFrame(), FrameDirection.UPSTREAM)
        await self.push_frame(frame, direction)


def answer(*sentences: str) -> list[Frame]:
    """An LLM's answer of several sentences, as the TTS gets it."""
    return [
        LLMFullResponseStartFrame(),
        *(LLMTextFrame(text) for text in sentences),
        LLMFullResponseEndFrame(),
    ]


async def answer_aloud(tts: FailoverTTSService, inner: ScriptedTTS, *, tells: bool) -> list[str]:
    """A two-sentence answer through the TTS and a `Speaker`; what the speaker noted."""
    log: list[str] = []
    await run_test(
        Pipeline([tts, Speaker(log, inner, tells=tells)]),
        frames_to_send=answer("Got it. ", "What comes next?"),
    )
    return log


async def test_next_sentence_is_asked_for_once_the_first_is_heard():
    # A request holds the event loop; the turn's first audio goes out before the next one.
    tts, inner = make("ok")
    log = await answer_aloud(tts, inner[0], tells=True)
    assert inner[0].requests == ["Got it.", "What comes next?"]
    assert log == ["heard after 1 request(s)"]


async def test_next_sentence_waits_no_longer_than_its_limit_without_word_of_playback():
    tts, inner = make("ok", playback_wait_s=0.2)
    log = await answer_aloud(tts, inner[0], tells=False)
    assert inner[0].requests == ["Got it.", "What comes next?"]
    first, second = inner[0].requested_at
    assert 0.2 <= second - first < 1.0
    assert log == ["heard after 1 request(s)"]


async def test_each_turn_first_sentence_is_asked_for_at_once():
    tts, inner = make("ok", playback_wait_s=0.5)
    # No word of playback at all: only a turn's later sentences would wait for it.
    started = time.monotonic()
    await speak(tts, "One.", "Two.", "Three.")
    assert inner[0].requests == ["One.", "Two.", "Three."]
    assert time.monotonic() - started < 0.5
