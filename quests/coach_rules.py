"""The rules of KANE's offline coach: from the context to the next tool call or the reply.

A turn goes as with a good model: list the quests first when they have not been seen yet,
then make the tool calls the person's words ask for, one at a time and in order, each once
the one before has answered, then speak. The parts:

- `quests/coach_context.py` reads the context: the person's words, the tool calls and what
  they answered;
- `quests/coach_planner.py` plans the tool calls from the words;
- `quests/coach_replies.py` chooses what to say.

It is plain Python: `services/rules_coach.py` makes it an LLM service.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import prompts
from processors.quest_cues import QuestCues
from quests.coach_context import ToolCall, read_turn, replay
from quests.coach_planner import CoachPlanner, PlanStep
from quests.coach_replies import CoachReplies
from quests.tools import quest_tools_schema

# The tools it keeps the quests with: it calls them only when the context offers them all.
QUEST_TOOLS = frozenset(tool.name for tool in quest_tools_schema().standard_tools)
# Tool calls in one turn at most: a plan longer than this is cut, so no turn loops.
_MAX_CALLS = 8

# Asked what it is. "What are you" only on its own ("what are you doing" is not about it).
_IDENTITY = re.compile(
    r"\bwho (?:are|r) (?:you|u)\b|\bwhat (?:are|r) (?:you|u)(?: exactly)?\s*(?:[?.!]|$)"
    r"|\bare (?:you|u) (?:a |an )?(?:real |actual |really )?(?:ai|a\.i\.|bot|robot|human|person"
    r"|chatgpt|chat gpt|gpt|language model|llm|machine|computer|program|real)\b"
    r"|\bwhat(?:'s| is) your name\b|\bwho am i (?:talking|speaking) (?:to|with)\b"
)


@dataclass
class CoachDecision:
    """What to do with a context: call one tool, or say some lines (none while a call runs).

    Parameters:
        call: The tool to call and its arguments; None to speak.
        lines: What to say when there is no call.
    """

    call: tuple[str, dict[str, Any]] | None = None
    lines: list[str] = field(default_factory=list)


class CoachRules:
    """The rules that keep the quests and coach, in place of a language model.

    From the person's words since it last spoke it plans the tool calls a good model would
    make: create_quest (main or side, the title in their words), set_success_criteria ("I'll
    know it's done when..."), update_quest on a correction ("actually..."), set_main_quest,
    complete_quest and delete_quest, and list_quests first when it has not seen the quests
    yet. A tool that answers with an error stops the plan: it says it could not. While a
    call has not answered it waits; a call Pipecat cancelled it makes again, once a listing
    shows it was not made after all. Without the quest tools it says it cannot keep quests.
    Asked what it is, it says it is KANE's offline coach, rules and not a language model.
    """

    def __init__(self, cues: QuestCues) -> None:
        """Create the rules.

        Args:
            cues: The partial-quest detector's cue rules, to read the person's words with.
        """
        self._planner = CoachPlanner(cues)
        self._replies = CoachReplies(cues)

    def decide(self, messages: Sequence[Any], tools: set[str]) -> CoachDecision:
        """The next tool call to make for the person's latest words, or what to say.

        Args:
            messages: The context's messages, tool calls and their results included.
            tools: The tools it may call.

        Returns:
            One tool call, or the lines of the reply; neither while a call is running.
        """
        turn = read_turn(messages)
        if turn.waiting:
            # Run while a call is running (the person spoke meanwhile): its result comes, and
            # the context with it runs the coach again. Calling it again now would make the
            # change twice, and saying it failed would be wrong: nothing to say yet.
            return CoachDecision()
        if turn.unsure and "list_quests" in tools:
            # A change cancelled while it ran may have been made all the same: look first.
            return CoachDecision(call=("list_quests", {}))
        identity = bool(_IDENTITY.search(turn.words.lower().replace("’", "'")))
        calls = list(turn.calls)
        listing = calls.pop(0) if calls and calls[0].name == "list_quests" else None
        board, previous = replay(turn.before + ([listing] if listing else []))
        if not turn.words:
            lines = [] if turn.heard_anyone else [prompts.render("offline_greeting")]
            lines += self._replies.rule(board, said=bool(lines), named_main=False)
            return CoachDecision(lines=lines)
        if listing is not None and not listing.ok:
            return CoachDecision(lines=[prompts.render("offline_failed")])
        listed = listing is not None or any(c.name == "list_quests" and c.ok for c in turn.before)
        steps = self._planner.plan(turn.words, board, previous, listed=listed)
        planned = [step for step in steps if step.tool][:_MAX_CALLS]
        if planned and not QUEST_TOOLS <= tools:
            lines = [prompts.render("offline_identity")] if identity else []
            lines.append(prompts.render("offline_no_tools"))
            lines += self._replies.rule(board, said=True, named_main=False)
            return CoachDecision(lines=lines)
        if steps and not listed and QUEST_TOOLS <= tools:
            return CoachDecision(call=("list_quests", {}))
        if len(calls) < len(planned) and all(call.ok for call in calls):
            arguments = _resolve(planned[len(calls)], calls)
            if arguments is not None:
                return CoachDecision(call=(str(planned[len(calls)].tool), arguments))
        final, _ = replay(turn.before + turn.calls)
        return CoachDecision(lines=self._replies.reply(steps, calls, final, identity))


def _resolve(step: PlanStep, calls: list[ToolCall]) -> dict[str, Any] | None:
    """The step's arguments, with the id of a quest created earlier in the turn filled in."""
    arguments = dict(step.args)
    ref = arguments.get("quest_id")
    if isinstance(ref, int):
        quest = calls[ref].quest if ref < len(calls) else None
        if quest is None:
            return None
        arguments["quest_id"] = str(quest["id"])
    return arguments
