"""The LLM's quest tools: their JSON schemas and the handlers that run them on the store."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from loguru import logger
from pipecat.adapters.llm.schemas.function_schema import FunctionSchema
from pipecat.adapters.llm.schemas.tools_schema import ToolsSchema
from pipecat.services.llm_service import FunctionCallParams, LLMService

from frames.quests import QuestOp, QuestOperationFrame
from storage.quests import (
    KINDS,
    MAX_CRITERIA,
    MAX_CRITERION,
    MAX_TITLE,
    Quest,
    QuestChange,
    QuestError,
    QuestStore,
)

_QUEST_ID = {
    "type": "string",
    "description": "The quest's id, as returned by create_quest or list_quests.",
}
_CONFIDENCE = {
    "type": "number",
    "minimum": 0,
    "maximum": 1,
    "description": "How sure you are that the person meant this, 0 to 1. Optional.",
}
_TITLE = {
    "type": "string",
    "maxLength": MAX_TITLE,
    "description": "The quest in a few words, in the person's own terms.",
}
_KIND = {
    "type": "string",
    "enum": list(KINDS),
    "description": "'main' for the day's one main quest, 'side' for everything else.",
}


def quest_tools_schema() -> ToolsSchema:
    """Returns the schemas of the quest tools, to put into the session's `LLMContext`."""
    return ToolsSchema(
        standard_tools=[
            FunctionSchema(
                name="create_quest",
                description=(
                    "Create a quest the person has clearly committed to for today. There can "
                    "be only one active main quest: while one exists, create new quests as "
                    "side quests and use set_main_quest to switch."
                ),
                properties={"title": _TITLE, "kind": _KIND, "confidence": _CONFIDENCE},
                required=["title", "kind"],
            ),
            FunctionSchema(
                name="update_quest",
                description=(
                    "Rename a quest or change its kind when the person corrects or refines "
                    "it. To make a quest the main quest, use set_main_quest instead."
                ),
                properties={
                    "quest_id": _QUEST_ID,
                    "title": _TITLE,
                    "kind": _KIND,
                    "confidence": _CONFIDENCE,
                },
                required=["quest_id"],
            ),
            FunctionSchema(
                name="set_main_quest",
                description=(
                    "Make a quest the day's main quest; the current main quest, if any, "
                    "becomes a side quest."
                ),
                properties={"quest_id": _QUEST_ID, "confidence": _CONFIDENCE},
                required=["quest_id"],
            ),
            FunctionSchema(
                name="set_success_criteria",
                description=(
                    "Set how the person will know a quest is done, replacing any criteria "
                    "it had. Short, checkable statements."
                ),
                properties={
                    "quest_id": _QUEST_ID,
                    "criteria": {
                        "type": "array",
                        "items": {"type": "string", "maxLength": MAX_CRITERION},
                        "maxItems": MAX_CRITERIA,
                        "description": "The success criteria, one statement each.",
                    },
                    "confidence": _CONFIDENCE,
                },
                required=["quest_id", "criteria"],
            ),
            FunctionSchema(
                name="complete_quest",
                description="Mark a quest done when the person says they finished it.",
                properties={"quest_id": _QUEST_ID, "confidence": _CONFIDENCE},
                required=["quest_id"],
            ),
            FunctionSchema(
                name="delete_quest",
                description="Remove a quest the person dropped or that was a misunderstanding.",
                properties={"quest_id": _QUEST_ID, "confidence": _CONFIDENCE},
                required=["quest_id"],
            ),
            FunctionSchema(
                name="list_quests",
                description="List the person's active quests with their ids.",
                properties={},
                required=[],
            ),
        ]
    )


class _ArgumentError(Exception):
    """The LLM's arguments do not fit the tool's schema."""


# A tool's work: the result for the LLM and the frames announcing what changed.
_Outcome = tuple[dict[str, Any], list[QuestOperationFrame]]


class QuestTools:
    """Runs the quest tools of one session against the quest store.

    Every handler answers the LLM through ``params.result_callback`` with
    ``{"ok": True, "quest": {...}}`` (``list_quests``: ``"quests"``) or
    ``{"ok": False, "error": code, "message": ...}``; it never raises. Each change that was
    written is announced with a `QuestOperationFrame` pushed downstream from the LLM.
    """

    def __init__(
        self,
        store: QuestStore,
        *,
        user_id: str,
        session_id: str | None,
        trigger_phrase: Callable[[], str | None],
    ) -> None:
        """Initializes the tools for one session.

        Args:
            store: The quest store.
            user_id: The session's user; the tools see and change only their quests.
            session_id: The session, recorded with every change.
            trigger_phrase: Returns the person's latest words, recorded with every change.
        """
        self._store = store
        self._user_id = user_id
        self._session_id = session_id
        self._trigger_phrase = trigger_phrase
        self._handlers: dict[str, Callable[[Mapping[str, Any]], Awaitable[_Outcome]]] = {
            "create_quest": self._create,
            "update_quest": self._update,
            "set_main_quest": self._set_main,
            "set_success_criteria": self._set_success_criteria,
            "complete_quest": self._complete,
            "delete_quest": self._delete,
            "list_quests": self._list,
        }

    def __str__(self) -> str:
        return f"QuestTools({self._user_id})"

    def register(self, llm: LLMService[Any]) -> None:
        """Registers every quest tool's handler with `llm`.

        Args:
            llm: The session's LLM service.
        """
        for name in self._handlers:
            llm.register_function(name, self.handle)

    async def handle(self, params: FunctionCallParams) -> None:
        """Runs one quest tool call and reports its result to the LLM.

        Args:
            params: The call, as Pipecat builds it.
        """
        name = params.function_name
        try:
            tool = self._handlers.get(name)
            if tool is None:
                raise _ArgumentError(f"'{name}' is not a quest tool.")
            if not isinstance(params.arguments, Mapping):
                raise _ArgumentError("The arguments must be a JSON object.")
            # A change written must also be announced, even if the person interrupts
            # and Pipecat cancels this call: shield the write and the push together.
            result, frames = await asyncio.shield(self._run(tool, params))
        except QuestError as e:
            logger.info(f"{self}: {name} refused: {e.code}")
            await params.result_callback({"ok": False, "error": e.code, "message": e.message})
            return
        except _ArgumentError as e:
            logger.info(f"{self}: {name} got bad arguments: {e}")
            await params.result_callback(
                {"ok": False, "error": "invalid_arguments", "message": str(e)}
            )
            return
        except Exception as e:  # the database away, say; the LLM must still get an answer
            logger.exception(f"{self}: {name} failed: {e}")
            await params.result_callback(
                {
                    "ok": False,
                    "error": "internal_error",
                    "message": "The quest could not be saved just now. Tell the person and "
                    "carry on; do not retry right away.",
                }
            )
            return
        logger.debug(f"{self}: {name} done ({len(frames)} changes)")
        await params.result_callback(result)

    async def _run(
        self,
        tool: Callable[[Mapping[str, Any]], Awaitable[_Outcome]],
        params: FunctionCallParams,
    ) -> _Outcome:
        result, frames = await tool(params.arguments)
        for frame in frames:
            # Once written, the change must reach the board and the phone even if an
            # interruption flushes the queues it passes through.
            frame.interruptible = False
            await params.llm.push_frame(frame)
        return result, frames

    async def _create(self, args: Mapping[str, Any]) -> _Outcome:
        phrase, confidence = self._trigger_phrase(), _confidence(args)
        quest = await self._store.create(
            self._user_id,
            _string(args, "title"),
            _string(args, "kind"),
            session_id=self._session_id,
            trigger_phrase=phrase,
            confidence=confidence,
            source="llm",
        )
        changes = {k: v for k, v in quest.to_dict().items() if k != "id"}
        frame = self._frame("create", quest, changes, phrase, confidence)
        return _ok(quest), [frame]

    async def _update(self, args: Mapping[str, Any]) -> _Outcome:
        quest_id = _string(args, "quest_id")
        title = _optional_string(args, "title")
        kind = _optional_string(args, "kind")
        if title is None and kind is None:
            raise QuestError("nothing_to_update", "Give a new title, a new kind, or both.")
        phrase, confidence = self._trigger_phrase(), _confidence(args)
        change = await self._store.update(
            quest_id,
            self._user_id,
            title=title,
            kind=kind,
            **self._provenance(phrase, confidence),
        )
        return _ok(change.quest), self._frames("update", [change], phrase, confidence)

    async def _set_main(self, args: Mapping[str, Any]) -> _Outcome:
        phrase, confidence = self._trigger_phrase(), _confidence(args)
        promoted, demoted = await self._store.set_main(
            _string(args, "quest_id"), self._user_id, **self._provenance(phrase, confidence)
        )
        result = _ok(promoted.quest)
        frames = []
        if demoted is not None:
            result["demoted"] = demoted.quest.to_dict()
            frames += self._frames("update", [demoted], phrase, confidence)
        frames += self._frames("set_main", [promoted], phrase, confidence)
        return result, frames

    async def _set_success_criteria(self, args: Mapping[str, Any]) -> _Outcome:
        criteria = args.get("criteria")
        if not isinstance(criteria, list) or not all(isinstance(c, str) for c in criteria):
            raise _ArgumentError("'criteria' must be a list of strings.")
        phrase, confidence = self._trigger_phrase(), _confidence(args)
        change = await self._store.set_success_criteria(
            _string(args, "quest_id"),
            self._user_id,
            criteria,
            **self._provenance(phrase, confidence),
        )
        return _ok(change.quest), self._frames("set_success_criteria", [change], phrase, confidence)

    async def _complete(self, args: Mapping[str, Any]) -> _Outcome:
        phrase, confidence = self._trigger_phrase(), _confidence(args)
        change = await self._store.complete(
            _string(args, "quest_id"), self._user_id, **self._provenance(phrase, confidence)
        )
        return _ok(change.quest), self._frames("complete", [change], phrase, confidence)

    async def _delete(self, args: Mapping[str, Any]) -> _Outcome:
        phrase, confidence = self._trigger_phrase(), _confidence(args)
        change = await self._store.delete(
            _string(args, "quest_id"), self._user_id, **self._provenance(phrase, confidence)
        )
        return _ok(change.quest), self._frames("delete", [change], phrase, confidence)

    async def _list(self, args: Mapping[str, Any]) -> _Outcome:
        quests = await self._store.list_active(self._user_id)
        return {"ok": True, "quests": [quest.to_dict() for quest in quests]}, []

    def _provenance(self, phrase: str | None, confidence: float | None) -> dict[str, Any]:
        return {
            "session_id": self._session_id,
            "trigger_phrase": phrase,
            "confidence": confidence,
            "source": "llm",
        }

    def _frames(
        self,
        op: QuestOp,
        changes: list[QuestChange],
        phrase: str | None,
        confidence: float | None,
    ) -> list[QuestOperationFrame]:
        # A change that changed nothing wrote no version and is not announced.
        return [
            self._frame(op, change.quest, change.changes, phrase, confidence)
            for change in changes
            if change.changes
        ]

    def _frame(
        self,
        op: QuestOp,
        quest: Quest,
        changes: dict[str, Any],
        phrase: str | None,
        confidence: float | None,
    ) -> QuestOperationFrame:
        return QuestOperationFrame(
            op=op,
            quest=quest.to_dict(),
            changes=changes,
            trigger_phrase=phrase,
            confidence=confidence,
            source="llm",
        )


def _ok(quest: Quest) -> dict[str, Any]:
    return {"ok": True, "quest": quest.to_dict()}


def _string(args: Mapping[str, Any], name: str) -> str:
    value = _optional_string(args, name)
    if value is None:
        raise _ArgumentError(f"'{name}' is required.")
    return value


def _optional_string(args: Mapping[str, Any], name: str) -> str | None:
    value = args.get(name)
    if value is not None and not isinstance(value, str):
        raise _ArgumentError(f"'{name}' must be a string.")
    return value


def _confidence(args: Mapping[str, Any]) -> float | None:
    value = args.get("confidence")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise _ArgumentError("'confidence' must be a number from 0 to 1.")
    # Slightly out of range is a model's rounding, not a reason to refuse the change.
    return min(max(float(value), 0.0), 1.0)
