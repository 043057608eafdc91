"""Frames of quests: drafts while the person speaks, operations when they become real."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from pipecat.frames.frames import DataFrame

from frames.tap_only import TapOnlyFrame

QuestKind = Literal["main", "side"]
QuestOp = Literal["create", "update", "set_main", "set_success_criteria", "complete", "delete"]


@dataclass
class QuestDraftFrame(TapOnlyFrame):
    """A quest the person seems to be stating, drafted before their turn ends.

    For the phone and the record only: the stages' end stops it (`TapOnlyFrame`).

    Parameters:
        draft_id: Stable while the draft grows; a new id is a new draft.
        title: The quest as the words so far put it.
        kind: "main" or "side".
        confidence: How sure the detector is, 0 to 1.
        source_words: The words that carry the quest.
        retracted: The person took it back ("scratch that", "no wait").
        from_final: Drafted from a final transcript rather than an interim one.
    """

    draft_id: str = ""
    title: str = ""
    kind: QuestKind = "side"
    confidence: float = 0.0
    source_words: str = ""
    retracted: bool = False
    from_final: bool = False


@dataclass
class QuestOperationFrame(DataFrame):
    """A change made to a quest, after it was written to the quest store.

    Parameters:
        op: What was done: create, update, set_main, set_success_criteria, complete, delete.
        quest: The quest after the change: id, title, kind, status, success_criteria, version.
        changes: The fields that changed, with their new values.
        trigger_phrase: What the person said that led to the change.
        confidence: How sure whoever made the change was, 0 to 1.
        source: Who made it: "llm" (through a tool) or "person" (on the phone).
    """

    op: QuestOp = "create"
    quest: dict[str, Any] = field(default_factory=dict)
    changes: dict[str, Any] = field(default_factory=dict)
    trigger_phrase: str | None = None
    confidence: float | None = None
    source: Literal["llm", "person"] = "llm"
