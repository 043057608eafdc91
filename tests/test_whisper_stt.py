"""The offline streaming STT on real eSpeak NG speech, with the real ``tiny.en`` model.

Audio goes in as 20 ms frames. The test that paces them in real time, through Silero VAD,
prints what it measured (run with ``-s``): model load time, interim cadence, and the time
from the end of speech to the final transcript.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from pipecat.audio.vad.silero import SileroVADAnalyzer
from pipecat.frames.frames import (
    ErrorFrame,
    Frame,
    InputAudioRawFrame,
    InterimTranscriptionFrame,
    MetricsFrame,
    STTMetadataFrame,
    TextFrame,
    TranscriptionFrame,
    UserAudioRawFrame,
    VADUserStartedSpeakingFrame,
    VADUserStoppedSpeakingFrame,
)
from pipecat.metrics.metrics import ProcessingMetricsData, TTFBMetricsData
from pipecat.observers.base_observer import BaseObserver, FramePushed
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.worker import PipelineParams
from pipecat.processors.audio.vad_processor import VADProcessor
from pipecat.tests.utils import SleepFrame, run_test
from pipecat.transcriptions.language import Language

from services.whisper_model import (
    WhisperModelSpec,
    loaded_model,
    model_source,
    shared_model,
    transcribe,
)
from services.whisper_stt import (
    WhisperStreamingSTTParams,
    WhisperStreamingSTTService,
    preload_whisper_model,
)
from tests.support.speech import ONBOARDING_SENTENCE, speech_wav

CHUNK_S = 0.02


@pytest.fixture(scope="module")
def whisper_model():
    """Load the shared model once; every service below starts with it already loaded."""
    started = time.perf_counter()
    model = preload_whisper_model()
    print(f"\nwhisper tiny.en load: {time.perf_counter() - started:.2f} s")
    return model


async def run(processor, **kwargs) -> tuple[Sequence[Frame], Sequence[Frame]]:
    """`run_test`, with time for a model load at start on a busy machine."""
    return await run_test(processor, start_timeout=15.0, **kwargs)


def read_wav(path: Path) -> tuple[np.ndarray, int]:
    audio, rate = sf.read(path, dtype="int16")
    return audio, rate


def audio_frames(audio: np.ndarray, rate: int, *, user_id: str = "") -> list[InputAudioRawFrame]:
    step = round(CHUNK_S * rate)
    pieces = [audio[i : i + step].tobytes() for i in range(0, len(audio), step)]
    return [UserAudioRawFrame(p, rate, 1, user_id=user_id) for p in pieces]


def paced(frames: Sequence[Frame]) -> list[Frame]:
    """The frames with a 20 ms pause after each: real time, as a transport delivers them."""
    out: list[Frame] = []
    for frame in frames:
        out += [frame, SleepFrame(sleep=CHUNK_S)]
    return out


def around_speech(audio: np.ndarray, rate: int, lead_s: float, trail_s: float) -> list[Frame]:
    """Audio frames with VAD start/stop where the speech of an eSpeak fixture begins and ends.

    Placed as Silero with its default 0.2 s start/stop windows would place them.
    """
    speech_start = round((lead_s + 0.2) * rate)
    speech_end = len(audio) - round((trail_s - 0.2) * rate)
    return [
        *audio_frames(audio[:speech_start], rate),
        VADUserStartedSpeakingFrame(start_secs=0.2),
        *audio_frames(audio[speech_start:speech_end], rate),
        VADUserStoppedSpeakingFrame(stop_secs=0.2),
        *audio_frames(audio[speech_end:], rate),
    ]


class Timeline(BaseObserver):
    """When the STT pushed each frame other than audio."""

    def __init__(self, stt: WhisperStreamingSTTService):
        super().__init__()
        self.stt = stt
        self.events: list[tuple[float, Frame]] = []

    async def on_push_frame(self, data: FramePushed):
        if data.source is self.stt and not isinstance(data.frame, InputAudioRawFrame):
            self.events.append((time.monotonic(), data.frame))

    def times_of(self, kind: type) -> list[float]:
        return [t for t, f in self.events if isinstance(f, kind)]


@contextmanager
def loop_lag() -> Iterator[list[float]]:
    """Measure how late a 10 ms timer fires on the running loop (the worst case is [0])."""
    worst = [0.0]

    async def probe():
        while True:
            before = time.monotonic()
            await asyncio.sleep(0.01)
            worst[0] = max(worst[0], time.monotonic() - before - 0.01)

    task = asyncio.get_running_loop().create_task(probe())
    try:
        yield worst
    finally:
        task.cancel()


def assert_loop_kept_running(lag: float, down: Sequence[Frame]) -> None:
    """A transcription run on the loop would stall it for as long as the transcription took.

    The bound is relative to the measured transcription time, so a busy machine, which
    slows both, does not fail the test.
    """
    metrics = [d for m in of_type(down, MetricsFrame) for d in m.data]
    took = max(d.value for d in metrics if isinstance(d, ProcessingMetricsData))
    assert lag < max(0.2, took / 2), f"loop stalled {lag:.3f} s; a transcription took {took:.3f}"


def of_type(frames: Sequence[Frame], kind: type) -> list:
    return [f for f in frames if isinstance(f, kind)]


def passed_on(frames: Sequence[Frame]) -> list[Frame]:
    """The frames downstream less those the STT made itself."""
    made = (STTMetadataFrame, MetricsFrame, TranscriptionFrame, InterimTranscriptionFrame)
    return [f for f in frames if not isinstance(f, made)]


async def test_speech_streams_interims_then_one_finalized_transcript(whisper_model):
    # Spoken slowly (about 3.8 s), so interims arrive in time on a busy machine too.
    audio, rate = read_wav(speech_wav(ONBOARDING_SENTENCE, sample_rate=16000, rate_wpm=130))
    sent = audio_frames(audio, rate, user_id="user-1")
    stt = WhisperStreamingSTTService()
    timeline = Timeline(stt=stt)

    with loop_lag() as lag:
        down, up = await run(
            Pipeline([VADProcessor(vad_analyzer=SileroVADAnalyzer()), stt]),
            frames_to_send=paced(sent),
            observers=[timeline],
            pipeline_params=PipelineParams(audio_in_sample_rate=rate, enable_metrics=True),
        )

    interims = of_type(down, InterimTranscriptionFrame)
    finals = of_type(down, TranscriptionFrame)
    assert len(finals) == 1
    final = finals[0]
    assert interims and down.index(interims[-1]) < down.index(final)
    assert "main quest" in final.text.lower() and "onboarding" in final.text.lower()
    assert final.finalized
    assert final.user_id == "user-1" and final.timestamp and final.language == Language.EN
    assert all(i.user_id == "user-1" and i.language == Language.EN for i in interims)
    # Nothing the STT does not consume is lost: audio and VAD frames go on downstream.
    assert [f for f in down if isinstance(f, InputAudioRawFrame)] == sent
    assert of_type(down, VADUserStartedSpeakingFrame) and of_type(down, VADUserStoppedSpeakingFrame)
    assert not of_type(up, ErrorFrame)

    metrics = [d for m in of_type(down, MetricsFrame) for d in m.data]
    assert any(isinstance(d, TTFBMetricsData) and d.processor == stt.name for d in metrics)
    assert any(isinstance(d, ProcessingMetricsData) and d.processor == stt.name for d in metrics)
    assert_loop_kept_running(lag[0], down)

    started = timeline.times_of(VADUserStartedSpeakingFrame)[0]
    stopped = timeline.times_of(VADUserStoppedSpeakingFrame)[0]
    interim_times = timeline.times_of(InterimTranscriptionFrame)
    final_time = timeline.times_of(TranscriptionFrame)[0]
    gaps = np.diff([started, *interim_times])
    print(
        f"\ninterims: {[i.text for i in interims]}\nfinal: {final.text}\n"
        f"speech {stopped - started:.2f} s; interim gaps {np.round(gaps, 2).tolist()} s; "
        f"VAD stop -> final {final_time - stopped:.2f} s; worst loop lag {lag[0] * 1000:.0f} ms"
    )


async def test_48khz_audio_is_resampled_and_other_frames_pass(whisper_model, onboarding_wav):
    audio, rate = read_wav(onboarding_wav)  # 48 kHz: 0.5 s silence, speech, 1 s silence
    assert rate == 48000
    sent = around_speech(audio, rate, lead_s=0.5, trail_s=1.0)
    other = TextFrame("not for the STT")
    stt = WhisperStreamingSTTService()
    timeline = Timeline(stt=stt)

    down, up = await run(
        stt,
        frames_to_send=[other, *sent],
        observers=[timeline],
        pipeline_params=PipelineParams(audio_in_sample_rate=rate),
    )

    finals = of_type(down, TranscriptionFrame)
    assert len(finals) == 1 and finals[0].finalized
    assert "main quest" in finals[0].text.lower() and "onboarding" in finals[0].text.lower()
    # Audio and VAD frames are system frames: they overtake the queued text frame.
    assert [f for f in passed_on(down) if f is not other] == sent
    assert [f for f in down if f is other] == [other]
    assert not of_type(up, ErrorFrame)
    stopped = timeline.times_of(VADUserStoppedSpeakingFrame)[0]
    # What Whisper got: the audio between the VAD frames, and the pre-roll before it.
    between_vad_s = len(audio) / rate - (0.5 + 0.2) - (1.0 - 0.2)
    utterance_s = between_vad_s + WhisperStreamingSTTParams().pre_roll_s
    print(
        f"\n{utterance_s:.2f} s utterance (with pre-roll) at 48 kHz transcribed in "
        f"{timeline.times_of(TranscriptionFrame)[0] - stopped:.2f} s"
    )


async def test_an_utterance_without_words_pushes_no_transcript(whisper_model):
    rate = 16000
    hiss = (np.random.default_rng(7).normal(0, 30, rate * 3 // 2)).astype(np.int16)  # -60 dBFS
    sent = [
        VADUserStartedSpeakingFrame(start_secs=0.2),
        *audio_frames(hiss, rate),
        VADUserStoppedSpeakingFrame(stop_secs=0.2),
    ]

    down, up = await run(
        WhisperStreamingSTTService(),
        frames_to_send=paced(sent),  # in real time, so interims are tried too
        pipeline_params=PipelineParams(audio_in_sample_rate=rate),
    )

    assert not of_type(down, TranscriptionFrame) and not of_type(down, InterimTranscriptionFrame)
    assert not of_type(up, ErrorFrame)
    assert passed_on(down) == sent


@pytest.mark.parametrize(
    "model", ["/nowhere/no-such-whisper-model", "kane-tests/no-such-whisper-model"]
)
async def test_a_missing_model_is_reported_and_the_session_goes_on(model, onboarding_wav):
    # A path is never downloaded; a name not in the local cache is not fetched either.
    audio, rate = read_wav(onboarding_wav)
    sent = around_speech(audio, rate, lead_s=0.5, trail_s=1.0)
    stt = WhisperStreamingSTTService(model=model)

    down, up = await run(
        stt, frames_to_send=sent, pipeline_params=PipelineParams(audio_in_sample_rate=rate)
    )

    errors = of_type(up, ErrorFrame)
    assert len(errors) == 1 and "no-such-whisper-model" in errors[0].error
    assert not stt.is_usable
    # No transcript, and every frame still reaches the rest of the pipeline.
    assert passed_on(down) == sent and not of_type(down, MetricsFrame)


async def test_sessions_share_one_model_and_transcribe_side_by_side(whisper_model):
    sentences = [
        ONBOARDING_SENTENCE,
        "Call the dentist on Friday.",
        "Write the quarterly report for the board.",
    ]
    keywords = [("main quest", "onboarding"), ("dentist", "friday"), ("quarterly", "report")]
    wavs = [speech_wav(s, sample_rate=16000) for s in sentences]
    assert preload_whisper_model() is preload_whisper_model("tiny.en") is whisper_model

    async def session(path: Path):
        audio, rate = read_wav(path)
        sent = around_speech(audio, rate, lead_s=0.5, trail_s=1.0)
        return await run(
            WhisperStreamingSTTService(),
            frames_to_send=sent,
            pipeline_params=PipelineParams(audio_in_sample_rate=rate, enable_metrics=True),
        )

    started = time.monotonic()
    with loop_lag() as lag:
        results = await asyncio.gather(*(session(w) for w in wavs))
    elapsed = time.monotonic() - started

    for (down, up), words in zip(results, keywords, strict=True):
        finals = of_type(down, TranscriptionFrame)
        assert len(finals) == 1 and not of_type(up, ErrorFrame)
        assert all(w in finals[0].text.lower() for w in words), finals[0].text
        assert_loop_kept_running(lag[0], down)
    print(f"\n3 sessions at once: {elapsed:.2f} s, worst loop lag {lag[0] * 1000:.0f} ms")


async def test_speech_past_the_longest_utterance_is_cut_into_finals(whisper_model):
    audio, rate = read_wav(speech_wav(ONBOARDING_SENTENCE, sample_rate=16000))
    params = WhisperStreamingSTTParams(max_utterance_s=2.0)

    down, _ = await run(
        WhisperStreamingSTTService(params=params),
        frames_to_send=around_speech(audio, rate, lead_s=0.5, trail_s=1.0),
        pipeline_params=PipelineParams(audio_in_sample_rate=rate),
    )

    finals = of_type(down, TranscriptionFrame)
    assert len(finals) == 2
    # Only the piece that ends with the speech closes the turn.
    assert [f.finalized for f in finals] == [False, True]
    assert "onboarding" in finals[1].text.lower()


async def test_speech_still_going_when_the_session_ends_is_transcribed(whisper_model):
    audio, rate = read_wav(speech_wav(ONBOARDING_SENTENCE, sample_rate=16000))
    frames = around_speech(audio, rate, lead_s=0.5, trail_s=1.0)
    cut_off = frames[: frames.index(of_type(frames, VADUserStoppedSpeakingFrame)[0])]

    down, _ = await run(
        WhisperStreamingSTTService(),
        frames_to_send=cut_off,
        pipeline_params=PipelineParams(audio_in_sample_rate=rate),
    )

    finals = of_type(down, TranscriptionFrame)
    assert len(finals) == 1 and "onboarding" in finals[0].text.lower()


def test_the_model_module_shares_one_model_per_spec_and_transcribes_any_rate(
    whisper_model, onboarding_wav
):
    # What the service's default params ask for: the bundled tiny.en, int8 on every core.
    spec = WhisperModelSpec(
        model=model_source(None),
        device="cpu",
        compute_type="int8",
        cpu_threads=os.cpu_count() or 1,
        workers=2,
        allow_download=False,
    )
    assert loaded_model(spec) is shared_model(spec) is whisper_model
    assert loaded_model(replace(spec, workers=3)) is None  # another spec, not loaded

    audio, rate = read_wav(onboarding_wav)  # 48 kHz
    text = transcribe(
        whisper_model,
        audio.tobytes(),
        rate,
        language="en",
        beam_size=5,
        final=True,
        no_speech_threshold=0.6,
    )
    assert "main quest" in text.lower() and "onboarding" in text.lower()
