"""Threads for a session's background work, at a lower priority than the event loops.

The recorder's writes and the emotion estimates run off the event loop but on the same
cores as the loops that carry every session's audio. When such a thread wakes, the kernel
may hand it the core of a loop that has frames to move, and every session on that loop
waits. The threads of this pool run at niceness +10 (on Linux a thread's own), so the
scheduler gives them a loop's core only when the loop does not want it: measured at 24
sessions, the loops' preemptions in KANE's sessions went from 22% to 10% over bare's
(BENCHMARKS.md). Work a turn waits for (offline speech, for one) stays on asyncio's own
executor.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

from loguru import logger

BACKGROUND_NICENESS = 10
"""How much lower than the process the background threads run (`nice` steps)."""

_P = ParamSpec("_P")
_T = TypeVar("_T")

_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def background_pool() -> ThreadPoolExecutor:
    """The process's background threads (as many as asyncio's default executor would have)."""
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(
                max_workers=min(32, (os.cpu_count() or 1) + 4),
                thread_name_prefix="kane-background",
                initializer=_lower_priority,
            )
        return _pool


def _lower_priority() -> None:
    try:
        # Linux: PRIO_PROCESS with a thread's id sets that thread's niceness alone.
        thread = threading.get_native_id()
        os.setpriority(
            os.PRIO_PROCESS, thread, os.getpriority(os.PRIO_PROCESS, thread) + BACKGROUND_NICENESS
        )
    except OSError as e:  # elsewhere the work still runs, at the process's priority
        logger.debug(f"background thread keeps the process's priority: {e}")


async def in_background(func: Callable[_P, _T], /, *args: _P.args, **kwargs: _P.kwargs) -> _T:
    """Run `func` on a background thread and wait for it, as `asyncio.to_thread` does.

    The caller's context variables go with it; its exceptions come back to the caller.
    """
    call = functools.partial(contextvars.copy_context().run, func, *args, **kwargs)
    return await asyncio.get_running_loop().run_in_executor(background_pool(), call)
