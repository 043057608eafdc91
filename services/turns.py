"""When the person's turn ends, and whether KANE starts answering before it is sure.

Pipecat ends a turn when its stop strategy says so: by default the Smart Turn v3 model
once VAD hears silence, and the STT's final transcript is in. (KANE's Smart Turn runs on
the process's one loaded model, `services.shared_models`, not a copy per session.) When
the model judges the words unfinished, the turn stays open until the silence outlasts
Smart Turn's `stop_secs` (3 s), and only then does the LLM start. Preemptive generation
starts the LLM as soon as a final transcript arrives while the person is silent, on a
provisional copy of the context, and Pipecat's `SpeculationGate` in the LLM service holds
the answer back until the turn is confirmed. If the person goes on speaking, or the turn
ends with other words, the answer is discarded and the LLM runs again on the real turn; a
speculative answer that wants a tool call is withdrawn by Pipecat before the tool runs.
Nothing the person does not say reaches the context.

Wire it with `user_turn_params`::

    user_aggregator, assistant_aggregator = LLMContextAggregatorPair(
        context, user_params=user_turn_params(settings.kane_preemptive)
    )
"""

from __future__ import annotations

import asyncio

from loguru import logger
from pipecat.frames.frames import (
    Frame,
    TranscriptionFrame,
    VADUserStartedSpeakingFrame,
    VADUserStoppedSpeakingFrame,
)
from pipecat.processors.aggregators.llm_response_universal import LLMUserAggregatorParams
from pipecat.processors.frame_processor import FrameDirection, FrameProcessorSetup
from pipecat.turns.types import ProcessFrameResult, UserTurnSpeculation
from pipecat.turns.user_stop import (
    BaseUserTurnStopStrategy,
    EagerMatchPolicy,
    NormalizedMatch,
    TurnAnalyzerUserTurnStopStrategy,
    UserTurnStoppedParams,
)
from pipecat.turns.user_turn_strategies import UserTurnStrategies
from pipecat.utils.string import TextPartForConcatenation, concatenate_aggregated_text

from services.shared_models import build_turn_analyzer


class PreemptiveUserTurnStopStrategy(BaseUserTurnStopStrategy):
    """Starts the answer on a final transcript while another strategy decides the turn's end.

    Wraps a stop strategy (Smart Turn v3 by default) and passes it every frame. When a final
    transcript arrives while VAD hears the person silent, and the wrapped strategy has not
    ended the turn with it, this asks for a speculative inference on the turn's words so
    far. When the wrapped strategy then ends the turn, the speculation is confirmed if the
    words still match (`match_policy`), and the aggregator only writes the turn to the
    context; otherwise it is withdrawn and the turn is answered as usual. The person
    speaking again, a new final transcript, the turn ending some other way, or
    `speculation_timeout` passing also withdraw it.
    """

    def __init__(
        self,
        *,
        inner: BaseUserTurnStopStrategy | None = None,
        match_policy: EagerMatchPolicy | None = None,
        speculation_timeout: float = 5.0,
        **kwargs,
    ):
        """Wrap a stop strategy.

        Args:
            inner: The strategy that decides when the turn ends; `smart_turn_stop_strategy()`
                when None.
            match_policy: Whether the turn's words at its end still match the speculated
                ones; case, punctuation and spacing are ignored by default.
            speculation_timeout: Seconds a speculation may stay unconfirmed before it is
                withdrawn (the held answer would otherwise wait for ever).
            **kwargs: Passed on to `BaseUserTurnStopStrategy`.
        """
        super().__init__(**kwargs)
        self._inner = inner or smart_turn_stop_strategy()
        self._match_policy = match_policy or NormalizedMatch()
        self._speculation_timeout = speculation_timeout
        self._parts: list[TextPartForConcatenation] = []
        self._vad_speaking = False
        self._in_turn = False
        self._speculation: UserTurnSpeculation | None = None
        self._confirming: UserTurnSpeculation | None = None
        self._timeout_task: asyncio.Task | None = None
        # Set while the wrapped strategy handles a frame, to see whether it ended the turn.
        self._inner_decided = False
        self.speculations = 0
        self.confirmed = 0
        self._inner.add_event_handler("on_push_frame", self._on_inner_push_frame)
        self._inner.add_event_handler("on_broadcast_frame", self._on_inner_broadcast_frame)
        self._inner.add_event_handler(
            "on_user_turn_inference_triggered", self._on_inner_inference_triggered
        )
        self._inner.add_event_handler(
            "on_user_turn_speculation_cancelled", self._on_inner_speculation_cancelled
        )
        self._inner.add_event_handler("on_user_turn_stopped", self._on_inner_turn_stopped)

    @property
    def inner(self) -> BaseUserTurnStopStrategy:
        """The strategy that decides when the turn ends."""
        return self._inner

    @property
    def resolves_proposed_turn_stop_frames(self) -> bool:
        """Whatever the wrapped strategy does with proposals."""
        return self._inner.resolves_proposed_turn_stop_frames

    async def setup(self, setup: FrameProcessorSetup):  # type: ignore[override]
        """Set up this strategy and the wrapped one."""
        await super().setup(setup)
        await self._inner.setup(setup)

    async def cleanup(self):
        """Clean up the wrapped strategy and the speculation's timer."""
        await super().cleanup()
        await self._stop_timer()
        await self._inner.cleanup()

    async def handle_user_turn_started(self):
        """A new turn: forget the last one's words."""
        await self._inner.handle_user_turn_started()
        await self._withdraw("a new turn started")
        self._parts = []
        self._in_turn = True

    async def handle_user_turn_stopped(self):
        """The turn ended; a speculation still open was not confirmed by it."""
        await self._inner.handle_user_turn_stopped()
        if self._speculation is not None and self._speculation is self._confirming:
            await self._take()
            self.confirmed += 1
        else:
            await self._withdraw("the turn ended without confirming it")
        self._parts = []
        self._in_turn = False

    async def process_frame(self, frame: Frame) -> ProcessFrameResult:
        """Pass the frame to the wrapped strategy; speculate on a final transcript."""
        if isinstance(frame, VADUserStartedSpeakingFrame):
            self._vad_speaking = True
            await self._withdraw("the person speaks again")
        elif isinstance(frame, VADUserStoppedSpeakingFrame):
            self._vad_speaking = False
        elif isinstance(frame, TranscriptionFrame) and frame.text.strip():
            self._parts.append(
                TextPartForConcatenation(
                    frame.text, includes_inter_part_spaces=frame.includes_inter_frame_spaces
                )
            )
        self._inner_decided = False
        result = await self._inner.process_frame(frame)
        if (
            isinstance(frame, TranscriptionFrame)
            and frame.text.strip()
            and self._in_turn
            and not self._vad_speaking
            and not self._inner_decided
        ):
            await self._speculate()
        return result or ProcessFrameResult.CONTINUE

    @property
    def _text(self) -> str:
        return concatenate_aggregated_text(self._parts)

    async def _speculate(self) -> None:
        await self._withdraw("newer words arrived")
        self._speculation = UserTurnSpeculation(text=self._text)
        self.speculations += 1
        self._timeout_task = self.task_manager.create_task(
            self._expire(self._speculation), f"{self}::speculation_timeout"
        )
        logger.debug(f"{self}: answering ahead of the turn's end: [{self._speculation.text}]")
        await self.trigger_user_turn_inference_triggered(speculation=self._speculation)

    async def _withdraw(self, reason: str) -> None:
        speculation = await self._take()
        if speculation is not None:
            logger.debug(f"{self}: withdrawing the early answer ({reason})")
            await self.trigger_user_turn_speculation_cancelled()

    async def _take(self) -> UserTurnSpeculation | None:
        speculation, self._speculation = self._speculation, None
        await self._stop_timer()
        return speculation

    async def _stop_timer(self) -> None:
        if self._timeout_task is not None:
            task, self._timeout_task = self._timeout_task, None
            await self.cancel_task(task)

    async def _expire(self, speculation: UserTurnSpeculation) -> None:
        await asyncio.sleep(self._speculation_timeout)
        self._timeout_task = None
        if self._speculation is speculation:
            self._speculation = None
            logger.debug(f"{self}: early answer unconfirmed after {self._speculation_timeout} s")
            await self.trigger_user_turn_speculation_cancelled()

    # The wrapped strategy's events.

    async def _on_inner_push_frame(
        self, inner, frame: Frame, direction: FrameDirection = FrameDirection.DOWNSTREAM
    ):
        await self.push_frame(frame, direction)

    async def _on_inner_broadcast_frame(self, inner, frame_cls: type[Frame], **kwargs):
        await self.broadcast_frame(frame_cls, **kwargs)

    async def _on_inner_speculation_cancelled(self, inner):
        await self.trigger_user_turn_speculation_cancelled()

    async def _on_inner_inference_triggered(
        self, inner, speculation: UserTurnSpeculation | None = None
    ):
        self._inner_decided = True
        if speculation is not None:
            # The wrapped strategy speculates itself: its speculation replaces ours.
            await self._withdraw("the wrapped strategy speculates")
            await self.trigger_user_turn_inference_triggered(speculation=speculation)
        elif self._speculation is None or not self._matches(self._speculation):
            await self._withdraw("the turn's words changed")
            await self.trigger_user_turn_inference_triggered()
        # Else the speculation answers this turn: the inference has run already.

    async def _on_inner_turn_stopped(self, inner, params: UserTurnStoppedParams):
        self._inner_decided = True
        speculation = self._speculation
        if speculation is not None and self._matches(speculation):
            logger.debug(f"{self}: turn ended as speculated, keeping the early answer")
            # Settled in `handle_user_turn_stopped`, if the turn does end (it does not while
            # the person is speaking, and then the speculation stays open).
            self._confirming = speculation
            try:
                await self.trigger_user_turn_finalized(
                    enable_user_speaking_frames=params.enable_user_speaking_frames,
                    confirms_speculation=True,
                )
            finally:
                self._confirming = None
            return
        # The words changed after the inference ran: the aggregator answers the turn as it
        # ended when it writes it to the context.
        await self._withdraw("the turn's words changed")
        await self.trigger_user_turn_finalized(
            enable_user_speaking_frames=params.enable_user_speaking_frames,
            confirms_speculation=params.confirms_speculation,
        )

    def _matches(self, speculation: UserTurnSpeculation) -> bool:
        return self._match_policy.matches(speculation.text, self._text)


def smart_turn_stop_strategy() -> TurnAnalyzerUserTurnStopStrategy:
    """Pipecat's default stop strategy, Smart Turn v3 after VAD silence, on the shared model."""
    return TurnAnalyzerUserTurnStopStrategy(turn_analyzer=build_turn_analyzer())


def user_turn_params(preemptive: bool) -> LLMUserAggregatorParams:
    """The user aggregator's params: Pipecat's turn detection, answering early or not.

    Args:
        preemptive: Start the LLM on a final transcript before the turn is confirmed.

    Returns:
        What `LLMContextAggregatorPair(context, user_params=...)` takes: Pipecat's default
        strategies (Smart Turn v3 after VAD silence) with Smart Turn on the process's shared
        model, wrapped to answer early with preemption. Being explicit, they also take the
        place of any strategies a service recommends (KANE's STTs recommend none).
    """
    stop = smart_turn_stop_strategy()
    return LLMUserAggregatorParams(
        user_turn_strategies=UserTurnStrategies(
            stop=[PreemptiveUserTurnStopStrategy(inner=stop) if preemptive else stop]
        )
    )
