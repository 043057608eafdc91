"""What a session said, kept as it goes, for its conversation record."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from pipecat.frames.frames import AggregatedTextFrame, Frame, TranscriptionFrame, TTSTextFrame

from frames.emotion import EmotionFrame
from frames.quests import QuestDraftFrame, QuestOperationFrame
from tap.payloads import transcript_confidence

# The frames the conversation keeps something of.
_KEPT = (
    QuestOperationFrame,
    EmotionFrame,
    QuestDraftFrame,
    TranscriptionFrame,
    AggregatedTextFrame,
)


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
    emotional_journey: list[dict[str, Any]] = field(default_factory=list)
    paces: list[float] = field(default_factory=list)
    confidences: list[float] = field(default_factory=list)

    def observe(self, frame: Frame) -> None:
        """Keep what `frame` adds to the conversation."""
        if not isinstance(frame, _KEPT):
            return
        if isinstance(frame, QuestOperationFrame):
            self._count_operation(frame)
        elif isinstance(frame, EmotionFrame):
            self._add_emotion(frame)
        elif isinstance(frame, QuestDraftFrame) and frame.retracted:
            self.correction_count += 1
        elif isinstance(frame, TranscriptionFrame) and frame.text.strip():
            confidence = transcript_confidence(frame)
            if confidence is not None:
                self.confidences.append(confidence)
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

    def _add_emotion(self, frame: EmotionFrame) -> None:
        self.emotional_journey.append(
            {
                "at": round(time.time(), 3),
                "label": frame.label,
                "valence": round(frame.valence, 3),
                "arousal": round(frame.arousal, 3),
                "source": frame.source,
                "within_turn": frame.within_turn,
            }
        )
        pace = frame.features.get("words_per_s")
        if isinstance(pace, int | float) and pace > 0:
            self.paces.append(float(pace))

    @property
    def speaking_pace(self) -> float | None:
        """The person's mean speaking rate, in words per second of voiced time."""
        return sum(self.paces) / len(self.paces) if self.paces else None

    @property
    def clarity_score(self) -> float | None:
        """How clearly the person came across: the STT's mean confidence, 0 to 1."""
        return sum(self.confidences) / len(self.confidences) if self.confidences else None
