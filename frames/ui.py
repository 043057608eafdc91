"""Frames that carry what the person does on the phone into the pipeline."""

from __future__ import annotations

from dataclasses import dataclass, field

from pipecat.frames.frames import DataFrame


@dataclass
class UiStateFrame(DataFrame):
    """The phone's screen as the person sees it now.

    Parameters:
        current_screen: The screen shown.
        selected_quest: The id of the quest in focus, if any.
        visible_quest_ids: The quests on screen.
        received_at: When the worker received the state (seconds since the epoch).
    """

    # What the person did is kept even when they interrupt the bot.
    interruptible: bool = field(default=False, init=False)
    current_screen: str = ""
    selected_quest: str | None = None
    visible_quest_ids: list[str] = field(default_factory=list)
    received_at: float = 0.0


@dataclass
class UiEventFrame(DataFrame):
    """Something the person did on the phone: a tap, a swipe, an edit.

    Parameters:
        action: What they did.
        target: What they did it to.
        value: The new value, for an edit.
        received_at: When the worker received it (seconds since the epoch).
    """

    interruptible: bool = field(default=False, init=False)
    action: str = ""
    target: str = ""
    value: str | None = None
    received_at: float = 0.0


@dataclass
class QuestEditFrame(DataFrame):
    """The person changed a quest by hand.

    Parameters:
        quest_id: The quest they changed.
        changes: The fields they changed, with their new values.
        received_at: When the worker received it (seconds since the epoch).
    """

    interruptible: bool = field(default=False, init=False)
    quest_id: str = ""
    changes: dict = field(default_factory=dict)
    received_at: float = 0.0
