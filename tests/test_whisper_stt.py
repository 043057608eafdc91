"""The offline streaming STT on real eSpeak NG speech, with the real ``tiny.en`` model.

Audio goes in as 20 ms frames, mostly as fast as the pipeline takes it: what is asserted
holds on a machine too busy for real time. Where interims are wanted, the audio waits for
them instead of for the clock. How fast transcripts come is for benchmarks, not tests.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from pipecat.audio.vad.silero import SileroVADAnalyzer
from pipecat.frames.frames import (
    EndFrame,
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
from pipecat.pipeline.worker import PipelineParams, PipelineWorker, ProcessorUnusablePolicy
from pipecat.processors.audio.vad_processor import VADProcessor
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
from pipecat.tests.utils import QueuedFrameProcessor, SleepFrame, run_test
from pipecat.transcriptions.language import Language
from pipecat.workers.runner import WorkerRunner

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
    default_cpu_threads,
    preload_whisper_model,
)
from tests.support.speech import ONBOARDING_SENTENCE, speech_wav

CHUNK_S = 0.02


@pytest.fixture(scope="module")
def whisper_model():
    """Load the shared model once; every service below starts with it already loaded."""
    return preload_whisper_model()


async def run(processor, **kwargs) -> tuple[Sequence[Frame], Sequence[Frame]]:
    """`run_test`, with time for a model load at start on a busy machine."""
    return await run_test(processor, start_timeout=15.0, **kwargs)


async def run_fed(
    processor: FrameProcessor,
    feed: Callable[[PipelineWorker], Awaitable[None]],
    *,
    params: PipelineParams,
    observers: Sequence[BaseObserver] = (),
    policy: ProcessorUnusablePolicy = ProcessorUnusablePolicy.CONTINUE,
) -> tuple[list[Frame], list[Frame]]:
    """Like `run_test`, but ``feed`` queues the frames and may wait on what comes out.

    ``feed`` ends the session with an ``EndFrame``, or leaves it to the worker.
    """
    up: asyncio.Queue[Frame] = asyncio.Queue()
    down: asyncio.Queue[Frame] = asyncio.Queue()
    pipeline = Pipeline(
        [
            QueuedFrameProcessor(queue=up, queue_direction=FrameDirection.UPSTREAM),
            processor,
            QueuedFrameProcessor(queue=down, queue_direction=FrameDirection.DOWNSTREAM),
        ]
    )
    worker = PipelineWorker(
        pipeline,
        params=params,
        observers=list(observers),
        cancel_on_idle_timeout=False,
        processor_unusable_policy=policy,
    )
    started = asyncio.Event()

    @worker.event_handler("on_pipeline_started")
    async def on_started(worker, frame):
        started.set()

    async def fed():
        try:
            await asyncio.wait_for(started.wait(), timeout=15.0)
            await feed(worker)
        except BaseException:
            await worker.cancel(reason="the test failed")
            raise

    runner = WorkerRunner()
    await runner.add_workers(worker)
    await asyncio.gather(runner.run(), fed())
    received_down = [down.get_nowait() for _ in range(down.qsize())]
    received_up = [up.get_nowait() for _ in range(up.qsize())]
    return [f for f in received_down if not isinstance(f, EndFrame)], received_up


def read_wav(path: Path) -> tuple[np.ndarray, int]:
    audio, rate = sf.read(path, dtype="int16")
    return audio, rate


def audio_frames(audio: np.ndarray, rate: int, *, user_id: str = "") -> list[InputAudioRawFrame]:
    step = round(CHUNK_S * rate)
    pieces = [audio[i : i + step].tobytes() for i in range(0, len(audio), step)]
    return [UserAudioRawFrame(p, rate, 1, user_id=user_id) for p in pieces]


def split_at_vad(
    audio: np.ndarray, rate: int, lead_s: float, trail_s: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Split an eSpeak fixture where Silero, with its 0.2 s windows, says speech starts/stops.

    Returns:
        The audio before the VAD start, between start and stop, and after the stop.
    """
    speech_start = round((lead_s + 0.2) * rate)
    speech_end = len(audio) - round((trail_s - 0.2) * rate)
    return audio[:speech_start], audio[speech_start:speech_end], audio[speech_end:]


def around_speech(audio: np.ndarray, rate: int, lead_s: float, trail_s: float) -> list[Frame]:
    """Audio frames with VAD start/stop where the speech of an eSpeak fixture begins and ends."""
    before, speech, after = split_at_vad(audio, rate, lead_s, trail_s)
    return [
        *audio_frames(before, rate),
        VADUserStartedSpeakingFrame(start_secs=0.2),
        *audio_frames(speech, rate),
        VADUserStoppedSpeakingFrame(stop_secs=0.2),
        *audio_frames(after, rate),
    ]


class Timeline(BaseObserver):
    """When the STT pushed each frame other than audio."""

    def __init__(self, stt: WhisperStreamingSTTService):
        super().__init__()
        self.stt = stt
        self.events: list[tuple[float, Frame]] = []
        self._pushed = asyncio.Condition()

    async def on_push_frame(self, data: FramePushed):
        if data.source is self.stt and not isinstance(data.frame, InputAudioRawFrame):
            self.events.append((time.monotonic(), data.frame))
            async with self._pushed:
                self._pushed.notify_all()

    def times_of(self, kind: type) -> list[float]:
        return [t for t, f in self.events if isinstance(f, kind)]

    async def wait_for(self, kind: type, count: int) -> None:
        """Wait until the STT has pushed ``count`` frames of ``kind``."""
        async with self._pushed:
            await self._pushed.wait_for(lambda: len(self.times_of(kind)) >= count)


@contextmanager
def loop_ticks() -> Iterator[list[float]]:
    """Record when a 10 ms timer on the running loop fires, in wall-clock seconds."""
    ticks: list[float] = []

    async def probe():
        while True:
            ticks.append(time.time())
            await asyncio.sleep(0.01)

    task = asyncio.get_running_loop().create_task(probe())
    try:
        yield ticks
    finally:
        task.cancel()


def assert_loop_ran_during_finals(ticks: Sequence[float], down: Sequence[Frame]) -> None:
    """Check that the event loop went on while each final transcript was being transcribed.

    A transcription run on the loop would leave it without a single tick for as long as the
    transcription took. Each final is stamped just after its transcription ended, and its
    processing metric says how long that took; however busy the machine, a loop that runs
    meanwhile ticks somewhere in the first half of that time.
    """
    took: float | None = None
    finals = 0
    for frame in down:
        if isinstance(frame, MetricsFrame):
            for data in frame.data:
                if isinstance(data, ProcessingMetricsData):
                    took = data.value
        elif isinstance(frame, TranscriptionFrame):
            assert took is not None, "a final without its processing metric"
            start = datetime.fromisoformat(frame.timestamp).timestamp() - took
            assert any(start + 0.02 < t < start + took / 2 for t in ticks), (
                f"the event loop stood still while [{frame.text}] was transcribed ({took:.2f} s)"
            )
            finals += 1
    assert finals, "no final transcript to check"


def of_type(frames: Sequence[Frame], kind: type) -> list:
    return [f for f in frames if isinstance(f, kind)]


def passed_on(frames: Sequence[Frame]) -> list[Frame]:
    """The frames downstream less those the STT made itself."""
    made = (STTMetadataFrame, MetricsFrame, TranscriptionFrame, InterimTranscriptionFrame)
    return [f for f in frames if not isinstance(f, made)]


async def test_silero_vad_turns_speech_into_one_finalized_transcript(whisper_model):
    audio, rate = read_wav(speech_wav(ONBOARDING_SENTENCE, sample_rate=16000))
    sent = audio_frames(audio, rate, user_id="user-1")
    stt = WhisperStreamingSTTService()

    with loop_ticks() as ticks:
        down, up = await run(
            Pipeline([VADProcessor(vad_analyzer=SileroVADAnalyzer()), stt]),
            frames_to_send=sent,
            pipeline_params=PipelineParams(audio_in_sample_rate=rate, enable_metrics=True),
        )

    finals = of_type(down, TranscriptionFrame)
    assert len(finals) == 1
    final = finals[0]
    assert "main quest" in final.text.lower() and "onboarding" in final.text.lower()
    assert final.finalized
    assert final.user_id == "user-1" and final.timestamp and final.language == Language.EN
    # Fed this fast, interims may not have had time to come; any that did came first.
    assert all(down.index(i) < down.index(final) for i in of_type(down, InterimTranscriptionFrame))
    # Nothing the STT does not consume is lost: audio and VAD frames go on downstream.
    assert [f for f in down if isinstance(f, InputAudioRawFrame)] == sent
    assert of_type(down, VADUserStartedSpeakingFrame) and of_type(down, VADUserStoppedSpeakingFrame)
    assert not of_type(up, ErrorFrame)

    metrics = [d for m in of_type(down, MetricsFrame) for d in m.data]
    assert any(isinstance(d, TTFBMetricsData) and d.processor == stt.name for d in metrics)
    assert any(isinstance(d, ProcessingMetricsData) and d.processor == stt.name for d in metrics)
    assert_loop_ran_during_finals(ticks, down)


async def test_interims_of_the_speech_so_far_come_in_order_before_the_final(whisper_model):
    audio, rate = read_wav(speech_wav(ONBOARDING_SENTENCE, sample_rate=16000, rate_wpm=130))
    before, speech, after = split_at_vad(audio, rate, lead_s=0.5, trail_s=1.0)
    chunk = rate  # 1 s of speech: it holds an interim tick (every 0.5 s of audio)
    gated = len(speech) // chunk
    assert gated >= 3
    stt = WhisperStreamingSTTService()
    timeline = Timeline(stt=stt)

    async def feed(worker: PipelineWorker):
        await worker.queue_frames(audio_frames(before, rate))
        await worker.queue_frame(VADUserStartedSpeakingFrame(start_secs=0.2))
        for n in range(1, gated + 1):
            await worker.queue_frames(audio_frames(speech[(n - 1) * chunk : n * chunk], rate))
            # The person speaks on once the interim of what they said so far is out, so
            # each second gets its interim however long a transcription takes here.
            try:
                async with asyncio.timeout(30.0):
                    await timeline.wait_for(InterimTranscriptionFrame, count=n)
            except TimeoutError:
                pytest.fail(f"no interim {n} while the speech went on")
        await worker.queue_frames(audio_frames(speech[gated * chunk :], rate))
        await worker.queue_frame(VADUserStoppedSpeakingFrame(stop_secs=0.2))
        await worker.queue_frames([*audio_frames(after, rate), EndFrame()])

    with loop_ticks() as ticks:
        down, up = await run_fed(
            stt,
            feed,
            params=PipelineParams(audio_in_sample_rate=rate, enable_metrics=True),
            observers=[timeline],
        )

    interims = of_type(down, InterimTranscriptionFrame)
    finals = of_type(down, TranscriptionFrame)
    assert len(interims) >= gated and len(finals) == 1 and finals[0].finalized
    # All before the final, and growing with the speech they were made of.
    assert all(down.index(i) < down.index(finals[0]) for i in interims)
    assert len(interims[-1].text.split()) > len(interims[0].text.split())
    assert "main quest" in interims[-1].text.lower()
    assert "onboarding" in finals[0].text.lower()
    assert all(i.language == Language.EN and i.timestamp for i in interims)
    assert not of_type(up, ErrorFrame)
    assert_loop_ran_during_finals(ticks, down)


async def test_48khz_audio_is_resampled_and_other_frames_pass(whisper_model, onboarding_wav):
    audio, rate = read_wav(onboarding_wav)  # 48 kHz: 0.5 s silence, speech, 1 s silence
    assert rate == 48000
    sent = around_speech(audio, rate, lead_s=0.5, trail_s=1.0)
    other = TextFrame("not for the STT")

    down, up = await run(
        WhisperStreamingSTTService(),
        frames_to_send=[other, *sent],
        pipeline_params=PipelineParams(audio_in_sample_rate=rate),
    )

    finals = of_type(down, TranscriptionFrame)
    assert len(finals) == 1 and finals[0].finalized
    assert "main quest" in finals[0].text.lower() and "onboarding" in finals[0].text.lower()
    # Audio and VAD frames are system frames: they overtake the queued text frame.
    assert [f for f in passed_on(down) if f is not other] == sent
    assert [f for f in down if f is other] == [other]
    assert not of_type(up, ErrorFrame)


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
        # The speech goes on a while after the audio, so the interims it started can end.
        frames_to_send=[*sent[:-1], SleepFrame(sleep=2.0), sent[-1]],
        pipeline_params=PipelineParams(audio_in_sample_rate=rate),
    )

    assert not of_type(down, TranscriptionFrame) and not of_type(down, InterimTranscriptionFrame)
    assert not of_type(up, ErrorFrame)
    assert passed_on(down) == sent


@pytest.mark.parametrize(
    "model", ["/nowhere/no-such-whisper-model", "kane-tests/no-such-whisper-model"]
)
async def test_a_missing_model_is_reported_and_leaves_the_stt_unusable(model, onboarding_wav):
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
    # With Pipecat's default policy the session goes on: no transcript, and every frame
    # still reaches the rest of the pipeline.
    assert passed_on(down) == sent and not of_type(down, MetricsFrame)


async def test_a_missing_model_ends_a_session_that_ends_on_unusable_processors():
    async def feed(worker: PipelineWorker):
        pass  # no EndFrame: the worker has to end the session itself

    down, up = await asyncio.wait_for(
        run_fed(
            WhisperStreamingSTTService(model="/nowhere/no-such-whisper-model"),
            feed,
            params=PipelineParams(audio_in_sample_rate=16000),
            policy=ProcessorUnusablePolicy.END,  # as KANE's bot runs
        ),
        timeout=20.0,
    )

    errors = of_type(up, ErrorFrame)
    assert len(errors) == 1 and "no-such-whisper-model" in errors[0].error
    assert not of_type(down, TranscriptionFrame)


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

    with loop_ticks() as ticks:
        results = await asyncio.gather(*(session(w) for w in wavs))

    for (down, up), words in zip(results, keywords, strict=True):
        finals = of_type(down, TranscriptionFrame)
        assert len(finals) == 1 and not of_type(up, ErrorFrame)
        assert all(w in finals[0].text.lower() for w in words), finals[0].text
        assert_loop_ran_during_finals(ticks, down)


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
    # What the service's default params ask for: the bundled tiny.en, int8, two
    # transcriptions at once sharing the cores.
    spec = WhisperModelSpec(
        model=model_source(None),
        device="cpu",
        compute_type="int8",
        cpu_threads=default_cpu_threads(2),
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
