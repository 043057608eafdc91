"""A coroutine begun at once: its first steps in the caller's turn, the rest when awaited."""

from __future__ import annotations

import asyncio

import pytest

from tap.eager import Begun


async def steps(done: list[str], gate: asyncio.Event) -> str:
    done.append("before its first wait")
    try:
        await gate.wait()
        done.append("after it")
        return "result"
    finally:
        done.append("finally")


async def test_it_runs_up_to_its_first_wait_at_once_and_the_rest_when_awaited():
    done: list[str] = []
    gate = asyncio.Event()
    begun = Begun(steps(done, gate))
    assert done == ["before its first wait"]
    asyncio.get_running_loop().call_later(0.01, gate.set)
    assert await begun == "result"
    assert done == ["before its first wait", "after it", "finally"]


async def test_a_coroutine_that_never_waits_is_over_at_once():
    async def at_once() -> int:
        return 7

    begun = Begun(at_once())
    assert await begun == 7


async def test_what_it_waits_on_may_be_done_before_it_is_awaited():
    done: list[str] = []
    gate = asyncio.Event()
    begun = Begun(steps(done, gate))
    gate.set()
    await asyncio.sleep(0.01)
    assert await begun == "result"


async def test_an_error_before_its_first_wait_is_raised_to_whoever_awaits():
    async def refuses() -> None:
        raise ConnectionError("room closed")

    begun = Begun(refuses())  # does not raise here
    with pytest.raises(ConnectionError, match="room closed"):
        await begun


async def test_an_error_after_its_first_wait_is_raised_to_whoever_awaits():
    async def fails_later() -> None:
        await asyncio.sleep(0)
        raise ValueError("refused")

    with pytest.raises(ValueError, match="refused"):
        await Begun(fails_later())


async def test_cancelling_the_awaiting_task_cancels_the_coroutine_where_it_waits():
    done: list[str] = []
    begun = Begun(steps(done, asyncio.Event()))

    async def awaits() -> str:
        return await begun

    task = asyncio.create_task(awaits())
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert done == ["before its first wait", "finally"]


async def test_close_lets_go_of_a_coroutine_that_will_not_be_awaited():
    done: list[str] = []
    begun = Begun(steps(done, asyncio.Event()))
    begun.close()
    assert done == ["before its first wait", "finally"]
