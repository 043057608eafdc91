"""KANE's offline language model: a deterministic rules coach, named as such.

It stands where `OpenAILLMService` stands and works the same machinery: it reads the
`LLMContext` of each `LLMContextFrame`, calls the quest tools through the handlers registered
with it (so `QuestTools` keeps the quests and the tap sees every function-call frame), is run
again with each tool's result in the context, and then speaks. What it calls and says the
rules of `quests/coach_rules.py` decide: what they understand of the person's words comes
from the partial-quest detector's rules (`processors/quest_cues.toml`), what they know of the
quests from the tool results in the context, what they say from the `prompts/offline_*.md`
templates.
"""

from __future__ import annotations

import re
from pathlib import Path

from loguru import logger
from pipecat.frames.frames import (
    Frame,
    FunctionCallFromLLM,
    LLMContextFrame,
    LLMFullResponseEndFrame,
    LLMFullResponseStartFrame,
)
from pipecat.processors.aggregators.llm_context import LLMContext
from pipecat.processors.frame_processor import FrameDirection
from pipecat.services.llm_service import LLMService
from pipecat.services.settings import LLMSettings
from pipecat.utils.types import is_given
from pydantic import BaseModel

import prompts
from processors.quest_cues import DEFAULT_RULES, QuestCues
from quests.coach_rules import CoachRules


class RulesCoachParams(BaseModel):
    """Settings of the rules coach.

    Parameters:
        rules_path: The cue rules (TOML) it reads the person's words with; the partial-quest
            detector's `processors/quest_cues.toml` by default.
    """

    rules_path: Path = DEFAULT_RULES


class RulesCoachLLMService(LLMService):
    """An LLM service with no model: rules that keep the quests and coach, offline.

    Each `LLMContextFrame` gets one response, between `LLMFullResponseStartFrame` and
    `LLMFullResponseEndFrame`, as from a real model: either one quest tool call, run with
    `run_function_calls` (the assistant aggregator then adds the call and its result to the
    context and runs the service again), or the reply, a sentence per `LLMTextFrame`. Run
    while its last call is still running (the person spoke meanwhile), the response is
    empty: the call's result runs it again, with the person's new words in the context.

    `CoachRules` (`quests/coach_rules.py`) decides which: the tool calls a good model would
    make for the person's words since it last spoke, one at a time and in order, then what it
    did and the coach rule of `processors/coach_turn.py`. Only the tools the context offers
    and this service has handlers for are called. The system instruction is accepted and
    kept, as a model's would be, but rules cannot follow it.
    """

    Settings = LLMSettings

    def __init__(
        self,
        *,
        params: RulesCoachParams | None = None,
        settings: LLMSettings | None = None,
        **kwargs,
    ):
        """Create the coach.

        Args:
            params: Where its rules are.
            settings: LLM settings, as for any LLM service (``system_instruction`` say);
                only ``model`` shows anywhere (in metrics).
            **kwargs: Passed on to `LLMService`.
        """
        store = LLMSettings(
            model="kane-rules-coach",
            system_instruction=None,
            temperature=None,
            max_tokens=None,
            top_p=None,
            top_k=None,
            frequency_penalty=None,
            presence_penalty=None,
            seed=None,
            filter_incomplete_user_turns=False,
            user_turn_completion_config=None,
            extra={},
        )
        if settings is not None:
            store.apply_update(settings)
        super().__init__(settings=store, **kwargs)
        self._params = params or RulesCoachParams()
        self._coach = CoachRules(QuestCues.load(self._params.rules_path))
        self._calls = 0

    def can_generate_metrics(self) -> bool:
        """The coach reports processing time and time to first byte, like a model."""
        return True

    async def process_frame(self, frame: Frame, direction: FrameDirection):
        """Answer each context; pass every other frame on."""
        await super().process_frame(frame, direction)
        if not isinstance(frame, LLMContextFrame):
            await self.push_frame(frame, direction)
            return
        await self.push_frame(LLMFullResponseStartFrame())
        await self.start_processing_metrics()
        try:
            await self._respond(frame.context)
        except Exception as e:  # a rule bug must not end the session, nor leave silence
            await self.push_error(error_msg=f"{self}: could not answer: {e}", exception=e)
            await self._say([prompts.render("offline_failed")])
        finally:
            await self.stop_processing_metrics()
            await self.push_frame(LLMFullResponseEndFrame())

    async def _respond(self, context: LLMContext) -> None:
        await self.start_ttfb_metrics()
        decision = self._coach.decide(context.get_messages(), self._tools(context))
        await self.stop_ttfb_metrics()
        if decision.call is None:
            await self._say(decision.lines)
            return
        name, arguments = decision.call
        self._calls += 1
        logger.debug(f"{self}: calling {name}")
        await self.run_function_calls(
            [
                FunctionCallFromLLM(
                    function_name=name,
                    tool_call_id=f"call_rules_{self._calls}",
                    arguments=arguments,
                    context=context,
                )
            ]
        )

    async def _say(self, lines: list[str]) -> None:
        # A sentence a frame, spaces included as a model streams them, so TTS starts early.
        sentences = [s for line in lines for s in re.split(r"(?<=[.!?])\s+", line.strip()) if s]
        for index, sentence in enumerate(sentences):
            await self._push_llm_text(sentence if index == 0 else f" {sentence}")

    def _tools(self, context: LLMContext) -> set[str]:
        """The tools the context offers and this service has handlers for."""
        tools = context.tools
        offered = {tool.name for tool in tools.standard_tools} if is_given(tools) else set()
        return {name for name in offered if self.has_function(name)}
