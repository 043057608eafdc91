"""The idle watch: a session where nothing happens for too long is told so, once."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from loguru import logger
from pipecat.frames.frames import (
    BotSpeakingFrame,
    Frame,
    InterimTranscriptionFrame,
    StartFrame,
    TranscriptionFrame,
    UserSpeakingFrame,
    UserStartedSpeakingFrame,
)
from pipecat.observers.base_observer import BaseObserver, FramePushed
from pipecat.pipeline.worker import IDLE_TIMEOUT_SECS

# What Pipecat's idle observer counts as activity: the worker's default `idle_timeout_frames`
# and the StartFrame. A tuple, not a union: isinstance is quicker with one, on every push.
ACTIVITY_FRAMES: tuple[type[Frame], ...] = (
    StartFrame,
    BotSpeakingFrame,
    InterimTranscriptionFrame,
    TranscriptionFrame,
    UserSpeakingFrame,
    UserStartedSpeakingFrame,
)


class IdleWatch:
    """Tells a session, once, that nothing has happened in it for `timeout_s`.

    It does what Pipecat's worker does with `idle_timeout_secs` (and
    `cancel_on_idle_timeout=False`), without a worker observer: Pipecat puts every frame
    each processor processes, and each frame's first push, on the idle observer's queue and
    wakes its task. Here the pipeline's processors report their pushes to `inline_observer`
    (`TappedPipeline` sets them up with it), which only keeps the `time.monotonic()` of the
    last push of an activity frame; a task sleeps until that time plus `timeout_s` and, when
    it finds no later activity, awaits `on_idle`. While the person or the bot speaks
    (`UserSpeakingFrame`, `BotSpeakingFrame` come several times a second), the task wakes
    about once every `timeout_s`.

    The clock starts with `start`; the pipeline's StartFrame, once it flows, restarts it.
    """

    def __init__(
        self,
        *,
        timeout_s: float = IDLE_TIMEOUT_SECS,
        activity_frames: tuple[type[Frame], ...] = ACTIVITY_FRAMES,
    ):
        """Create the watch of one session.

        Args:
            timeout_s: How long without activity makes the session idle (Pipecat's default).
            activity_frames: The frames whose push counts as activity.
        """
        if timeout_s <= 0:
            raise ValueError(f"timeout_s must be positive, not {timeout_s}")
        self._timeout_s = timeout_s
        self._activity_frames = activity_frames
        self._last = time.monotonic()
        self._task: asyncio.Task | None = None

    @property
    def timeout_s(self) -> float:
        """How long without activity makes the session idle."""
        return self._timeout_s

    @property
    def running(self) -> bool:
        """Whether the watch is waiting for the session to go idle."""
        return self._task is not None and not self._task.done()

    def inline_observer(self, observer: BaseObserver | None) -> BaseObserver:
        """An observer for processors to report to: the watch, on the spot, then `observer`.

        Args:
            observer: The observer the processors had (the worker's, or the tap's), told
                everything.
        """
        return _InlineIdle(self, observer or BaseObserver())

    def start(self, on_idle: Callable[[], Awaitable[None]]) -> None:
        """Start watching; `on_idle` is awaited once, if the session goes idle.

        Args:
            on_idle: What to do when nothing has happened for `timeout_s`.
        """
        if self._task is not None:
            raise RuntimeError(f"{self}: already started")
        self._last = time.monotonic()
        self._task = asyncio.create_task(self._watch(on_idle), name="kane-idle-watch")

    async def stop(self) -> None:
        """Stop watching (safe to call more than once, and from within `on_idle`)."""
        task, self._task = self._task, None
        if task is None or task is asyncio.current_task():
            return
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    async def _watch(self, on_idle: Callable[[], Awaitable[None]]) -> None:
        while True:
            # A sleep, not an Event: setting one on every activity push would wake this task
            # each time, the cost the watch is here to avoid. Activity only moves the deadline.
            remaining = self._last + self._timeout_s - time.monotonic()
            if remaining <= 0:
                break
            await asyncio.sleep(remaining)
        logger.info(f"{self}: nothing happened for {self._timeout_s:g} s")
        try:
            await on_idle()
        except Exception as e:
            logger.error(f"{self}: while ending an idle session: {e}")

    def __str__(self) -> str:
        return f"IdleWatch({self._timeout_s:g} s)"


class _InlineIdle(BaseObserver):
    """What a pipeline's processors report to: the idle watch first, then `observer`.

    It is called for every push of every processor, so a push costs one call and a look-up
    of the frame's type, plus a clock read for an activity frame; every other report goes
    straight to the observer's own bound method.
    """

    def __init__(self, watch: IdleWatch, observer: BaseObserver):
        super().__init__()
        self._watch = watch
        self._activity_frames = watch._activity_frames
        # Whether each frame type seen counts as activity: a dict look-up costs a push a
        # fraction of an isinstance check against the tuple, which walks it on every miss.
        self._is_activity: dict[type[Frame], bool] = {}
        self._push = observer.on_push_frame
        for name in dir(BaseObserver):
            if name.startswith("on_") and name != "on_push_frame":
                setattr(self, name, getattr(observer, name))

    def on_push_frame(self, data: FramePushed) -> Coroutine[Any, Any, None]:
        """Note an activity frame's push, then hand back the observer's coroutine for it."""
        kind = type(data.frame)
        is_activity = self._is_activity.get(kind)
        if is_activity is None:
            is_activity = self._is_activity[kind] = issubclass(kind, self._activity_frames)
        if is_activity:
            self._watch._last = time.monotonic()
        return self._push(data)
