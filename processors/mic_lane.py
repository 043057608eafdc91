"""The microphone's lane: the person's audio past KANE's stages to the user aggregator."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, TypeGuard, runtime_checkable

from pipecat.frames.frames import Frame, InputAudioRawFrame
from pipecat.processors.frame_processor import FrameCallback, FrameDirection, FrameProcessor


@runtime_checkable
class MicListener(Protocol):
    """A stage that listens to the person's audio (the emotion stage)."""

    def hear(self, frame: InputAudioRawFrame) -> None:
        """Take one frame of the person's audio; must not wait and must not raise."""
        ...


def is_mic_audio(
    frame: Frame, direction: FrameDirection, callback: FrameCallback | None = None
) -> TypeGuard[InputAudioRawFrame]:
    """Whether a frame queued to a processor is the person's audio on its way down.

    The processors that take the microphone's frames out of the way handle them in
    `queue_frame`, ahead of Pipecat's processing of a frame; a frame queued with a callback
    goes the usual way, so its callback runs.
    """
    return (
        isinstance(frame, InputAudioRawFrame)
        and direction == FrameDirection.DOWNSTREAM
        and callback is None
    )


class MicLane(FrameProcessor):
    """Carries the microphone's frames from STT straight to the user aggregator.

    The microphone sends 50 frames a second and most of KANE's stages between STT and the
    aggregator (partial quests, quest edits) only pass them on, each at the cost of a Pipecat
    hop (a push, its observers, a `process_frame`). Placed right after STT, the lane hands
    each frame to the stages that listen (`MicListener.hear`) and then to the aggregator,
    which gets it exactly as it would from the last stage: `queue_frame`, downstream (the
    aggregator's turn analyzer is what needs the audio). Every other frame goes down the
    stages as before.

    Build it with `mic_lane`, which leaves it out when there are no stages to skip.
    """

    def __init__(
        self,
        *,
        listeners: Sequence[MicListener],
        aggregator: FrameProcessor,
        **kwargs,
    ):
        """Create the lane.

        Args:
            listeners: The stages that hear the person's audio, in pipeline order.
            aggregator: Where the audio goes next: the user aggregator, below the stages.
            **kwargs: Passed on to `FrameProcessor`.
        """
        # Direct mode, always: every frame is handled in the task that pushes it (no queue, no
        # task), so the audio taken in `queue_frame` keeps its place among the other frames.
        kwargs["enable_direct_mode"] = True
        super().__init__(**kwargs)
        self._listeners = tuple(listeners)
        self._aggregator = aggregator

    async def queue_frame(
        self,
        frame: Frame,
        direction: FrameDirection = FrameDirection.DOWNSTREAM,
        callback: FrameCallback | None = None,
    ):
        """Take the person's audio past the stages as STT pushes it; queue every other frame.

        The audio is handled here, before Pipecat's processing of a frame (its event handlers,
        `process_frame`, the observers' reports): a lane that only hands a frame on needs none
        of it, and this runs 50 times a second in STT's task.
        """
        if is_mic_audio(frame, direction, callback):
            for listener in self._listeners:
                listener.hear(frame)
            await self._aggregator.queue_frame(frame, direction)
            return
        await super().queue_frame(frame, direction, callback)

    async def process_frame(self, frame: Frame, direction: FrameDirection):
        """Pass every frame on (the person's audio never gets here, see `queue_frame`)."""
        await super().process_frame(frame, direction)
        await self.push_frame(frame, direction)


def mic_lane(stages: Sequence[FrameProcessor], aggregator: FrameProcessor) -> list[FrameProcessor]:
    """KANE's stages with the microphone's lane in front of them, if there are any.

    Args:
        stages: KANE's stages between STT and the user aggregator, in order.
        aggregator: The user aggregator that follows them.

    Returns:
        What goes between STT and the aggregator: the lane and the stages, or nothing.
    """
    if not stages:
        return []
    listeners = [stage for stage in stages if isinstance(stage, MicListener)]
    return [MicLane(listeners=listeners, aggregator=aggregator), *stages]
