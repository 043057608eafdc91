"""The messages of KANE's wire protocol (DESIGN §3), both directions.

Every packet on the `kane` data topic is one JSON object, the envelope::

    {"v": 1, "type": "quest_created", "session_id": "…", "seq": 42, "ts": 1732435200123,
     "data": {…}}

`data` is one of the models below; each message model names its wire `type` in a class
variable. The iOS app is built against these shapes, so they change only by adding: a new
message type, or a new optional field. Adding a value to a `Literal` the server sends is *not*
additive for the app (its generated Swift enums would refuse it) — add a field instead.

Server → phone models validate what our own code builds (catching mistakes early, and
refusing NaN, which Swift cannot decode). Phone → server models are the trust boundary: they
forbid unknown fields, take no type coercion, and bound every string and list.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

QuestKind = Literal["main", "side"]
QuestStatus = Literal["active", "completed", "deleted"]
BotStateName = Literal["listening", "thinking", "speaking"]
UiAction = Literal["tap", "swipe", "edit", "long_press", "scroll"]

Confidence = Annotated[float, Field(ge=0.0, le=1.0)]

# Bounds on what the phone may send; a packet is at most 16 KiB anyway.
MAX_ID = 64
ShortId = Annotated[str, Field(min_length=1, max_length=MAX_ID)]


class ServerMessage(BaseModel):
    """Base of the `data` of messages the server sends to the phone."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    type: ClassVar[str]


class ClientMessage(BaseModel):
    """Base of the `data` of messages the phone sends to the server."""

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)

    type: ClassVar[str]


# --- Server → phone -------------------------------------------------------------------------


class SessionStarted(ServerMessage):
    """The session is live; the first message of every session.

    Attributes:
        session_id: The session's id, as in every envelope.
        user_id: The signed-in user the session belongs to.
        engines: Which engine each stage uses, e.g. `{"stt": "deepgram", "tts": "espeak"}`.
        protocol_version: The protocol version the server speaks.
    """

    type: ClassVar[str] = "session_started"

    session_id: str
    user_id: str
    engines: dict[str, str]
    protocol_version: int = 1


class PartialTranscript(ServerMessage):
    """An interim transcript of what the person is saying; later ones replace it.

    Attributes:
        text: The words heard so far in this utterance.
        confidence: The recognizer's confidence, 0–1, when it gives one.
    """

    type: ClassVar[str] = "partial_transcript"

    text: str
    confidence: Confidence | None = None


class FinalTranscript(ServerMessage):
    """The final transcript of one utterance.

    Attributes:
        text: What the person said.
        confidence: The recognizer's confidence, 0–1, when it gives one.
    """

    type: ClassVar[str] = "final_transcript"

    text: str
    confidence: Confidence | None = None


class QuestDraft(ServerMessage):
    """A quest card forming while the person is still speaking.

    Later drafts with the same `draft_id` replace earlier ones.

    Attributes:
        draft_id: Stable id of this draft across its updates.
        title: The quest's title as understood so far.
        kind: Main quest or side quest.
        confidence: How sure the detector is, 0–1.
        source_words: The words the draft was made from.
        retracted: True when the person took it back ("actually, no…").
    """

    type: ClassVar[str] = "quest_draft"

    draft_id: str
    title: str
    kind: QuestKind
    confidence: Confidence
    source_words: str
    retracted: bool = False


class Quest(BaseModel):
    """A quest as the server holds it (nested in messages, not a message itself).

    Attributes:
        id: The quest's id.
        title: The quest's title.
        kind: Main quest or side quest.
        status: Active, completed or deleted.
        success_criteria: How the person will know it is done.
        version: Rises by one with every change.
    """

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    id: str
    title: str
    kind: QuestKind
    status: QuestStatus
    success_criteria: list[str] = Field(default_factory=list)
    version: int = Field(ge=1)


class QuestCreated(ServerMessage):
    """A quest was created.

    Attributes:
        quest: The new quest.
    """

    type: ClassVar[str] = "quest_created"

    quest: Quest


class QuestUpdated(ServerMessage):
    """A quest changed.

    Attributes:
        quest_id: The quest that changed.
        changes: Only the fields that changed, with their new values (keys as in `Quest`).
        version: The quest's version after the change.
    """

    type: ClassVar[str] = "quest_updated"

    quest_id: str
    changes: dict[str, Any]
    version: int = Field(ge=1)


class QuestCompleted(ServerMessage):
    """A quest was completed.

    Attributes:
        quest_id: The completed quest.
    """

    type: ClassVar[str] = "quest_completed"

    quest_id: str


class QuestDeleted(ServerMessage):
    """A quest was deleted.

    Attributes:
        quest_id: The deleted quest.
    """

    type: ClassVar[str] = "quest_deleted"

    quest_id: str


class SuccessCriteriaSet(ServerMessage):
    """A quest's success criteria were set (replacing the earlier ones).

    Attributes:
        quest_id: The quest.
        criteria: The criteria, in order.
    """

    type: ClassVar[str] = "success_criteria_set"

    quest_id: str
    criteria: list[str]


class ToolCall(ServerMessage):
    """The coach is about to call a tool; sent before the tool runs.

    Attributes:
        call_id: The LLM's id for this call.
        name: The tool's name.
        arguments: The tool's arguments.
    """

    type: ClassVar[str] = "tool_call"

    call_id: str
    name: str
    arguments: dict[str, Any]


class BotResponse(ServerMessage):
    """What the coach is about to say; sent before it is spoken.

    Attributes:
        text: The reply's text.
    """

    type: ClassVar[str] = "bot_response"

    text: str


class BotState(ServerMessage):
    """The coach's state changed.

    Attributes:
        state: Listening, thinking or speaking.
    """

    type: ClassVar[str] = "bot_state"

    state: BotStateName


class EmotionChanged(ServerMessage):
    """The person's estimated emotion changed.

    Attributes:
        label: The leading emotion, e.g. "calm".
        scores: Score of each emotion the estimator knows.
        valence: Unpleasant (-1) to pleasant (1).
        arousal: Calm (low) to excited (high).
    """

    type: ClassVar[str] = "emotion_changed"

    label: str
    scores: dict[str, float]
    valence: float
    arousal: float


class PlannedQuest(BaseModel):
    """A quest pre-drafted for today (nested in `PlanDraft`).

    Attributes:
        title: The quest's title.
        kind: Main quest or side quest.
        confidence: How sure the planner is, 0–1.
    """

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    title: str
    kind: QuestKind
    confidence: Confidence


class PlanDraft(ServerMessage):
    """Quests pre-drafted for today from what KANE has learned about the person.

    Attributes:
        quests: The drafted quests, main quest first.
    """

    type: ClassVar[str] = "plan_draft"

    quests: list[PlannedQuest]


class ErrorMessage(ServerMessage):
    """Something went wrong, usually with a message the phone sent.

    Attributes:
        code: A machine-readable code, e.g. "invalid" or "too_large".
        message: What went wrong, for people.
        ref_seq: The `seq` of the phone's message this answers, when known.
    """

    type: ClassVar[str] = "error"

    code: str
    message: str
    ref_seq: int | None = None


class SessionEnded(ServerMessage):
    """The session is over; the last message of every session.

    Attributes:
        reason: Why it ended, e.g. "user_left".
    """

    type: ClassVar[str] = "session_ended"

    reason: str


# --- Phone → server -------------------------------------------------------------------------


class UiState(ClientMessage):
    """What the phone shows right now.

    Attributes:
        current_screen: The screen's name.
        selected_quest: The quest the person has selected, if any.
        visible_quest_ids: The quests on screen.
    """

    type: ClassVar[str] = "ui_state"

    current_screen: str = Field(max_length=MAX_ID)
    selected_quest: ShortId | None = None
    visible_quest_ids: list[ShortId] = Field(max_length=200)


class UiEvent(ClientMessage):
    """The person did something in the app.

    Attributes:
        action: What kind of gesture.
        target: What it was done to, e.g. "quest:q1".
        value: A value that came with it, e.g. edited text.
    """

    type: ClassVar[str] = "ui_event"

    action: UiAction
    target: str = Field(max_length=128)
    value: str | None = Field(default=None, max_length=1000)


class QuestChanges(ClientMessage):
    """The fields of a quest the person changed by hand; at least one is set.

    Attributes:
        title: The new title.
        kind: The new kind.
        success_criteria: The new success criteria, replacing the old ones.
        status: The new status.
    """

    model_config = ConfigDict(json_schema_extra={"minProperties": 1})

    title: str | None = Field(default=None, min_length=1, max_length=200)
    kind: QuestKind | None = None
    success_criteria: list[Annotated[str, Field(max_length=300)]] | None = Field(
        default=None, max_length=10
    )
    status: QuestStatus | None = None

    @model_validator(mode="after")
    def _one_change_at_least(self) -> QuestChanges:
        if all(getattr(self, name) is None for name in type(self).model_fields):
            raise ValueError("at least one change is required")
        return self


class QuestEdit(ClientMessage):
    """The person changed a quest by hand.

    Attributes:
        quest_id: The quest.
        changes: What changed.
    """

    type: ClassVar[str] = "quest_edit"

    quest_id: ShortId
    changes: QuestChanges


class Hello(ClientMessage):
    """The phone introduces itself; its first message of a session.

    Attributes:
        app_version: The app's version, e.g. "1.4.2".
        capabilities: Features the app supports, e.g. "quest_drafts".
    """

    type: ClassVar[str] = "hello"

    app_version: str = Field(max_length=32)
    capabilities: list[Annotated[str, Field(max_length=MAX_ID)]] = Field(max_length=32)


ServerData = (
    SessionStarted
    | PartialTranscript
    | FinalTranscript
    | QuestDraft
    | QuestCreated
    | QuestUpdated
    | QuestCompleted
    | QuestDeleted
    | SuccessCriteriaSet
    | ToolCall
    | BotResponse
    | BotState
    | EmotionChanged
    | PlanDraft
    | ErrorMessage
    | SessionEnded
)
"""The `data` of any server → phone message."""

ClientData = UiState | UiEvent | QuestEdit | Hello
"""The `data` of any phone → server message."""

SERVER_MESSAGES: dict[str, type[ServerMessage]] = {
    cls.type: cls
    for cls in (
        SessionStarted,
        PartialTranscript,
        FinalTranscript,
        QuestDraft,
        QuestCreated,
        QuestUpdated,
        QuestCompleted,
        QuestDeleted,
        SuccessCriteriaSet,
        ToolCall,
        BotResponse,
        BotState,
        EmotionChanged,
        PlanDraft,
        ErrorMessage,
        SessionEnded,
    )
}
"""Server → phone message classes by wire type, in the order of DESIGN §3."""

CLIENT_MESSAGES: dict[str, type[ClientMessage]] = {
    cls.type: cls for cls in (UiState, UiEvent, QuestEdit, Hello)
}
"""Phone → server message classes by wire type."""
