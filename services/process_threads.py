"""Threads a process's sessions share: one per kind of work, in the order it was asked for.

A process runs one core's sessions. Work that would stall the event loop, and that every
session asks for now and then (Smart Turn's model at a turn's end, the local emotion
estimate), runs on one thread per kind for the whole process rather than a thread per
session: turns of several sessions that end together queue there instead of sharing the
cores (and the GIL with the loop) all at once.
"""

from __future__ import annotations

import functools
from concurrent.futures import ThreadPoolExecutor


@functools.cache
def process_thread(name: str) -> ThreadPoolExecutor:
    """The process's one thread for `name`'s work, started on first use.

    Args:
        name: The kind of work; also the thread's name.
    """
    return ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)
