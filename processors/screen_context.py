"""Tells the LLM what the person is looking at on the phone, in one short note per turn."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from loguru import logger
from pipecat.frames.frames import Frame, LLMContextFrame
from pipecat.processors.aggregators.llm_context import LLMContext
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor

from frames.ui import UiStateFrame
from processors.notes import note_message, without_notes

QuestTitle = Callable[[str], Awaitable[str | None]]

# Every note starts with this, so the previous one can be found and replaced.
NOTE_PREFIX = "[phone screen]"


@dataclass
class ScreenContextParams:
    """How old a screen state may be.

    Parameters:
        stale_after_s: Older states are marked as possibly out of date.
        drop_after_s: Older states are not mentioned at all.
        lookup_timeout_s: Longest wait for a quest's title.
    """

    stale_after_s: float = 120.0
    drop_after_s: float = 1800.0
    lookup_timeout_s: float = 0.3


class ScreenContextInjector(FrameProcessor):
    """Keeps the latest `ui_state` of the session and notes it in the LLM's context.

    Placed between the user aggregator and the LLM: when a turn's context goes to the LLM,
    the previous note is removed and one fresh note goes in just before the person's last
    words ("The person is looking at quest 'Ship onboarding' (id …)"), so notes never pile
    up. The quest's title is looked up on a task of its own when the state arrives, so a
    turn never waits for the database (a turn right after the state may name the quest by
    id only). A speculative context (an answer started before the turn is confirmed) is a
    copy of the session's and gets its own note.
    """

    def __init__(
        self,
        *,
        context: LLMContext,
        quest_title: QuestTitle | None = None,
        params: ScreenContextParams | None = None,
        clock: Callable[[], float] = time.time,
        **kwargs,
    ):
        """Create the injector.

        Args:
            context: The session's LLM context.
            quest_title: Looks up a quest's title by id (None: ids only).
            params: Ages at which a state is stale or dropped.
            clock: Seconds since the epoch (injectable for tests).
            **kwargs: Passed on to `FrameProcessor`.
        """
        # Direct mode: frames are handled in the task that pushes them, without a queue and
        # a task switch of our own per frame; nothing here waits on the frames' path.
        kwargs.setdefault("enable_direct_mode", True)
        super().__init__(**kwargs)
        self._context = context
        self._quest_title = quest_title
        self._params = params or ScreenContextParams()
        self._clock = clock
        self._state: UiStateFrame | None = None
        self._description: str | None = None
        self._lookup: asyncio.Task | None = None

    async def process_frame(self, frame: Frame, direction: FrameDirection):
        """Remember screen states; refresh the note as a turn's context passes."""
        await super().process_frame(frame, direction)
        if isinstance(frame, UiStateFrame):
            await self._take_state(frame)
        elif isinstance(frame, LLMContextFrame) and (
            frame.context is self._context or frame.speculation
        ):
            self._refresh_note(frame.context)
        await self.push_frame(frame, direction)

    async def cleanup(self):
        """Stop a title lookup still running."""
        await super().cleanup()
        if self._lookup is not None:
            await self.cancel_task(self._lookup)
            self._lookup = None

    async def _take_state(self, state: UiStateFrame) -> None:
        """Describe the state at once, by ids; its quest's title follows from a task."""
        self._state = state
        self._description = self._describe(state, title=None)
        if self._lookup is not None:
            await self.cancel_task(self._lookup)
            self._lookup = None
        if state.selected_quest and self._quest_title is not None:
            self._lookup = self.create_task(self._name_quest(state), f"{self}::quest_title")

    async def _name_quest(self, state: UiStateFrame) -> None:
        assert self._quest_title is not None and state.selected_quest
        try:
            # The database is off the frames' path: a slow one costs the title, never time.
            async with asyncio.timeout(self._params.lookup_timeout_s):
                title = await self._quest_title(state.selected_quest)
        except Exception as e:
            logger.warning(f"{self}: quest title not found: {e!r}")
            return
        finally:
            self._lookup = None
        if title and self._state is state:
            self._description = self._describe(state, title=title)

    def _describe(self, state: UiStateFrame, *, title: str | None) -> str:
        screen = state.current_screen or "an unnamed"
        parts = [f"The person is on the {screen} screen"]
        if state.selected_quest:
            named = f"quest '{title}' " if title else "quest "
            parts.append(f", looking at {named}(id {state.selected_quest})")
        if state.visible_quest_ids:
            parts.append(f"; {len(state.visible_quest_ids)} quests are visible")
        return "".join(parts) + "."

    def _refresh_note(self, context: LLMContext) -> None:
        messages = without_notes(context.get_messages(), NOTE_PREFIX)
        note = self._note()
        if note is not None:
            # Just before the person's last words, so it reads as the turn's situation.
            users = [i for i, m in enumerate(messages) if _is_user(m)]
            messages.insert(users[-1] if users else len(messages), note_message(note))
        context.set_messages(messages)

    def _note(self) -> str | None:
        if self._state is None or self._description is None:
            return None
        age = self._clock() - self._state.received_at
        if age > self._params.drop_after_s:
            return None
        if age > self._params.stale_after_s:
            return f"{NOTE_PREFIX} {self._description} (as of {age / 60:.0f} min ago; may be stale)"
        return f"{NOTE_PREFIX} {self._description}"


def _is_user(message: object) -> bool:
    return isinstance(message, dict) and message.get("role") == "user"
