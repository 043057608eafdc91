"""Where the person's audio stops travelling down the pipeline."""

from __future__ import annotations

from pipecat.frames.frames import Frame
from pipecat.processors.frame_processor import FrameCallback, FrameDirection, FrameProcessor

from processors.mic_lane import is_mic_audio
from processors.recorder import AudioRecorder


class UserAudioStop(FrameProcessor):
    """Takes the person's audio out of the pipeline right after the user aggregator.

    The microphone's frames (50 a second) are needed up to the user aggregator (its turn
    analyzer listens to them); below it the screen context, the coach note, the LLM, the quest
    board, the TTS and the output transport only pass them on, each at the cost of a hop. The
    recorder, the one processor below that wants them, is handed them here instead.
    """

    def __init__(self, *, recorder: AudioRecorder | None, **kwargs):
        """Stop the person's audio here.

        Args:
            recorder: Records the person's track; None when the session is not kept.
            **kwargs: Passed on to `FrameProcessor`.
        """
        # Direct mode, always: every frame is handled in the task that pushes it (no queue, no
        # task), so the audio taken in `queue_frame` keeps its place among the other frames.
        kwargs["enable_direct_mode"] = True
        super().__init__(**kwargs)
        self._recorder = recorder

    async def queue_frame(
        self,
        frame: Frame,
        direction: FrameDirection = FrameDirection.DOWNSTREAM,
        callback: FrameCallback | None = None,
    ):
        """Hand the person's audio to the recorder as it arrives; queue every other frame.

        Like `MicLane`, ahead of Pipecat's processing of a frame: 50 frames a second in the
        user aggregator's task, that stop here.
        """
        if is_mic_audio(frame, direction, callback):
            if self._recorder is not None:
                self._recorder.add_user_audio(frame)
            return
        await super().queue_frame(frame, direction, callback)

    async def process_frame(self, frame: Frame, direction: FrameDirection):
        """Pass every frame on (the person's audio never gets here, see `queue_frame`)."""
        await super().process_frame(frame, direction)
        await self.push_frame(frame, direction)
