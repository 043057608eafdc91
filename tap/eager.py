"""Starting a coroutine at once, in the caller's turn of the event loop."""

from __future__ import annotations

from collections.abc import Coroutine, Generator
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class Begun(Generic[T]):
    """A coroutine run at once up to its first wait; awaiting this runs the rest.

    What Python 3.12's eager tasks do for a task, for one awaitable, without a task: a
    packet's send hands the packet over in the caller's turn of the loop (LiveKit's
    `publish_data` queues it for the room before it waits for the acknowledgement), and
    whoever awaits this later waits only for what is left. An error raised before the
    first wait is raised to whoever awaits. Awaited once; `close` lets go of one that will
    not be (the coroutine's `finally` runs).
    """

    __slots__ = ("_coro", "_waits_on", "_result", "_error")

    def __init__(self, coro: Coroutine[Any, Any, T]):
        """Run `coro` until it first waits, or to its end."""
        self._coro: Coroutine[Any, Any, T] | None = coro
        self._waits_on: Any = None
        self._result: T | None = None
        self._error: Exception | None = None
        try:
            self._waits_on = coro.send(None)
        except StopIteration as stop:
            self._coro, self._result = None, stop.value
        except Exception as e:
            self._coro, self._error = None, e

    def close(self) -> None:
        """Stop the coroutine where it waits, if it does (it will not be awaited)."""
        coro, self._coro = self._coro, None
        if coro is not None:
            coro.close()

    def __await__(self) -> Generator[Any, Any, T]:
        """Wait for what the coroutine waited on, then run the rest of it."""
        coro, self._coro = self._coro, None
        if coro is None:
            if self._error is not None:
                raise self._error
            return self._result  # type: ignore[return-value]
        waits_on = self._waits_on
        while True:
            # As a task drives a coroutine: what it waits on goes to the awaiting task,
            # which resumes it with the outcome (or throws in a cancellation).
            try:
                sent = yield waits_on
            except BaseException as e:
                try:
                    waits_on = coro.throw(e)
                except StopIteration as stop:
                    return stop.value
            else:
                try:
                    waits_on = coro.send(sent)
                except StopIteration as stop:
                    return stop.value
