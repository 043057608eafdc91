"""A session's graceful end: the person's audio already taken in goes down before the end."""

from __future__ import annotations

import asyncio
from typing import Any

from pipecat.frames.frames import Frame, InputAudioRawFrame, StartFrame
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.worker import PipelineWorker
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
from pipecat.transports.base_input import BaseInputTransport
from pipecat.transports.base_transport import TransportParams
from pipecat.workers.runner import WorkerRunner

from bot import worker_options
from session.lifecycle import SessionLifecycle
from transport.base import drain_microphone

FRAME = bytes(640)  # 20 ms at 16 kHz


class BackloggedMicrophone(BaseInputTransport):
    """An input transport whose queue holds `frames` of the person's audio once it starts."""

    def __init__(self, frames: int) -> None:
        super().__init__(TransportParams(audio_in_enabled=True))
        self._frames = frames

    async def start(self, frame: StartFrame):
        await super().start(frame)
        await self.set_transport_ready(frame)
        for _ in range(self._frames):
            await self.push_audio_frame(
                InputAudioRawFrame(audio=FRAME, sample_rate=16000, num_channels=1)
            )


class SlowEar(FrameProcessor):
    """Takes a while over each frame of audio, in the pushing task (as a busy loop does)."""

    def __init__(self) -> None:
        super().__init__(enable_direct_mode=True)
        self.heard = 0

    async def process_frame(self, frame: Frame, direction: FrameDirection):
        await super().process_frame(frame, direction)
        if isinstance(frame, InputAudioRawFrame):
            await asyncio.sleep(0.002)
            self.heard += 1
            return
        await self.push_frame(frame, direction)


class MicrophoneOnly:
    """A transport as far as the lifecycle sees one: its input, and event handlers."""

    def __init__(self, source: FrameProcessor) -> None:
        self.source = source

    def input(self) -> FrameProcessor:
        return self.source

    def add_event_handler(self, event_name: str, handler: Any) -> None:
        pass


async def started_worker(
    source: FrameProcessor, ear: FrameProcessor
) -> tuple[PipelineWorker, asyncio.Task]:
    """A worker running `source` then `ear`, once its pipeline has started."""
    worker = PipelineWorker(Pipeline([source, ear]), **worker_options())
    started = asyncio.Event()

    async def on_started(worker: PipelineWorker, frame: Frame) -> None:
        started.set()

    worker.add_event_handler("on_pipeline_started", on_started)
    runner = WorkerRunner(handle_sigint=False)
    await runner.add_workers(worker)
    run = asyncio.create_task(runner.run())
    await asyncio.wait_for(started.wait(), timeout=10)
    return worker, run


async def run_and_end(frames: int, *, cancel: bool) -> int:
    """Run a pipeline with `frames` of audio queued, end it, and say how many were heard."""
    source, ear = BackloggedMicrophone(frames), SlowEar()
    worker, run = await started_worker(source, ear)
    lifecycle = SessionLifecycle(
        worker=worker,
        transport=MicrophoneOnly(source),  # type: ignore[arg-type]
        user_identity="ada",
    )
    await lifecycle.end("the person is done", cancel=cancel)
    await asyncio.wait_for(run, timeout=20)
    await lifecycle.close()
    return ear.heard


async def test_a_graceful_end_lets_the_queued_audio_in_first():
    # 100 frames queued (2 s of speech) take the ear 0.2 s: without the drain, Pipecat's input
    # transport cancels its audio task at the EndFrame and drops what is left.
    assert await run_and_end(100, cancel=False) == 100


async def test_a_cancelled_session_does_not_wait_for_the_queue():
    assert await run_and_end(100, cancel=True) < 100


async def test_the_drain_gives_up_after_its_time_and_says_so():
    source, ear = BackloggedMicrophone(1000), SlowEar()
    worker, run = await started_worker(source, ear)
    transport = MicrophoneOnly(source)
    assert not await drain_microphone(transport, timeout_s=0.1)  # type: ignore[arg-type]
    assert ear.heard < 1000
    await worker.cancel()
    await asyncio.wait_for(run, timeout=20)


async def test_a_transport_without_pipecats_audio_queue_is_drained_at_once():
    assert await drain_microphone(MicrophoneOnly(SlowEar()))  # type: ignore[arg-type]
