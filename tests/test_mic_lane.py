from pipecat.frames.frames import Frame, InputAudioRawFrame, TranscriptionFrame
from pipecat.pipeline.pipeline import Pipeline
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
from pipecat.tests.utils import run_test

from frames.emotion import EmotionFrame
from processors.emotion import EmotionStage
from processors.mic_lane import MicLane, mic_lane
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
