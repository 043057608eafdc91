"""Which frames the phone hears about, as protocol messages."""

from __future__ import annotations

from pipecat.frames.frames import (
    AggregatedTextFrame,
    BotStartedSpeakingFrame,
    BotStoppedSpeakingFrame,
    Frame,
    FunctionCallInProgressFrame,
    InterimTranscriptionFrame,
    TranscriptionFrame,
    TTSTextFrame,
    UserStartedSpeakingFrame,
    UserStoppedSpeakingFrame,
)

from frames.emotion import EmotionFrame
from frames.quests import QuestDraftFrame, QuestOperationFrame
from protocol import (
    BotResponse,
    BotState,
    EmotionChanged,
    FinalTranscript,
    PartialTranscript,
    Quest,
    QuestCompleted,
    QuestCreated,
    QuestDeleted,
    QuestDraft,
    QuestUpdated,
    ServerData,
    SuccessCriteriaSet,
    ToolCall,
)
from tap.payloads import transcript_confidence

# The bot's state after each of these frames.
_STATE_AFTER: dict[type[Frame], str] = {
    UserStartedSpeakingFrame: "listening",
    UserStoppedSpeakingFrame: "thinking",
    BotStartedSpeakingFrame: "speaking",
    BotStoppedSpeakingFrame: "listening",
}

# Every other frame the phone may hear about is one of these.
_TRANSLATED = (
    InterimTranscriptionFrame,
    TranscriptionFrame,
    AggregatedTextFrame,
    QuestDraftFrame,
    QuestOperationFrame,
    EmotionFrame,
    FunctionCallInProgressFrame,
)


# What the phone hears of as it is pushed: what the person watches for while still
# talking (a quest card), and a tool call, which must come before the change it makes.
_TOLD_AT_ONCE = (QuestDraftFrame, QuestOperationFrame, FunctionCallInProgressFrame)


def is_told_at_once(frame: Frame) -> bool:
    """Whether the phone hears of `frame` as it is pushed rather than with its batch.

    A quest card (a draft, or a quest's change): a draft must reach the phone within 20 ms
    of the interim transcript that carries it (DESIGN.md §6). A tool call too: it must
    reach the phone before the tool runs, so before the quest card of the change it makes.
    """
    return isinstance(frame, _TOLD_AT_ONCE)


class PhoneTranslator:
    """Turns the frames of a session into the messages of the phone protocol.

    Stateless but for the bot's state, which is only announced when it changes.
    """

    def __init__(self) -> None:
        """Start with the bot listening."""
        self._state = "listening"

    def translate(self, frame: Frame) -> ServerData | None:
        """The message for `frame`, if the phone hears about it."""
        state = _STATE_AFTER.get(type(frame))
        if state is not None:
            if state == self._state:
                return None
            self._state = state
            return BotState(state=state)  # type: ignore[arg-type]
        if not isinstance(frame, _TRANSLATED):
            return None
        if isinstance(frame, InterimTranscriptionFrame):
            return PartialTranscript(text=frame.text, confidence=transcript_confidence(frame))
        if isinstance(frame, TranscriptionFrame):
            return FinalTranscript(text=frame.text, confidence=transcript_confidence(frame))
        if isinstance(frame, AggregatedTextFrame) and not isinstance(frame, TTSTextFrame):
            # The TTS announces each sentence before it synthesizes it.
            if getattr(frame, "will_be_spoken", False) and frame.text.strip():
                return BotResponse(text=frame.text)
            return None
        if isinstance(frame, QuestDraftFrame):
            return QuestDraft(
                draft_id=frame.draft_id,
                title=frame.title,
                kind=frame.kind,
                confidence=min(max(frame.confidence, 0.0), 1.0),
                source_words=frame.source_words,
                retracted=frame.retracted,
            )
        if isinstance(frame, QuestOperationFrame):
            return _quest_message(frame)
        if isinstance(frame, EmotionFrame):
            if not frame.changed:
                return None
            return EmotionChanged(
                label=frame.label,
                scores={k: _unit(v) for k, v in frame.scores.items()},
                valence=_bounded(frame.valence, -1.0, 1.0),
                arousal=_unit(frame.arousal),
            )
        if isinstance(frame, FunctionCallInProgressFrame):
            arguments = frame.arguments if isinstance(frame.arguments, dict) else {}
            return ToolCall(
                call_id=frame.tool_call_id, name=frame.function_name, arguments=arguments
            )
        return None


def _quest_message(frame: QuestOperationFrame) -> ServerData:
    quest = frame.quest
    quest_id = str(quest["id"])
    if frame.op == "create":
        return QuestCreated(
            quest=Quest(
                id=quest_id,
                title=quest["title"],
                kind=quest["kind"],
                status=quest.get("status", "active"),
                success_criteria=list(quest.get("success_criteria") or []),
                version=quest.get("version", 1),
            )
        )
    if frame.op == "set_success_criteria":
        return SuccessCriteriaSet(
            quest_id=quest_id, criteria=list(quest.get("success_criteria") or [])
        )
    if frame.op == "complete":
        return QuestCompleted(quest_id=quest_id)
    if frame.op == "delete":
        return QuestDeleted(quest_id=quest_id)
    return QuestUpdated(quest_id=quest_id, changes=frame.changes, version=quest.get("version", 1))


def _bounded(value: float, low: float, high: float) -> float:
    """A finite value within [low, high] (NaN becomes the middle)."""
    if value != value:  # NaN
        return (low + high) / 2
    return min(max(value, low), high)


def _unit(value: float) -> float:
    return _bounded(value, 0.0, 1.0)
