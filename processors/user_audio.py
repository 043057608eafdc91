"""Where the person's audio stops travelling down the pipeline."""

from __future__ import annotations

from pipecat.frames.frames import Frame, InputAudioRawFrame
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor

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
        # Direct mode: the frame is handled in the task that pushed it (no queue, no task).
        kwargs.setdefault("enable_direct_mode", True)
        super().__init__(**kwargs)
        self._recorder = recorder

    async def process_frame(self, frame: Frame, direction: FrameDirection):
        """Hand the person's audio to the recorder; pass every other frame on."""
        await super().process_frame(frame, direction)
        if isinstance(frame, InputAudioRawFrame) and direction == FrameDirection.DOWNSTREAM:
            if self._recorder is not None:
                await self._recorder.add_user_audio(frame)
            return
        await self.push_frame(frame, direction)
