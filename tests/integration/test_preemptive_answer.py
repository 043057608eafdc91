"""Preemptive answers through the real OpenAI LLM service and its speculation gate."""

import time

import pytest
from pipecat.frames.frames import (
    Frame,
    LLMTextFrame,
    TranscriptionFrame,
    UserStoppedSpeakingFrame,
    VADUserStartedSpeakingFrame,
    VADUserStoppedSpeakingFrame,
)
from pipecat.pipeline.pipeline import Pipeline
from pipecat.processors.aggregators.llm_context import LLMContext
from pipecat.processors.aggregators.llm_response_universal import (
    LLMContextAggregatorPair,
    LLMUserAggregatorParams,
)
from pipecat.processors.frame_processor import FrameProcessor
from pipecat.services.openai.llm import OpenAILLMService
from pipecat.tests.utils import SleepFrame, run_test
from pipecat.turns.user_stop import SpeechTimeoutUserTurnStopStrategy
from pipecat.turns.user_turn_strategies import UserTurnStrategies

from emulators import OpenAIEmulator
from services.turns import PreemptiveUserTurnStopStrategy

LLM_FIRST_TOKEN_S = 0.3
SILENCE_S = 0.6


class Arrivals(FrameProcessor):
    """Notes when frames reach the end of the pipeline."""

    def __init__(self):
        super().__init__()
        self.at: list[tuple[float, Frame]] = []

    async def process_frame(self, frame, direction):
        await super().process_frame(frame, direction)
        self.at.append((time.monotonic(), frame))
        await self.push_frame(frame, direction)

    def first(self, kind) -> float:
        return next(t for t, f in self.at if isinstance(f, kind))


@pytest.fixture
async def emu():
    async with OpenAIEmulator(default_reply="Got it. What comes next?") as emulator:
        emulator.set_behavior("chat", first_latency_s=LLM_FIRST_TOKEN_S, chunk_interval_s=0.01)
        yield emulator


async def talk(emu: OpenAIEmulator, preemptive: bool, *frames: Frame) -> Arrivals:
    inner = SpeechTimeoutUserTurnStopStrategy(user_speech_timeout=SILENCE_S)
    stop = PreemptiveUserTurnStopStrategy(inner=inner) if preemptive else inner
    user, _ = LLMContextAggregatorPair(
        LLMContext(),
        user_params=LLMUserAggregatorParams(user_turn_strategies=UserTurnStrategies(stop=[stop])),
    )
    llm = OpenAILLMService(
        api_key="test-key",
        base_url=emu.base_url,
        settings=OpenAILLMService.Settings(model="gpt-4.1-mini"),
    )
    arrivals = Arrivals()
    await run_test(Pipeline([user, llm, arrivals]), frames_to_send=list(frames))
    return arrivals


def said(text: str) -> list[Frame]:
    return [
        VADUserStartedSpeakingFrame(),
        SleepFrame(0.05),
        VADUserStoppedSpeakingFrame(),
        SleepFrame(0.05),
        TranscriptionFrame(text, "person", "t", finalized=True),
        SleepFrame(SILENCE_S + LLM_FIRST_TOKEN_S + 0.5),
    ]


async def test_the_early_answer_is_held_until_the_turn_ends_then_follows_at_once(emu):
    arrivals = await talk(emu, True, *said("My main quest is shipping the app."))
    turn_end = arrivals.first(UserStoppedSpeakingFrame)
    first_text = arrivals.first(LLMTextFrame)
    # Nothing of the answer reached the rest of the pipeline before the turn ended...
    assert first_text > turn_end
    # ... and it did not wait for the model there: it was ready.
    assert first_text - turn_end < LLM_FIRST_TOKEN_S / 2
    assert len(emu.chat_requests()) == 1
    text = "".join(f.text for _, f in arrivals.at if isinstance(f, LLMTextFrame))
    assert text == "Got it. What comes next?"


async def test_without_it_the_model_starts_when_the_turn_ends(emu):
    arrivals = await talk(emu, False, *said("My main quest is shipping the app."))
    turn_end = arrivals.first(UserStoppedSpeakingFrame)
    assert arrivals.first(LLMTextFrame) - turn_end >= LLM_FIRST_TOKEN_S
    assert len(emu.chat_requests()) == 1


async def test_an_early_answer_withdrawn_never_reaches_the_pipeline(emu):
    frames = [
        VADUserStartedSpeakingFrame(),
        VADUserStoppedSpeakingFrame(),
        SleepFrame(0.05),
        TranscriptionFrame("Call mom", "person", "t", finalized=True),
        SleepFrame(LLM_FIRST_TOKEN_S + 0.2),  # the early answer is in, and held
        VADUserStartedSpeakingFrame(),
        SleepFrame(0.1),
        VADUserStoppedSpeakingFrame(),
        SleepFrame(0.05),
        TranscriptionFrame("tomorrow morning.", "person", "t", finalized=True),
        SleepFrame(SILENCE_S + LLM_FIRST_TOKEN_S + 0.5),
    ]
    arrivals = await talk(emu, True, *frames)
    texts = "".join(f.text for _, f in arrivals.at if isinstance(f, LLMTextFrame))
    assert texts == "Got it. What comes next?"  # one answer, not two
    assert len(emu.chat_requests()) == 2
    last_user = emu.chat_requests()[-1]["messages"][-1]
    assert last_user == {"role": "user", "content": "Call mom tomorrow morning."}
