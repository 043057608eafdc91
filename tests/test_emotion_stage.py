import asyncio
import time

from pipecat.frames.frames import (
    ErrorFrame,
    InputAudioRawFrame,
    TranscriptionFrame,
    UserStartedSpeakingFrame,
    UserStoppedSpeakingFrame,
)
from pipecat.processors.aggregators.llm_context import LLMContext
from pipecat.tests.utils import SleepFrame, run_test

from emotion.analyzer import AnalyzerFailed, EmotionEstimate
from frames.emotion import EmotionFrame, ToneFrame
from processors.emotion import NOTE_PREFIX, EmotionParams, EmotionStage


class ScriptedAnalyzer:
    def __init__(self, name, labels, *, fail=False, delay=0.0):
        self.name, self.labels, self.fail, self.delay = name, list(labels), fail, delay
        self.turns, self.fed, self.closed = [], 0, False
        self.called_at: list[float] = []

    async def start(self):
        pass

    def feed(self, pcm, sample_rate):
        self.fed += len(pcm)

    async def analyze_turn(self, turn):
        self.turns.append(turn)
        self.called_at.append(time.monotonic())
        await asyncio.sleep(self.delay)
        if self.fail:
            raise AnalyzerFailed("connection dropped")
        label = self.labels.pop(0)
        return EmotionEstimate(
            label=label,
            scores={label: 0.9},
            valence=-0.5,
            arousal=0.8,
            source=self.name,
            features={"words_per_s": 3.2},
        )

    async def close(self):
        self.closed = True


def turn(text: str) -> list:
    audio = InputAudioRawFrame(audio=b"\x10\x00" * 320, sample_rate=16000, num_channels=1)
    # System frames jump the queue; the sleeps keep the turn in the order it happens.
    return [
        UserStartedSpeakingFrame(),
        SleepFrame(sleep=0.02),
        audio,
        TranscriptionFrame(text, "ada", "t"),
        audio,
        SleepFrame(sleep=0.02),
        UserStoppedSpeakingFrame(),
        SleepFrame(sleep=0.05),
    ]


async def test_each_turn_is_estimated_and_a_change_retunes_the_voice():
    context = LLMContext(messages=[{"role": "user", "content": "hi"}])
    analyzer = ScriptedAnalyzer("local", ["stressed", "stressed"])
    stage = EmotionStage(analyzers=[analyzer], context=context)
    down, _ = await run_test(stage, frames_to_send=turn("I'm so behind") + turn("still behind"))
    emotions = [f for f in down if isinstance(f, EmotionFrame)]
    assert [e.label for e in emotions] == ["stressed", "stressed"]
    assert [e.changed for e in emotions] == [True, False]
    tones = [f for f in down if isinstance(f, ToneFrame)]
    assert len(tones) == 1 and tones[0].speed < 1.0 and "calm" in tones[0].instructions.lower()
    notes = [m for m in context.get_messages() if str(m["content"]).startswith(NOTE_PREFIX)]
    assert len(notes) == 1 and "stressed" in notes[0]["content"]
    assert analyzer.turns[0].text == "I'm so behind" and analyzer.fed > 0
    # Every frame still went on.
    assert sum(isinstance(f, TranscriptionFrame) for f in down) == 2


async def test_a_failing_analyzer_falls_back_for_the_rest_of_the_session():
    hume = ScriptedAnalyzer("hume", [], fail=True)
    local = ScriptedAnalyzer("local", ["calm", "tired"])
    stage = EmotionStage(analyzers=[hume, local])
    down, up = await run_test(stage, frames_to_send=turn("one") + turn("two"))
    assert [f.source for f in down if isinstance(f, EmotionFrame)] == ["local", "local"]
    assert len(hume.turns) == 1 and hume.closed
    assert any(isinstance(f, ErrorFrame) and "'hume' failed" in f.error for f in up)


async def test_a_slow_analyzer_costs_the_conversation_nothing():
    slow = ScriptedAnalyzer("local", ["calm"], delay=0.5)
    stage = EmotionStage(analyzers=[slow])
    loop = asyncio.get_running_loop()
    started = loop.time()
    down, _ = await run_test(stage, frames_to_send=turn("hello"), send_end_frame=True)
    assert sum(isinstance(f, TranscriptionFrame) for f in down) == 1
    sent = sorted(type(f).__name__ for f in turn("x") if not isinstance(f, SleepFrame))
    assert sorted(type(f).__name__ for f in down[:5]) == sent
    assert isinstance(down[-1], EmotionFrame) or any(isinstance(f, EmotionFrame) for f in down)
    assert loop.time() - started < 2.0


async def test_a_turns_estimate_starts_once_its_llm_request_has_gone_out():
    waited, at_once = ScriptedAnalyzer("local", ["calm"]), ScriptedAnalyzer("local", ["calm"])
    for analyzer, after in ((waited, 0.05), (at_once, 0.0)):
        stage = EmotionStage(analyzers=[analyzer], params=EmotionParams(after_turn_s=after))
        await run_test(stage, frames_to_send=turn("hello"), send_end_frame=True)
    assert waited.called_at[0] - waited.turns[0].ended_at >= 0.05
    assert at_once.called_at[0] - at_once.turns[0].ended_at < 0.05
