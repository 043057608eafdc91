"""The LLM context as the rules coach reads it: the person's latest words and the tool calls.

The rules coach (`quests/coach_rules.py`) keeps no state of its own between turns: what it
knows of the quests is what the tool results in the context say, replayed onto a
`QuestBoard`. Pipecat's assistant aggregator writes those results: the tool's answer, or
IN_PROGRESS while the call runs, or CANCELLED when the person interrupted it or it ran past
its time.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, cast

from pipecat.processors.aggregators.llm_context import LLMContextMessage, standard_message_text

from frames.quests import QuestOp, QuestOperationFrame
from quests.board import QuestBoard

# The quest operation each tool that changes a quest stands for.
_OPS: dict[str, QuestOp] = {
    "create_quest": "create",
    "update_quest": "update",
    "set_main_quest": "set_main",
    "set_success_criteria": "set_success_criteria",
    "complete_quest": "complete",
    "delete_quest": "delete",
}
# The results Pipecat's assistant aggregator writes for a call still running and for one
# cancelled (`pipecat/processors/aggregators/llm_response_universal.py`).
_RUNNING = "IN_PROGRESS"
_CANCELLED = "CANCELLED"


@dataclass
class ToolCall:
    """A tool call found in the context, with what it answered.

    Parameters:
        name: The tool called.
        arguments: Its arguments; empty when the context holds none that parse.
        result: What the tool answered, parsed from JSON where it is JSON; None while it runs.
    """

    name: str
    arguments: dict[str, Any]
    result: Any = None

    @property
    def ok(self) -> bool:
        """Whether the tool answered that it worked."""
        return isinstance(self.result, dict) and self.result.get("ok") is True

    @property
    def running(self) -> bool:
        """Whether the call has not answered yet: Pipecat's placeholder stands for its result."""
        return self.result == _RUNNING

    @property
    def cancelled(self) -> bool:
        """Whether Pipecat cancelled the call before it answered."""
        return self.result == _CANCELLED

    @property
    def quest(self) -> dict[str, Any] | None:
        """The quest a tool that worked answered with, if any."""
        quest = self.result.get("quest") if self.ok else None
        return quest if _is_quest(quest) else None


@dataclass
class CoachTurn:
    """The context as the coach reads it.

    Parameters:
        words: What the person said since the coach last spoke.
        before: Tool calls of earlier turns.
        calls: Tool calls made since the coach last spoke, in order, those cancelled settled
            (see `settle`): the turn's listing of the quests first if it made one, then the
            changes.
        heard_anyone: Whether the context holds any words of the person at all.
        waiting: Whether the turn's latest tool call has not answered yet.
        unsure: Whether a change was cancelled and no listing since tells if it was made.
    """

    words: str
    before: list[ToolCall]
    calls: list[ToolCall]
    heard_anyone: bool
    waiting: bool = False
    unsure: bool = False


def read_turn(messages: Sequence[Any]) -> CoachTurn:
    """Split the context at the coach's last words: the person's words since, the tool calls.

    Args:
        messages: The context's messages; those not in the standard (OpenAI) form are passed
            over.

    Returns:
        The turn: the person's words since the coach last spoke, and the tool calls before
        and since.
    """
    by_id: dict[str, ToolCall] = {}
    order: list[tuple[int, ToolCall]] = []
    turn_start = 0
    for index, message in enumerate(messages):
        if not isinstance(message, dict):
            continue  # another service's own format
        role = message.get("role")
        if role == "assistant":
            for tool_call in message.get("tool_calls") or []:
                call = _tool_call(tool_call)
                if call is not None:
                    by_id[str(tool_call.get("id"))] = call
                    order.append((index, call))
            if _text(message):
                turn_start = index + 1
        elif role == "tool":
            call = by_id.get(str(message.get("tool_call_id")))
            if call is not None:
                call.result = _json(message.get("content"))
    users = [_text(m) for m in messages if isinstance(m, dict) and m.get("role") == "user"]
    words = " ".join(
        text
        for m in messages[turn_start:]
        if isinstance(m, dict) and m.get("role") == "user" and (text := _text(m))
    )
    before = [call for index, call in order if index < turn_start]
    since = [call for index, call in order if index >= turn_start]
    calls, unsure = settle(before, since)
    return CoachTurn(
        words=words,
        before=before,
        calls=calls,
        heard_anyone=any(users),
        waiting=bool(since) and since[-1].running,
        unsure=unsure,
    )


def settle(before: Sequence[ToolCall], calls: Sequence[ToolCall]) -> tuple[list[ToolCall], bool]:
    """A turn's tool calls as they stand, those that did not answer settled.

    Pipecat cancels a call when the person interrupts it or it runs past its time; a call
    that still shows IN_PROGRESS with calls after it never answered either. A listing of
    the quests that did not answer is left out, so the coach lists them again. A change
    that did not answer may still have been made (the quest tools finish a write they
    started), and only a listing made after it tells: where that listing shows the change,
    the call stands as made, with the quest as listed; where not, it is left out, and its
    step is tried again. The listings made to tell are left out too: the turn's own listing
    is the one before its first change.

    Args:
        before: The tool calls of earlier turns, in order.
        calls: The turn's tool calls, in order.

    Returns:
        The turn's calls, and whether a change that did not answer has no listing after it.
    """
    settled: list[ToolCall] = []
    unsure = changed = False
    for index, call in enumerate(calls):
        answered = not (call.cancelled or call.running)
        if call.name == "list_quests":
            if answered and not changed and not settled:
                settled.append(call)
            continue
        changed = True
        if answered:
            settled.append(call)
            continue
        if call.name not in _OPS:
            continue
        later = (c for c in calls[index + 1 :] if c.name == "list_quests" and c.ok)
        listing = next(later, None)
        if listing is None:
            unsure = True
            continue
        known, _ = replay([*before, *settled])
        quest = _made(call, listing, known)
        if quest is not None:
            settled.append(ToolCall(call.name, call.arguments, {"ok": True, "quest": quest}))
    return settled, unsure


def replay(calls: Iterable[ToolCall]) -> tuple[QuestBoard, dict[str, Any] | None]:
    """The quests as the tool results tell them.

    Args:
        calls: Tool calls in the order they were made; those that failed are passed over.

    Returns:
        The board the results add up to, and the quest last changed if it is still on it.
    """
    board = QuestBoard()
    last: str | None = None
    for call in calls:
        if not call.ok:
            continue
        if call.name == "list_quests":
            quests = call.result.get("quests")
            if isinstance(quests, list):
                board.load([quest for quest in quests if _is_quest(quest)])
            continue
        op, quest = _OPS.get(call.name), call.quest
        if op is None or quest is None:
            continue
        demoted = call.result.get("demoted")
        if _is_quest(demoted):
            board.apply(QuestOperationFrame(op="update", quest=demoted))
        board.apply(QuestOperationFrame(op=op, quest=quest))
        last = str(quest["id"])
    return board, board.quests.get(last) if last else None


def _made(call: ToolCall, listing: ToolCall, known: QuestBoard) -> dict[str, Any] | None:
    """The quest as `listing` shows it, if the change `call` asked for shows there.

    Args:
        call: A change that did not answer.
        listing: A listing made after it.
        known: The quests as they were before `call`.

    Returns:
        The quest the change made or changed; for a quest completed or deleted, as it was
        with its new status. None when the listing does not show the change.
    """
    quests = listing.result.get("quests")
    listed = {str(q["id"]): q for q in quests if _is_quest(q)} if isinstance(quests, list) else {}
    args = call.arguments
    quest_id = str(args.get("quest_id"))
    if call.name == "create_quest":
        title = _clean(args.get("title"))
        fits = (q for qid, q in listed.items() if qid not in known.quests and q["title"] == title)
        return next(fits, None)
    if call.name in ("complete_quest", "delete_quest"):
        quest = known.quests.get(quest_id)
        if quest is None or quest_id in listed:
            return None
        return {**quest, "status": "completed" if call.name == "complete_quest" else "deleted"}
    wanted: dict[str, Any] = {"kind": "main"} if call.name == "set_main_quest" else {}
    if call.name == "update_quest":
        wanted = {key: _clean(args[key]) for key in ("title", "kind") if key in args}
    elif call.name == "set_success_criteria":
        criteria = args.get("criteria")
        if not isinstance(criteria, list):
            return None  # the store refuses such a change
        wanted = {"success_criteria": [_clean(c) for c in criteria]}
    quest = listed.get(quest_id)
    if quest is None or any(quest.get(key) != value for key, value in wanted.items()):
        return None
    return quest


def _clean(value: Any) -> Any:
    """A title, kind or criterion as the quest store keeps it."""
    return value.strip() if isinstance(value, str) else value


def _text(message: Any) -> str:
    return standard_message_text(cast(LLMContextMessage, message)).strip()


def _tool_call(tool_call: Any) -> ToolCall | None:
    if not isinstance(tool_call, dict) or not isinstance(tool_call.get("function"), dict):
        return None
    name = tool_call["function"].get("name")
    arguments = _json(tool_call["function"].get("arguments"))
    if not isinstance(name, str):
        return None
    return ToolCall(name, arguments if isinstance(arguments, dict) else {})


def _json(value: Any) -> Any:
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except ValueError:
        return value  # "IN_PROGRESS", "CANCELLED", a handler's plain words


def _is_quest(value: Any) -> bool:
    return (
        isinstance(value, dict)
        and isinstance(value.get("id"), str | int)
        and isinstance(value.get("title"), str)
    )
