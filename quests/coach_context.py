"""The LLM context as the rules coach reads it: the person's latest words and the tool calls.

The rules coach (`quests/coach_rules.py`) keeps no state of its own between turns: what it
knows of the quests is what the tool results in the context say, replayed onto a
`QuestBoard`.
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
        calls: Tool calls made since the coach last spoke, in order.
        heard_anyone: Whether the context holds any words of the person at all.
    """

    words: str
    before: list[ToolCall]
    calls: list[ToolCall]
    heard_anyone: bool


def read_turn(messages: Sequence[Any]) -> CoachTurn:
    """Split the context at the coach's last words: the person's words since, the tool calls.

    Args:
        messages: The context's messages; those not in the standard (OpenAI) form are passed
            over.

    Returns:
        The turn: the person's words since the coach last spoke, and the tool calls before
        and since.
    """
    calls: dict[str, ToolCall] = {}
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
                    calls[str(tool_call.get("id"))] = call
                    order.append((index, call))
            if _text(message):
                turn_start = index + 1
        elif role == "tool":
            call = calls.get(str(message.get("tool_call_id")))
            if call is not None:
                call.result = _json(message.get("content"))
    users = [_text(m) for m in messages if isinstance(m, dict) and m.get("role") == "user"]
    words = " ".join(
        text
        for m in messages[turn_start:]
        if isinstance(m, dict) and m.get("role") == "user" and (text := _text(m))
    )
    return CoachTurn(
        words=words,
        before=[call for index, call in order if index < turn_start],
        calls=[call for index, call in order if index >= turn_start],
        heard_anyone=any(users),
    )


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
