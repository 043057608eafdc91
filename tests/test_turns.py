from pipecat.frames.frames import (
    EagerEndOfTurnCancelFrame,
    LLMContextFrame,
    TranscriptionFrame,
    UserStoppedSpeakingFrame,
    VADUserStartedSpeakingFrame,
    VADUserStoppedSpeakingFrame,
)
from pipecat.processors.aggregators.llm_context import LLMContext
from pipecat.processors.aggregators.llm_response_universal import (
    LLMContextAggregatorPair,
    LLMUserAggregatorParams,
)
from pipecat.tests.utils import SleepFrame, run_test
from pipecat.turns.types import ProcessFrameResult
from pipecat.turns.user_stop import (
    BaseUserTurnStopStrategy,
    SpeechTimeoutUserTurnStopStrategy,
    TurnAnalyzerUserTurnStopStrategy,
)
from pipecat.turns.user_turn_strategies import (
    UserTurnStrategies,
    default_user_turn_start_strategies,
)

from services.turns import PreemptiveUserTurnStopStrategy, user_turn_params


class EndsOnSecondTranscript(BaseUserTurnStopStrategy):
    """Ends the turn on the frame of its second transcript (as Smart Turn may, late)."""

    def __init__(self):
        super().__init__()
        self.seen = 0

    async def handle_user_turn_started(self):
        self.seen = 0

    async def process_frame(self, frame):
        if isinstance(frame, TranscriptionFrame):
            self.seen += 1
            if self.seen == 2:
                await self.trigger_user_turn_stopped()
        return ProcessFrameResult.CONTINUE


def user_aggregator(context: LLMContext, silence_s: float = 0.3, inner=None):
    """A user aggregator whose turns end `silence_s` after VAD stops, answering early."""
    strategy = PreemptiveUserTurnStopStrategy(
        inner=inner or SpeechTimeoutUserTurnStopStrategy(user_speech_timeout=silence_s)
    )
    params = LLMUserAggregatorParams(user_turn_strategies=UserTurnStrategies(stop=[strategy]))
    user, _ = LLMContextAggregatorPair(context, user_params=params)
    return user, strategy


def words(text: str) -> TranscriptionFrame:
    return TranscriptionFrame(text, "person", "t", finalized=True)


def of(frames, kind):
    return [f for f in frames if isinstance(f, kind)]


def user_messages(context: LLMContext) -> list[str]:
    return [m["content"] for m in context.get_messages() if m.get("role") == "user"]


async def test_the_answer_starts_on_the_final_words_and_the_turn_end_keeps_it():
    context = LLMContext()
    user, strategy = user_aggregator(context)
    down, _ = await run_test(
        user,
        frames_to_send=[
            VADUserStartedSpeakingFrame(),
            SleepFrame(0.05),
            VADUserStoppedSpeakingFrame(),
            SleepFrame(0.05),
            words("My main quest is shipping the app."),
            SleepFrame(0.6),
        ],
    )
    contexts = of(down, LLMContextFrame)
    # One inference, started before the turn ended, on a copy of the context with the words.
    assert len(contexts) == 1 and contexts[0].speculation
    assert user_messages(contexts[0].context) == ["My main quest is shipping the app."]
    assert down.index(contexts[0]) < down.index(of(down, UserStoppedSpeakingFrame)[0])
    assert of(down, EagerEndOfTurnCancelFrame) == []
    # The turn's words reach the session's context once, when the turn ends.
    assert user_messages(context) == ["My main quest is shipping the app."]
    assert (strategy.speculations, strategy.confirmed) == (1, 1)


async def test_speaking_again_withdraws_the_early_answer_and_the_whole_turn_is_answered_early():
    context = LLMContext()
    user, strategy = user_aggregator(context)
    down, _ = await run_test(
        user,
        frames_to_send=[
            VADUserStartedSpeakingFrame(),
            VADUserStoppedSpeakingFrame(),
            SleepFrame(0.05),
            words("My main quest is"),
            SleepFrame(0.1),
            VADUserStartedSpeakingFrame(),
            SleepFrame(0.1),
            VADUserStoppedSpeakingFrame(),
            SleepFrame(0.05),
            words("shipping the app."),
            SleepFrame(0.6),
        ],
    )
    contexts = of(down, LLMContextFrame)
    assert [c.speculation for c in contexts] == [True, True]
    assert len(of(down, EagerEndOfTurnCancelFrame)) == 1
    # The answer kept is the one to the whole turn.
    assert user_messages(contexts[-1].context) == ["My main quest is shipping the app."]
    assert user_messages(context) == ["My main quest is shipping the app."]
    assert (strategy.speculations, strategy.confirmed) == (2, 1)


def two_transcripts_in_the_silence(*, then_s: float) -> list:
    """The person stops, "Call mom." is final, then "Tomorrow."; `then_s` of silence after."""
    return [
        VADUserStartedSpeakingFrame(),
        VADUserStoppedSpeakingFrame(),
        SleepFrame(0.05),
        words("Call mom."),
        SleepFrame(0.05),
        words("Tomorrow."),
        SleepFrame(then_s),
    ]


async def test_newer_words_in_the_silence_replace_the_early_answer():
    context = LLMContext()
    user, strategy = user_aggregator(context)
    down, _ = await run_test(
        user,
        frames_to_send=two_transcripts_in_the_silence(then_s=0.6),
    )
    contexts = of(down, LLMContextFrame)
    assert [c.speculation for c in contexts] == [True, True]
    assert user_messages(contexts[-1].context) == ["Call mom. Tomorrow."]
    assert len(of(down, EagerEndOfTurnCancelFrame)) == 1
    assert user_messages(context) == ["Call mom. Tomorrow."]
    assert (strategy.speculations, strategy.confirmed) == (2, 1)


async def test_a_turn_that_ends_on_other_words_is_answered_anew():
    context = LLMContext()
    user, strategy = user_aggregator(context, inner=EndsOnSecondTranscript())
    down, _ = await run_test(
        user,
        frames_to_send=two_transcripts_in_the_silence(then_s=0.1),
    )
    contexts = of(down, LLMContextFrame)
    assert [c.speculation for c in contexts] == [True, False]
    assert len(of(down, EagerEndOfTurnCancelFrame)) == 1
    assert user_messages(context) == ["Call mom. Tomorrow."]
    assert (strategy.speculations, strategy.confirmed) == (1, 0)


async def test_words_while_the_person_still_speaks_start_nothing():
    context = LLMContext()
    user, strategy = user_aggregator(context)
    down, _ = await run_test(
        user,
        frames_to_send=[
            VADUserStartedSpeakingFrame(),
            SleepFrame(0.05),
            words("My main quest"),
            SleepFrame(0.1),
            VADUserStoppedSpeakingFrame(),
            SleepFrame(0.6),
        ],
    )
    assert [c.speculation for c in of(down, LLMContextFrame)] == [False]
    assert strategy.speculations == 0
    assert user_messages(context) == ["My main quest"]


def test_the_setting_chooses_pipecats_defaults_or_the_early_answer_around_them():
    plain = user_turn_params(False).user_turn_strategies
    assert plain is not None and plain.stop is not None
    [plain_stop] = plain.stop
    assert isinstance(plain_stop, TurnAnalyzerUserTurnStopStrategy)
    assert [type(s) for s in plain.start or []] == [
        type(s) for s in default_user_turn_start_strategies()
    ]
    strategies = user_turn_params(True).user_turn_strategies
    assert strategies is not None and strategies.stop is not None
    [stop] = strategies.stop
    assert isinstance(stop, PreemptiveUserTurnStopStrategy)
    assert isinstance(stop.inner, TurnAnalyzerUserTurnStopStrategy)
