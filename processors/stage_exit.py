"""The end of KANE's stages: frames pushed only for the tap go no further."""

from __future__ import annotations

from collections.abc import Sequence

from pipecat.frames.frames import Frame
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor

from frames.tap_only import TapOnlyFrame


class StageExit(FrameProcessor):
    """Stops the frames that only the tap reads (`TapOnlyFrame`) after KANE's stages.

    Quest drafts and emotion estimates are pushed for the journal and the phone, and the
    tap has them from their first push, in the stage that made them. Below the stages no
    processor reads them, and each would cost a hop of every processor there and a turn of
    the user aggregator's, the LLM's, the TTS's and the output's queues: a turn's final
    drafts would reach them with the turn's end, just ahead of its answer. Every other
    frame passes, in both directions.

    Build it with `stage_exit`, which leaves it out when there are no stages.
    """

    def __init__(self, **kwargs):
        """Create the exit.

        Args:
            **kwargs: Passed on to `FrameProcessor`.
        """
        # Direct mode: frames are handled in the task that pushes them, without a queue and
        # a task switch of our own per frame; nothing here waits on the frames' path.
        kwargs.setdefault("enable_direct_mode", True)
        super().__init__(**kwargs)

    async def process_frame(self, frame: Frame, direction: FrameDirection):
        """Pass every frame on but those pushed only for the tap."""
        await super().process_frame(frame, direction)
        if isinstance(frame, TapOnlyFrame) and direction == FrameDirection.DOWNSTREAM:
            return
        await self.push_frame(frame, direction)


def stage_exit(stages: Sequence[FrameProcessor]) -> list[FrameProcessor]:
    """The end of KANE's stages, if there are any.

    Args:
        stages: KANE's stages between STT and the user aggregator.

    Returns:
        What goes after them: a `StageExit`, or nothing.
    """
    return [StageExit()] if stages else []
