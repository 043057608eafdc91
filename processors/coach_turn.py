"""Coach or acknowledge: one note per turn telling the LLM what the plan still lacks."""

from __future__ import annotations

from pipecat.frames.frames import Frame, LLMContextFrame
from pipecat.processors.aggregators.llm_context import LLMContext
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor

import prompts
from processors.notes import note_message, without_notes
from quests.board import QuestBoard

NOTE_PREFIX = "[coach]"


# A person this likely to need coaching gets more of it.
COACH_MORE_FROM = 0.6


def coach_note(board: QuestBoard, needs_coaching: float | None = None) -> str:
    """The orchestration rule for the board as it stands.

    No main quest yet: ask for it. A main quest without success criteria: ask how they will
    know it is done. Otherwise: acknowledge in a sentence. A person who often needs coaching
    (from their patterns) gets a nudge to coach more.
    """
    main = board.main_quest
    criteria = [c for c in (main or {}).get("success_criteria") or [] if c]
    if main is None:
        note = prompts.render("turn_no_main_quest")
    elif not criteria:
        note = prompts.render("turn_no_success_criteria", main_quest=main["title"])
    else:
        note = prompts.render(
            "turn_acknowledge", main_quest=main["title"], criteria="; ".join(criteria)
        )
    if needs_coaching is not None and needs_coaching >= COACH_MORE_FROM:
        note = f"{note} {prompts.render('turn_coach_more')}"
    return note


class CoachTurnNote(FrameProcessor):
    """Puts the coach-or-acknowledge rule into the context as each turn goes to the LLM.

    Placed between the user aggregator and the LLM; the previous turn's note is replaced,
    never piled up, and the note sits at the end, after the person's words. A speculative
    context (an answer started before the turn is confirmed, see `services.turns`) is a
    copy of the session's: it gets its own note, and the session's context is left alone.
    """

    def __init__(self, *, context: LLMContext, board: QuestBoard, **kwargs):
        """Create the note-taker for a session's context and quest board."""
        # Direct mode: frames are handled in the task that pushes them, without a queue and
        # a task switch of our own per frame; nothing here waits on the frames' path.
        kwargs.setdefault("enable_direct_mode", True)
        super().__init__(**kwargs)
        self._context = context
        self._board = board
        self.needs_coaching: float | None = None

    async def process_frame(self, frame: Frame, direction: FrameDirection):
        """Refresh the note as a turn's context passes; pass every frame on."""
        await super().process_frame(frame, direction)
        if isinstance(frame, LLMContextFrame) and (
            frame.context is self._context or frame.speculation
        ):
            self._refresh_note(frame.context)
        await self.push_frame(frame, direction)

    def _refresh_note(self, context: LLMContext) -> None:
        messages = without_notes(context.get_messages(), NOTE_PREFIX)
        messages.append(note_message(coach_note(self._board, self.needs_coaching)))
        context.set_messages(messages)
