"""The background threads: off the loop, lower in priority, context and errors carried."""

from __future__ import annotations

import contextvars
import os
import threading

import pytest

from session.background import BACKGROUND_NICENESS, in_background

_who = contextvars.ContextVar("who", default="nobody")


def _where() -> tuple[int, int, str, str]:
    thread = threading.get_native_id()
    return (
        thread,
        os.getpriority(os.PRIO_PROCESS, thread),
        threading.current_thread().name,
        _who.get(),
    )


async def test_work_runs_on_a_background_thread_below_the_loops_priority_with_the_callers_context():
    _who.set("session-1")
    loop_thread = threading.get_native_id()
    loop_niceness = os.getpriority(os.PRIO_PROCESS, loop_thread)

    thread, niceness, name, who = await in_background(_where)

    assert thread != loop_thread
    assert name.startswith("kane-background")
    assert niceness == min(loop_niceness + BACKGROUND_NICENESS, 19)
    assert who == "session-1"
    # The loop's own priority is untouched.
    assert os.getpriority(os.PRIO_PROCESS, loop_thread) == loop_niceness


async def test_an_error_comes_back_to_the_caller():
    def fail(reason: str) -> None:
        raise ValueError(reason)

    with pytest.raises(ValueError, match="disk full"):
        await in_background(fail, "disk full")
