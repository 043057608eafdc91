"""Applies the person's own quest edits from the phone, and tells the LLM about them."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from loguru import logger
from pipecat.frames.frames import EndFrame, Frame
from pipecat.processors.aggregators.llm_context import LLMContext
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor

from frames.quests import QuestOp, QuestOperationFrame
from frames.ui import QuestEditFrame
from processors.notes import note_message
from storage.quests import Quest, QuestChange, QuestError, QuestStore

# Every note starts with this, so notes about the phone's edits can be told apart.
NOTE_PREFIX = "[phone edit]"
_FIELDS = ("title", "kind", "success_criteria", "status")


@dataclass
class QuestEditParams:
    """How long the end of a session waits for edits still being written.

    Parameters:
        drain_timeout_s: Most seconds an `EndFrame` waits for pending edits.
    """

    drain_timeout_s: float = 5.0


class QuestEditApplier(FrameProcessor):
    """Writes each `QuestEditFrame` to the quest store as the person's own change.

    For each edit it pushes `QuestOperationFrame`s (source "person") downstream and adds
    one short developer note to the LLM's context ("On their phone, the person renamed
    quest 'X' to 'Y'."), so the coach knows on its next turn. Edits are applied one after
    another on a task of their own, so a slow database never holds up the frames of the
    conversation, and an interruption cannot cancel an edit halfway. An edit that cannot
    be applied (unknown quest, invalid change, database away) is logged and dropped; the
    tap has already journaled it and the session goes on. Edit frames are consumed; every
    other frame passes on. Place it before the LLM, e.g. right after STT.
    """

    def __init__(
        self,
        *,
        store: QuestStore,
        user_id: str,
        session_id: str | None,
        context: LLMContext,
        params: QuestEditParams | None = None,
        **kwargs,
    ):
        """Create the applier.

        Args:
            store: The quest store.
            user_id: The session's user; edits touch only their quests.
            session_id: The session, recorded with every change.
            context: The session's LLM context, which gets the notes.
            params: How long the session's end waits for pending edits.
            **kwargs: Passed on to `FrameProcessor`.
        """
        # Direct mode: frames are handled in the task that pushes them, without a queue and
        # a task switch of our own per frame; nothing here waits on the frames' path.
        kwargs.setdefault("enable_direct_mode", True)
        super().__init__(**kwargs)
        self._store = store
        self._user_id = user_id
        self._session_id = session_id
        self._context = context
        self._params = params or QuestEditParams()
        self._edits: asyncio.Queue[QuestEditFrame] = asyncio.Queue()
        self._worker: asyncio.Task | None = None

    async def process_frame(self, frame: Frame, direction: FrameDirection):
        """Queue quest edits; let pending edits finish before the end; pass the rest on."""
        await super().process_frame(frame, direction)
        if isinstance(frame, QuestEditFrame):
            self._edits.put_nowait(frame)
            if self._worker is None:
                self._worker = self.create_task(self._apply_edits(), f"{self}::edits")
            return
        if isinstance(frame, EndFrame):
            await self._drain()
        await self.push_frame(frame, direction)

    async def cleanup(self):
        """Stop applying edits."""
        await super().cleanup()
        if self._worker is not None:
            await self.cancel_task(self._worker)
            self._worker = None

    async def _drain(self) -> None:
        if self._worker is None:
            return
        try:
            async with asyncio.timeout(self._params.drain_timeout_s):
                await self._edits.join()
        except TimeoutError:
            logger.warning(f"{self}: {self._edits.qsize()} quest edits left unwritten at the end")

    async def _apply_edits(self) -> None:
        while True:
            edit = await self._edits.get()
            try:
                await self._apply(edit)
            except QuestError as e:
                logger.warning(f"{self}: edit of quest {edit.quest_id} refused: {e.code}: {e}")
            except Exception as e:  # the database away, say; the session goes on
                logger.error(f"{self}: edit of quest {edit.quest_id} not written: {e}")
            finally:
                self._edits.task_done()

    async def _apply(self, edit: QuestEditFrame) -> None:
        unknown = set(edit.changes) - set(_FIELDS)
        if unknown or not edit.changes:
            raise QuestError("invalid_edit", f"cannot change {sorted(unknown) or 'nothing'}")
        before = await self._store.get(edit.quest_id, self._user_id)
        if before is None:
            raise QuestError("unknown_quest", "no such quest of this user")
        provenance: dict[str, Any] = {
            "session_id": self._session_id,
            "trigger_phrase": None,
            "confidence": 1.0,
            "source": "person",
        }
        wanted = {name: edit.changes[name] for name in _FIELDS if name in edit.changes}
        # Making a quest the main one demotes the current main quest: by their own hand,
        # the person means it, so it goes through set_main rather than being refused.
        to_main = wanted.get("kind") == "main" and before.kind != "main"
        if to_main:
            del wanted["kind"]
        operations: list[tuple[QuestOp, QuestChange]] = []
        quest = before
        if wanted:
            change = await self._store.update(edit.quest_id, self._user_id, **wanted, **provenance)
            operations.append((_op_of(change.changes), change))
            quest = change.quest
        if to_main and quest.status == "active":
            promoted, demoted = await self._store.set_main(quest.id, self._user_id, **provenance)
            if demoted is not None:
                operations.append(("update", demoted))
            operations.append(("set_main", promoted))
        elif to_main:
            change = await self._store.update(quest.id, self._user_id, kind="main", **provenance)
            operations.append(("update", change))
        operations = [(op, change) for op, change in operations if change.changes]
        for op, change in operations:
            frame = QuestOperationFrame(
                op=op,
                quest=change.quest.to_dict(),
                changes=change.changes,
                confidence=1.0,
                source="person",
            )
            # Written is written: an interruption must not flush it on its way to the board.
            frame.interruptible = False
            await self.push_frame(frame)
        if operations:
            note = _note(before, operations)
            self._context.add_message(note_message(note))
            logger.debug(f"{self}: {note}")


def _op_of(changes: dict[str, Any]) -> QuestOp:
    if set(changes) == {"status"}:
        if changes["status"] == "completed":
            return "complete"
        if changes["status"] == "deleted":
            return "delete"
    if set(changes) == {"success_criteria"}:
        return "set_success_criteria"
    return "update"


def _note(before: Quest, operations: list[tuple[QuestOp, QuestChange]]) -> str:
    parts: list[str] = []
    demoted: list[str] = []
    for op, change in operations:
        quest, changes = change.quest, change.changes
        if quest.id != before.id:
            demoted.append(f"'{quest.title}' became a side quest")
            continue
        if "title" in changes:
            parts.append(f"renamed quest '{before.title}' to '{quest.title}'")
        if op == "set_main" or changes.get("kind") == "main":
            parts.append(f"made '{quest.title}' the main quest")
        elif changes.get("kind") == "side":
            parts.append(f"made '{quest.title}' a side quest")
        if "success_criteria" in changes:
            criteria = changes["success_criteria"]
            parts.append(
                f"set the success criteria of '{quest.title}' to: {'; '.join(criteria)}"
                if criteria
                else f"cleared the success criteria of '{quest.title}'"
            )
        status = changes.get("status")
        if status == "completed":
            parts.append(f"marked '{quest.title}' done")
        elif status == "deleted":
            parts.append(f"deleted '{quest.title}'")
        elif status == "active":
            parts.append(f"reopened '{quest.title}'")
    said = f"On their phone, the person {' and '.join(parts)} (quest id {before.id})"
    return f"{NOTE_PREFIX} {'; '.join([said, *demoted])}."
