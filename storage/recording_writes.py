"""A process's recording writes: every recorder's batch handed to one thread together.

Each session's recorder gathers its audio on the event loop and has it written (resampled
and appended to its files) off the loop. Handed to a thread by each recorder on a clock of
its own, 24 sessions would wake a thread 48 times a second, each hand-off a wake-up of the
thread, a turn of the GIL and a wake-up of the loop, at moments that have nothing to do
with one another; and the loop's thread, preempted by those wake-ups, answers turns later.
`RecordingWrites` is shared by the recorders of a process: on one clock it takes every
recorder's batch and hands them over together, one hand-off every `every_s` however many
sessions the process runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import Callable
from concurrent.futures import Executor
from typing import Protocol, TypeVar

from loguru import logger

from services.process_threads import RECORDINGS, process_thread

T = TypeVar("T")

Job = Callable[[], None]
"""Work for the writer thread; must not raise (it logs its own failures)."""


class WriteSource(Protocol):
    """Something with writes to hand over (a session's recorder)."""

    def take_writes(self) -> Job | None:
        """The writes gathered since the last call, as one job; None if there are none."""
        ...


class RecordingWrites:
    """Hands the writes of every recorder of a process to one thread, together, on one clock.

    A recorder says it has writes (`due`); at the next tick, `every_s` after the first of
    them, each recorder that said so gives up its batch (`WriteSource.take_writes`) and the
    batches go to the thread as one job. Work that must be done now (a session's last
    writes, closing its files) goes through `run_now`, on the same thread, after every
    batch handed over before it.
    """

    def __init__(self, *, every_s: float = 0.5, executor: Executor | None = None):
        """Create the writes of one process (or of one recorder, in tests).

        Args:
            every_s: How far apart batches are handed over.
            executor: Where the writes run, in the order handed over; the process's one
                thread for recordings (`services.process_threads.RECORDINGS`) if None.
        """
        if every_s <= 0:
            raise ValueError(f"every_s must be positive, not {every_s}")
        self._every_s = every_s
        self._executor = executor
        self._due: dict[WriteSource, None] = {}  # in the order they said so
        self._ticks: asyncio.Task[None] | None = None
        self.batches = 0  # batches handed over by the clock (for tests and benchmarks)

    def __str__(self) -> str:
        return f"RecordingWrites(every {self._every_s} s)"

    def due(self, source: WriteSource) -> None:
        """Note that `source` has writes to hand over at the next tick. Never waits."""
        self._due[source] = None
        if self._ticks is None:
            loop = asyncio.get_running_loop()
            self._ticks = loop.create_task(self._tick(), name="recording-writes")

    async def run_now(self, work: Callable[[], T]) -> T:
        """Run `work` on the writer thread now, after what was handed over before; its result."""
        return await asyncio.get_running_loop().run_in_executor(self._thread(), work)

    async def close(self) -> None:
        """Stop the clock and write what is due now."""
        if self._ticks is not None:
            self._ticks.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticks
        jobs = self._take()
        if jobs:
            await self.run_now(functools.partial(_run_all, jobs))

    def _thread(self) -> Executor:
        return self._executor or process_thread(RECORDINGS)

    def _take(self) -> list[Job]:
        due, self._due = self._due, {}
        return [job for source in due if (job := source.take_writes()) is not None]

    async def _tick(self) -> None:
        try:
            while self._due:
                await asyncio.sleep(self._every_s)
                jobs = self._take()
                if jobs:
                    # Not awaited: the clock keeps its pace; jobs log their own failures.
                    self.batches += 1
                    self._thread().submit(_run_all, jobs)
        finally:
            self._ticks = None


def _run_all(jobs: list[Job]) -> None:
    """Run every job; one that fails keeps none of the others from running."""
    for job in jobs:
        try:
            job()
        except Exception as e:  # a job should not raise; never lose the others' audio
            logger.error(f"recording writes: a job failed: {type(e).__name__}: {e}")
