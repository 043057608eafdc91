"""The emotion stage with Hume's realtime analyzer, and the local one when Hume drops."""

from pipecat.frames.frames import (
    ErrorFrame,
    InputAudioRawFrame,
    TranscriptionFrame,
    UserStartedSpeakingFrame,
    UserStoppedSpeakingFrame,
)
from pipecat.tests.utils import SleepFrame, run_test

from emotion.hume import HumeEmotionAnalyzer
from emotion.local import LocalEmotionAnalyzer
from emulators import Fault, HumeExpressionEmulator
from emulators.synth import silence, speech_like
from frames.emotion import EmotionFrame
from processors.emotion import EmotionStage

RATE = 16_000


def spoken_turn(text: str) -> list:
    # The microphone goes on sending after the words, as a phone's does.
    pcm = speech_like(text, RATE).pcm + silence(0.8, RATE)
    step = RATE * 2 // 50  # 20 ms
    frames: list = [UserStartedSpeakingFrame(), SleepFrame(sleep=0.02)]
    for offset in range(0, len(pcm), step):
        frames.append(
            InputAudioRawFrame(audio=pcm[offset : offset + step], sample_rate=RATE, num_channels=1)
        )
        frames.append(SleepFrame(sleep=0.02))
    frames += [TranscriptionFrame(text, "ada", "t"), SleepFrame(sleep=0.05)]
    frames += [UserStoppedSpeakingFrame(), SleepFrame(sleep=0.6)]
    return frames


async def test_hume_estimates_until_it_drops_then_the_local_analyzer_takes_over():
    async with HumeExpressionEmulator() as emulator:
        hume = HumeEmotionAnalyzer("test-key", base_url=emulator.base_url)
        stage = EmotionStage(analyzers=[hume, LocalEmotionAnalyzer()])
        first = spoken_turn("Today I ship the onboarding flow, I can't wait!")
        # Hume's connection drops at its next result: the rest of the session is local.
        emulator.behavior.fault, emulator.behavior.fault_after = Fault.DROP, 1
        later = spoken_turn("I am so tired, I barely slept at all.")
        down, up = await run_test(stage, frames_to_send=first + later + spoken_turn("Okay."))
    sources = [f.source for f in down if isinstance(f, EmotionFrame)]
    assert sources[0] == "hume", sources
    assert sources[-1] == "local" and len(sources) == 3, sources
    assert any(isinstance(f, ErrorFrame) and "'hume' failed" in f.error for f in up)
    # Nothing was lost on the way: every transcript still reached the end.
    assert sum(isinstance(f, TranscriptionFrame) for f in down) == 3
