"""Threads a process's sessions share: one per kind of work, in the order it was asked for.

A process runs one core's sessions. Work that would stall the event loop, and that every
session asks for now and then, runs on one thread per kind for the whole process rather than
a thread per session: turns of several sessions that end together queue there instead of
sharing the cores (and the GIL with the loop) all at once.

`TURN_END` is the work of a turn's end: Smart Turn's model, then (50 ms after the turn) the
local emotion estimate. One thread for both: an estimate never takes the core from a Smart
Turn run that a turn of the process is waiting for, and queues behind those asked for first.
`RECORDINGS` writes the sessions' recordings (`storage.recording_writes`).
"""

from __future__ import annotations

import functools
from concurrent.futures import ThreadPoolExecutor

TURN_END = "turn-end"
"""The thread of a turn's end: Smart Turn's runs and the local emotion estimates."""
RECORDINGS = "recordings"
"""The thread that resamples and writes the sessions' recordings, batch after batch."""


@functools.cache
def process_thread(name: str) -> ThreadPoolExecutor:
    """The process's one thread for `name`'s work, started on first use.

    Args:
        name: The kind of work; also the thread's name.
    """
    return ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)
