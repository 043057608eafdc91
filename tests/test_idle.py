"""The idle watch: a quiet session ends with its reason; speaking keeps it going."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from pipecat.frames.frames import (
    BotSpeakingFrame,
    EndFrame,
    Frame,
    StartFrame,
    TextFrame,
    UserSpeakingFrame,
)
from pipecat.observers.base_observer import BaseObserver
from pipecat.pipeline.worker import IDLE_TIMEOUT_SECS, PipelineWorker
from pipecat.processors.filters.identity_filter import IdentityFilter
from pipecat.workers.runner import WorkerRunner

from bot import worker_options
from session.idle import ACTIVITY_FRAMES, IdleWatch
from session.lifecycle import SessionLifecycle
from tap.observer import FrameTap
from tap.pipeline import TappedPipeline

SESSION = "6f1c1f5e-8d2a-4b8e-9a57-3a2f4f0c1d11"
IDLE = "nothing happened in the session for too long"
TIMEOUT_S = 0.5


class CollectingJournal:
    def __init__(self) -> None:
        self.events: list[Any] = []

    def write(self, event: Any) -> None:
        self.events.append(event)


def make_tap(journal: CollectingJournal) -> FrameTap:
    return FrameTap(session_id=SESSION, journal=journal)  # type: ignore[arg-type]


class EventsOnly:
    """A transport as the lifecycle sees one: event handlers, and an input queueing nothing."""

    def __init__(self) -> None:
        self.handlers: dict[str, Callable[..., Awaitable[None]]] = {}

    def input(self) -> IdentityFilter:
        return IdentityFilter()

    def add_event_handler(self, event_name: str, handler: Callable[..., Awaitable[None]]) -> None:
        self.handlers[event_name] = handler

    async def fire(self, event_name: str, *args: Any) -> None:
        await self.handlers[event_name](self, *args)


class Session:
    """A session as `bot.run_session` runs one: KANE's worker options, a lifecycle, a watch."""

    def __init__(self, *, tap: FrameTap | None = None, timeout_s: float = TIMEOUT_S) -> None:
        self.idle = IdleWatch(timeout_s=timeout_s)
        self.worker = PipelineWorker(
            TappedPipeline([IdentityFilter(), IdentityFilter()], tap=tap, idle=self.idle),
            **worker_options(),
        )
        self.transport = EventsOnly()
        self.told: list[tuple[str, float]] = []
        self.lifecycle = SessionLifecycle(
            worker=self.worker,
            transport=self.transport,  # type: ignore[arg-type]
            user_identity="ada",
            on_ending=self._on_ending,
            idle=self.idle,
        )
        self._started = asyncio.Event()
        self.worker.add_event_handler("on_pipeline_started", self._on_started)
        self._run: asyncio.Task | None = None

    async def _on_ending(self, reason: str) -> None:
        self.told.append((reason, time.monotonic()))

    async def _on_started(self, worker: PipelineWorker, frame: Frame) -> None:
        self._started.set()

    async def start(self) -> None:
        runner = WorkerRunner(handle_sigint=False)
        await runner.add_workers(self.worker)
        self.lifecycle.start()
        self._run = asyncio.create_task(runner.run())
        await self.transport.fire("on_connected")
        await self.transport.fire("on_participant_connected", "ada")
        await asyncio.wait_for(self._started.wait(), timeout=10)

    async def finished(self) -> None:
        assert self._run is not None
        try:
            await asyncio.wait_for(self._run, timeout=20)
        finally:
            await self.lifecycle.close()

    async def keep_sending(self, frames: Callable[[], list[Frame]], seconds: float) -> float:
        """Queue frames every 0.1 s for `seconds`; returns when the last ones went in."""
        last = time.monotonic()
        end = last + seconds
        while time.monotonic() < end:
            await self.worker.queue_frames(frames())
            last = time.monotonic()
            await asyncio.sleep(0.1)
        return last


def test_the_watch_counts_what_pipecats_idle_timeout_counts():
    pipecats = inspect.signature(PipelineWorker.__init__).parameters["idle_timeout_frames"]
    assert set(ACTIVITY_FRAMES) == {StartFrame, *pipecats.default}
    assert IdleWatch().timeout_s == IDLE_TIMEOUT_SECS


def test_kanes_workers_have_neither_of_pipecats_default_observers():
    options = worker_options()
    assert options["enable_turn_tracking"] is False and options["idle_timeout_secs"] is None
    worker = PipelineWorker(TappedPipeline([IdentityFilter()]), **options)
    assert worker.turn_tracking_observer is None


@pytest.mark.parametrize("with_tap", [False, True], ids=["no tap", "tap"])
async def test_a_session_where_nothing_happens_ends_with_the_reason(with_tap: bool):
    tap = make_tap(CollectingJournal()) if with_tap else None
    session = Session(tap=tap)
    began = time.monotonic()
    await session.start()
    await session.finished()
    assert session.lifecycle.end_reason == IDLE
    assert [reason for reason, _ in session.told] == [IDLE]
    assert session.told[0][1] - began >= TIMEOUT_S
    assert not session.idle.running


@pytest.mark.parametrize("with_tap", [False, True], ids=["no tap", "tap"])
@pytest.mark.parametrize(
    "speaking", [UserSpeakingFrame, BotSpeakingFrame], ids=["user speaks", "bot speaks"]
)
async def test_speaking_postpones_the_idle_ending(with_tap: bool, speaking: type[Frame]):
    journal = CollectingJournal()
    tap = make_tap(journal) if with_tap else None
    session = Session(tap=tap)
    await session.start()
    last = await session.keep_sending(lambda: [speaking()], seconds=3 * TIMEOUT_S)
    assert session.lifecycle.end_reason is None, "the session ended while someone spoke"
    await session.finished()
    assert session.lifecycle.end_reason == IDLE
    assert session.told[0][1] - last >= TIMEOUT_S
    if tap is not None:
        tap.flush()
        assert sum(e.kind == speaking.__name__ for e in journal.events) >= 10


async def test_frames_that_are_not_activity_do_not_postpone_it():
    session = Session()
    await session.start()
    began = time.monotonic()
    await session.keep_sending(lambda: [TextFrame("tick")], seconds=3 * TIMEOUT_S)
    await session.finished()
    assert session.lifecycle.end_reason == IDLE
    assert session.told[0][1] - began < 2 * TIMEOUT_S


@pytest.mark.parametrize("how", ["the pipeline ends", "the user leaves"])
async def test_the_watch_stops_when_the_session_ends(how: str):
    session = Session()
    await session.start()
    if how == "the pipeline ends":
        await session.worker.queue_frame(EndFrame())
    else:
        await session.transport.fire("on_participant_disconnected", "ada")
    await session.finished()
    assert not session.idle.running
    await asyncio.sleep(2 * TIMEOUT_S)
    reasons = [reason for reason, _ in session.told]
    assert reasons == ([] if how == "the pipeline ends" else ["the user left the room"])
    assert not [t for t in asyncio.all_tasks() if t.get_name() == "kane-idle-watch"]


async def test_the_watch_tells_once_and_can_be_stopped_from_its_own_callback():
    watch = IdleWatch(timeout_s=0.1)
    told: list[float] = []

    async def on_idle() -> None:
        told.append(time.monotonic())
        await watch.stop()

    watch.start(on_idle)
    await asyncio.sleep(0.5)
    assert len(told) == 1 and not watch.running


class Reports(BaseObserver):
    """Notes which of its reports an observer was given."""

    def __init__(self) -> None:
        super().__init__()
        self.given: list[str] = []

    def __getattribute__(self, name: str) -> Any:
        if name.startswith("on_"):

            async def report(*_args: Any) -> None:
                self.given.append(name)

            return report
        return super().__getattribute__(name)


async def test_every_report_reaches_the_observer_behind_the_watch():
    behind = Reports()
    inline = IdleWatch().inline_observer(behind)
    hooks = [n for n in dir(BaseObserver) if n.startswith("on_")]
    for name in hooks:
        method = getattr(inline, name)
        args = [None] * len(inspect.signature(method).parameters)
        if name == "on_push_frame":
            args = [type("Pushed", (), {"frame": TextFrame("x")})()]
        await method(*args)
    assert sorted(behind.given) == sorted(hooks)
