from collections import Counter

import pytest
from pipecat.frames.frames import Frame, InputAudioRawFrame, TranscriptionFrame
from pipecat.observers.base_observer import BaseObserver, FrameProcessed
from pipecat.pipeline.pipeline import Pipeline
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
from pipecat.tests.utils import run_test

from frames.emotion import EmotionFrame
from processors.emotion import EmotionStage
from processors.mic_lane import MicLane, is_mic_audio, mic_lane
from processors.recorder import AudioRecorder
from processors.user_audio import UserAudioStop
from storage.audio_store import LocalAudioStore
from tests.test_emotion_stage import ScriptedAnalyzer, turn


class Seen(FrameProcessor):
    """Passes every frame on and keeps what it was given."""

    def __init__(self):
        super().__init__(enable_direct_mode=True)
        self.frames: list[Frame] = []

    async def process_frame(self, frame: Frame, direction: FrameDirection):
        await super().process_frame(frame, direction)
        self.frames.append(frame)
        await self.push_frame(frame, direction)


def audio_of(frames) -> list[InputAudioRawFrame]:
    return [f for f in frames if isinstance(f, InputAudioRawFrame)]


async def test_the_microphone_skips_the_stages_but_reaches_listeners_and_the_aggregator():
    partial, aggregator = Seen(), Seen()
    analyzer = ScriptedAnalyzer("local", ["stressed"])
    emotion = EmotionStage(analyzers=[analyzer])
    lane = mic_lane([partial, emotion], aggregator)
    assert isinstance(lane[0], MicLane) and lane[1:] == [partial, emotion]

    sent = turn("I'm so behind")
    down, _ = await run_test(Pipeline([*lane, aggregator]), frames_to_send=sent)

    # The stage that does not listen saw the words but none of the audio...
    assert audio_of(partial.frames) == []
    assert any(isinstance(f, TranscriptionFrame) for f in partial.frames)
    # ...the listener heard all of it (and estimated the turn), the aggregator got it in order.
    assert analyzer.fed == sum(len(f.audio) for f in audio_of(sent))
    assert [f.label for f in down if isinstance(f, EmotionFrame)] == ["stressed"]
    assert audio_of(aggregator.frames) == audio_of(sent)
    assert any(isinstance(f, TranscriptionFrame) for f in aggregator.frames)


async def test_no_stages_no_lane():
    assert mic_lane([], Seen()) == []


class ProcessedAudio(BaseObserver):
    """Counts the microphone's frames each processor reported as processed."""

    def __init__(self):
        super().__init__()
        self.by: Counter[str] = Counter()

    async def on_process_frame(self, data: FrameProcessed):
        if isinstance(data.frame, InputAudioRawFrame):
            self.by[type(data.processor).__name__] += 1


async def test_the_microphone_passes_the_lane_and_the_stop_without_being_processed(tmp_path):
    # 50 frames a second: the lane and the stop hand them on as they are queued, without
    # Pipecat's processing of a frame (its handlers, `process_frame`, the observers' reports).
    aggregator, seen = Seen(), ProcessedAudio()
    recorder = AudioRecorder(session_id="s", store=LocalAudioStore(tmp_path))
    sent = turn("hello there")
    lane = mic_lane([Seen()], aggregator)
    down, _ = await run_test(
        Pipeline([*lane, aggregator, UserAudioStop(recorder=recorder), recorder]),
        frames_to_send=sent,
        observers=[seen],
    )
    recordings = await recorder.close()

    audio = audio_of(sent)
    assert seen.by["Seen"] == len(audio)  # the aggregator's stand-in
    assert seen.by["MicLane"] == seen.by["UserAudioStop"] == 0
    assert audio_of(aggregator.frames) == audio and audio_of(down) == []
    # ...and the recorder got every sample of it, from the stop.
    samples = sum(len(f.audio) for f in audio) // 2
    assert recordings.duration_s == pytest.approx(samples / audio[0].sample_rate)


def test_only_the_persons_audio_on_its_way_down_and_without_a_callback_takes_the_fast_path():
    async def callback(processor, frame, direction):
        pass

    frame = InputAudioRawFrame(audio=bytes(640), sample_rate=16000, num_channels=1)
    assert is_mic_audio(frame, FrameDirection.DOWNSTREAM)
    assert not is_mic_audio(frame, FrameDirection.DOWNSTREAM, callback)  # its callback must run
    assert not is_mic_audio(frame, FrameDirection.UPSTREAM)
    assert not is_mic_audio(TranscriptionFrame("hi", "u", "now"), FrameDirection.DOWNSTREAM)
