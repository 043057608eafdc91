"""The session's picture of the person's current quests, kept in memory."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from frames.quests import QuestOperationFrame


@dataclass
class QuestBoard:
    """The person's active quests as the session knows them, by id.

    Loaded from the quest store when the session starts and kept current from the quest
    operations that pass through the pipeline, so the coach never reads the database on a
    turn's path.
    """

    quests: dict[str, dict[str, Any]] = field(default_factory=dict)

    def load(self, quests: list[dict[str, Any]]) -> None:
        """Start from the person's active quests."""
        self.quests = {str(q["id"]): dict(q) for q in quests if q.get("status") == "active"}

    def apply(self, operation: QuestOperationFrame) -> None:
        """Take in one change to a quest."""
        quest = dict(operation.quest)
        quest_id = str(quest.get("id", ""))
        if operation.op == "set_main":
            for other in self.quests.values():
                if other.get("kind") == "main" and str(other.get("id")) != quest_id:
                    other["kind"] = "side"
        if quest.get("status", "active") == "active":
            self.quests[quest_id] = quest
        else:
            self.quests.pop(quest_id, None)

    @property
    def main_quest(self) -> dict[str, Any] | None:
        """The active main quest, if there is one."""
        return next((q for q in self.quests.values() if q.get("kind") == "main"), None)
