"""What a session said, kept as it goes, for its conversation record."""

from __future__ import annotations

from dataclasses import dataclass, field

from pipecat.frames.frames import AggregatedTextFrame, Frame, TranscriptionFrame, TTSTextFrame

from frames.quests import QuestDraftFrame, QuestOperationFrame


@dataclass
class ConversationLog:
    """The person's final transcripts, KANE's spoken sentences and what became of the quests."""

    user: list[str] = field(default_factory=list)
    bot: list[str] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)
    quests_created: int = 0
    quest_refinements: int = 0
    correction_count: int = 0
    main_quest_identified: bool = False
    success_criteria_defined: bool = False

    def observe(self, frame: Frame) -> None:
        """Keep what `frame` adds to the conversation."""
        if isinstance(frame, QuestOperationFrame):
            self._count_operation(frame)
        elif isinstance(frame, QuestDraftFrame) and frame.retracted:
            self.correction_count += 1
        elif isinstance(frame, TranscriptionFrame) and frame.text.strip():
            self.user.append(frame.text.strip())
            self.lines.append(f"user: {frame.text.strip()}")
        elif (
            isinstance(frame, AggregatedTextFrame)
            and not isinstance(frame, TTSTextFrame)
            and getattr(frame, "will_be_spoken", False)
            and frame.text.strip()
        ):
            self.bot.append(frame.text.strip())
            self.lines.append(f"kane: {frame.text.strip()}")

    @property
    def transcript(self) -> str:
        """The conversation, a line per utterance, speaker first."""
        return "\n".join(self.lines)

    @property
    def ai_response(self) -> str:
        """Everything KANE said."""
        return " ".join(self.bot)

    def _count_operation(self, frame: QuestOperationFrame) -> None:
        if frame.op == "create":
            self.quests_created += 1
        elif frame.op in ("update", "set_main", "set_success_criteria"):
            self.quest_refinements += 1
        if frame.quest.get("kind") == "main" and frame.op in ("create", "set_main"):
            self.main_quest_identified = True
        if frame.op == "set_success_criteria" and frame.quest.get("success_criteria"):
            self.success_criteria_defined = True
