"""Coach or acknowledge: one note per turn telling the LLM what the plan still lacks."""

from __future__ import annotations

from pipecat.frames.frames import Frame, LLMContextFrame
from pipecat.processors.aggregators.llm_context import LLMContext
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor

import prompts
from quests.board import QuestBoard

NOTE_PREFIX = "[coach]"


def coach_note(board: QuestBoard) -> str:
    """The orchestration rule for the board as it stands.

    No main quest yet: ask for it. A main quest without success criteria: ask how they will
    know it is done. Otherwise: acknowledge in a sentence.
    """
    main = board.main_quest
    if main is None:
        return prompts.render("turn_no_main_quest")
    criteria = [c for c in main.get("success_criteria") or [] if c]
    if not criteria:
        return prompts.render("turn_no_success_criteria", main_quest=main["title"])
    return prompts.render(
        "turn_acknowledge", main_quest=main["title"], criteria="; ".join(criteria)
    )


class CoachTurnNote(FrameProcessor):
    """Puts the coach-or-acknowledge rule into the context as each turn goes to the LLM.

    Placed between the user aggregator and the LLM; the previous turn's note is replaced,
    never piled up, and the note sits at the end, after the person's words.
    """

    def __init__(self, *, context: LLMContext, board: QuestBoard, **kwargs):
        """Create the note-taker for a session's context and quest board."""
        super().__init__(**kwargs)
        self._context = context
        self._board = board

    async def process_frame(self, frame: Frame, direction: FrameDirection):
        """Refresh the note as a turn's context passes; pass every frame on."""
        await super().process_frame(frame, direction)
        if isinstance(frame, LLMContextFrame) and frame.context is self._context:
            messages = [
                m
                for m in self._context.get_messages()
                if not (
                    isinstance(m, dict)
                    and m.get("role") == "system"
                    and str(m.get("content", "")).startswith(NOTE_PREFIX)
                )
            ]
            messages.append({"role": "system", "content": coach_note(self._board)})
            self._context.set_messages(messages)
        await self.push_frame(frame, direction)
