"""Keeps the session's quest board current from the quest operations that pass by."""

from __future__ import annotations

from pipecat.frames.frames import Frame
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor

from frames.quests import QuestOperationFrame
from quests.board import QuestBoard


class QuestBoardTracker(FrameProcessor):
    """Applies every `QuestOperationFrame` to the session's `QuestBoard`.

    Placed right after the LLM, where the operations of the quest tools and of the person's
    own edits on the phone all pass.
    """

    def __init__(self, *, board: QuestBoard, **kwargs):
        """Track `board`."""
        # Direct mode: frames are handled in the task that pushes them, without a queue and
        # a task switch of our own per frame; nothing here waits on the frames' path.
        kwargs.setdefault("enable_direct_mode", True)
        super().__init__(**kwargs)
        self._board = board

    async def process_frame(self, frame: Frame, direction: FrameDirection):
        """Apply quest operations; pass every frame on."""
        await super().process_frame(frame, direction)
        if isinstance(frame, QuestOperationFrame):
            self._board.apply(frame)
        await self.push_frame(frame, direction)
