"""A pipeline whose pushes the tap and the idle watch see as they happen, no task between."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

from pipecat.frames.frames import Frame
from pipecat.pipeline.pipeline import Pipeline
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor, FrameProcessorSetup

from session.idle import IdleWatch
from tap.observer import FrameTap


class TappedPipeline(Pipeline):
    """A `Pipeline` whose every push a `FrameTap` (and an `IdleWatch`) sees inline.

    Pipecat gives each of a worker's observers a queue and a task: every frame processed
    and every first push is put on the queue and the task woken, whatever the observer
    does with it, which costs a pipeline tens of microseconds a frame. A processor reports
    its pushes to the observer of its `FrameProcessorSetup`; this pipeline sets its
    processors up (nested pipelines included) with one that tells the tap on the spot and
    hands everything on to the worker's observer, so the worker's own observers see what
    they always did. A frame that enters from outside is seen when the pipeline's source
    pushes it to the first processor. A frame that leaves is done with, so the pipeline
    tells the tap (`FrameTap.frame_left`), which does its timing then.

    The session's `IdleWatch`, if given, is told of pushes the same way (tap or no tap),
    instead of Pipecat's idle observer (`PipelineWorker(idle_timeout_secs=None)`).

    Use it for the worker's whole pipeline, instead of `Pipeline`, and leave the tap out
    of the worker's `observers`::

        PipelineWorker(TappedPipeline([...], tap=tap, idle=idle), ...)
    """

    def __init__(
        self,
        processors: Sequence[FrameProcessor],
        *,
        tap: FrameTap | None = None,
        idle: IdleWatch | None = None,
        **kwargs: Any,
    ):
        """Create the pipeline.

        Args:
            processors: The processors, in order, as for `Pipeline`.
            tap: The tap that sees every push; None for none.
            idle: The session's idle watch, told of every push; None for none. With neither,
                this is a plain `Pipeline`.
            **kwargs: Passed on to `Pipeline`.
        """
        super().__init__(processors, **kwargs)
        self._tap = tap
        self._idle = idle

    async def push_frame(self, frame: Frame, direction: FrameDirection = FrameDirection.DOWNSTREAM):
        """Push a frame out of the pipeline, then tell the tap it has left."""
        await super().push_frame(frame, direction)
        if self._tap is not None:
            self._tap.frame_left()

    async def setup(self, setup: FrameProcessorSetup):  # type: ignore[override]
        """Set up the pipeline and its processors, with the tap and idle watch on their pushes."""
        if self._tap is not None or self._idle is not None:
            # A copy: the worker's setup is shared with the processors outside this pipeline.
            setup = copy.copy(setup)
            if self._idle is not None:
                setup.observer = self._idle.inline_observer(setup.observer)
            if self._tap is not None:
                setup.observer = self._tap.inline_observer(setup.observer)
        await super().setup(setup)
