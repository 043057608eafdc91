"""What the rules coach says: what its tool calls did, then the coach rule.

The lines come from the `prompts/offline_*.md` templates. The coach rule is the one of
`processors/coach_turn.py`: no main quest, ask for it; a main quest without criteria, ask how
the person will know it is done; otherwise acknowledge.
"""

from __future__ import annotations

from typing import Any

import prompts
from processors.quest_cues import QuestCues
from quests.board import QuestBoard
from quests.coach_context import ToolCall
from quests.coach_planner import PlanStep, minor_words

# What it says about a tool call that worked: the template for a main quest, for a side one.
_SAID = {
    "create_quest": ("offline_created_main", "offline_created_side"),
    "update_quest": ("offline_main_now", "offline_renamed"),
    "set_main_quest": ("offline_main_now", "offline_main_now"),
    "set_success_criteria": ("offline_criteria_set", "offline_criteria_set"),
    "complete_quest": ("offline_completed", "offline_completed"),
    "delete_quest": ("offline_deleted", "offline_deleted"),
}
_NAMES_MAIN = {"offline_created_main", "offline_main_now"}


class CoachReplies:
    """Chooses the rules coach's reply, line by line."""

    def __init__(self, cues: QuestCues) -> None:
        """Create the replies.

        Args:
            cues: The cue rules; their verbs and minor words tell how a title reads inside a
                sentence.
        """
        self._cues = cues
        self._minor = minor_words(cues)

    def reply(
        self, steps: list[PlanStep], calls: list[ToolCall], board: QuestBoard, identity: bool
    ) -> list[str]:
        """What to say once the turn's tool calls are made.

        A step whose tool call failed stops the reply there: it says it could not. Side
        quests just added are said in one line. A reply that ends on a question gets no
        other; otherwise the coach rule follows.

        Args:
            steps: The turn's plan.
            calls: The tool calls made this turn, in the plan's order.
            board: The quests once the calls are done.
            identity: Whether the person asked what the coach is.

        Returns:
            The lines to say, in order.
        """
        lines = [prompts.render("offline_identity")] if identity else []
        sides: list[str] = []  # side quests just added, said in one line
        named_main = False
        results = iter(calls)
        for step in steps:
            call = next(results, None) if step.tool else None
            quest = call.quest if call else None
            if step.tool and quest and call and call.name == "create_quest" and not step.quiet:
                if quest.get("kind") == "side":
                    sides.append(self._inline(str(quest.get("title", ""))))
                    continue
            if sides:
                lines.append(self._sides(sides))
                sides = []
            if step.tool is None:
                lines.append(prompts.render(step.note, title=self._inline(step.title)))
            elif call is None:
                break
            elif not call.ok:
                error = call.result.get("error") if isinstance(call.result, dict) else None
                failed = "offline_not_found" if error == "unknown_quest" else "offline_failed"
                return [*lines, prompts.render(failed)]
            elif quest and not step.quiet and (said := _SAID.get(call.name)):
                template = said[0] if quest.get("kind") == "main" else said[1]
                lines.append(prompts.render(template, **self._vars(quest)))
                named_main = named_main or template in _NAMES_MAIN
        if sides:
            lines.append(self._sides(sides))
        if lines and lines[-1].endswith("?"):
            return lines  # one question at a time
        return lines + self.rule(board, said=bool(lines), named_main=named_main)

    def rule(self, board: QuestBoard, *, said: bool, named_main: bool) -> list[str]:
        """The coach rule: ask for the main quest, then for its criteria, else acknowledge.

        Args:
            board: The quests as they stand.
            said: Whether the reply says something already (then no acknowledgement).
            named_main: Whether the reply names the main quest already (then no reminder).

        Returns:
            The lines of the rule.
        """
        main = board.main_quest
        if main is None:
            return [prompts.render("offline_ask_main")]
        if not _criteria(main):
            ask = prompts.render("offline_ask_criteria")
            if named_main:
                return [ask]
            return [prompts.render("offline_main_reminder", **self._vars(main)), ask]
        return [] if said else [prompts.render("offline_acknowledge", **self._vars(main))]

    def _sides(self, titles: list[str]) -> str:
        if len(titles) == 1:
            return prompts.render("offline_created_side", title=titles[0])
        return prompts.render("offline_created_sides", titles=_and(titles))

    def _vars(self, quest: dict[str, Any]) -> dict[str, str]:
        title = str(quest.get("title", ""))
        criteria = [self._inline(c) for c in _criteria(quest)]
        joined = _and(criteria)
        task = self._inline(title)
        if title and self._cues.is_verb(title.split()[0].lower()):
            task = f"to {task}"
        return {"title": self._inline(title), "task": task, "criteria": joined}

    def _inline(self, text: str) -> str:
        """`text` inside a sentence: "Call the bank" becomes "call the bank", "Maria" stays."""
        first = text.split()[0].lower() if text.split() else ""
        if first == "i" or first.startswith("i'"):
            return text
        if first and (self._cues.is_verb(first) or first in self._minor or first == "all"):
            return text[0].lower() + text[1:]
        return text


def _criteria(quest: dict[str, Any]) -> list[str]:
    criteria = quest.get("success_criteria")
    return [c for c in criteria if isinstance(c, str) and c] if isinstance(criteria, list) else []


def _and(items: list[str]) -> str:
    """Joins items as said: "a", "a and b", "a, b, and c"."""
    if len(items) > 2:
        items = [", ".join(items[:-1]) + ",", items[-1]]
    return " and ".join(items)
