"""Frames pushed only for the tap: what it journals and tells the phone, read by no processor."""

from __future__ import annotations

from dataclasses import dataclass

from pipecat.frames.frames import DataFrame


@dataclass
class TapOnlyFrame(DataFrame):
    """A frame that no processor below KANE's stages reads.

    A stage pushes it so that the tap journals it and tells the phone (at its first push);
    the stages' end (`processors.stage_exit.StageExit`) stops it there, so that it does not
    cost every processor below a hop, and the user aggregator, the LLM, the TTS and the
    output transport a turn of their queues. A stage's frame that some processor below
    reads must not be one (a quest's change: the quest board tracks it).
    """
