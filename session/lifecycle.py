"""How one bot session begins and ends: join deadlines, the user leaving, idling, fatal errors."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from loguru import logger
from pipecat.frames.frames import ErrorFrame
from pipecat.pipeline.worker import PipelineWorker

from session.idle import IdleWatch
from transport.base import KaneTransport, drain_microphone


@dataclass
class JoinDeadlines:
    """How long a session waits for its participants.

    Parameters:
        bot_s: The bot must be in the room this long after the session starts.
        user_s: The person must join this long after the bot did.
    """

    bot_s: float = 10.0
    user_s: float = 60.0


class SessionLifecycle:
    """Watches one session and ends it, once, with the reason why.

    A session ends when the person leaves, when the bot cannot join its room or the person
    never joins within the deadlines, when nothing happens in it for too long (its
    `IdleWatch`), when a stage fails for good, or when the worker asks (shutdown). The first
    reason wins and is kept in `end_reason`.
    """

    def __init__(
        self,
        *,
        worker: PipelineWorker,
        transport: KaneTransport,
        user_identity: str,
        deadlines: JoinDeadlines | None = None,
        on_ending: Callable[[str], Awaitable[None]] | None = None,
        idle: IdleWatch | None = None,
    ):
        """Register the handlers that watch the session.

        Args:
            worker: The session's pipeline worker, ended when the session ends.
            transport: The session's transport.
            user_identity: The LiveKit identity of the session's person.
            deadlines: How long to wait for the bot and the person to join.
            on_ending: Awaited with the reason once, before the session's pipeline is ended
                (while the bot is still in the room).
            idle: The watch on the session's activity (give it to the `TappedPipeline` too);
                when it finds the session idle, the session ends, letting the bot's words
                drain. None for no idle ending.
        """
        self._worker = worker
        self._transport = transport
        self._user_identity = user_identity
        self._deadlines = deadlines or JoinDeadlines()
        self._bot_joined = asyncio.Event()
        self._user_joined = asyncio.Event()
        self._watchdog: asyncio.Task | None = None
        self._on_ending = on_ending
        self._idle = idle
        self.end_reason: str | None = None

        transport.add_event_handler("on_connected", self._on_bot_joined)
        transport.add_event_handler("on_participant_connected", self._on_participant_joined)
        transport.add_event_handler("on_participant_disconnected", self._on_participant_left)
        worker.add_event_handler("on_pipeline_error", self._on_pipeline_error)

    @property
    def user_joined(self) -> bool:
        """Whether the person has joined the room."""
        return self._user_joined.is_set()

    def start(self) -> None:
        """Start enforcing the join deadlines, and watching for an idle session."""
        self._watchdog = asyncio.create_task(self._watch_joins(), name="kane-join-watchdog")
        if self._idle is not None:
            self._idle.start(self._on_idle)

    async def close(self) -> None:
        """Stop watching; call when the session's worker has finished."""
        if self._watchdog:
            self._watchdog.cancel()
            await asyncio.gather(self._watchdog, return_exceptions=True)
            self._watchdog = None
        if self._idle is not None:
            await self._idle.stop()

    async def end(self, reason: str, *, cancel: bool = False) -> None:
        """End the session (the first reason given is the one kept).

        Args:
            reason: Why the session ends, for the log and the session record.
            cancel: Stop at once instead of letting queued frames (the person's last audio,
                the bot's words) drain.
        """
        await self._settle(reason)
        if cancel:
            await self._worker.cancel(reason=reason)
        else:
            await drain_microphone(self._transport)
            await self._worker.end(reason=reason)

    async def _settle(self, reason: str) -> None:
        """Keep the first reason the session ends for, and tell `on_ending` once."""
        if self.end_reason is not None:
            return
        self.end_reason = reason
        logger.info(f"{self}: ending session: {reason}")
        if self._idle is not None:
            # An ending session is not idle, it is leaving.
            await self._idle.stop()
        if self._on_ending is not None:
            try:
                await self._on_ending(reason)
            except Exception as e:
                logger.warning(f"{self}: while ending: {e}")

    async def _on_idle(self) -> None:
        await self.end("nothing happened in the session for too long")

    async def _watch_joins(self) -> None:
        try:
            await asyncio.wait_for(self._bot_joined.wait(), self._deadlines.bot_s)
        except TimeoutError:
            await self.end(
                f"bot could not join its room within {self._deadlines.bot_s:g} s", cancel=True
            )
            return
        try:
            await asyncio.wait_for(self._user_joined.wait(), self._deadlines.user_s)
        except TimeoutError:
            await self.end(f"nobody joined within {self._deadlines.user_s:g} s", cancel=True)

    async def _on_bot_joined(self, transport: KaneTransport) -> None:
        self._bot_joined.set()

    async def _on_participant_joined(self, transport: KaneTransport, identity: str) -> None:
        if identity == self._user_identity:
            self._user_joined.set()
        else:
            logger.warning(f"{self}: a participant who is not this session's user joined")

    async def _on_participant_left(self, transport: KaneTransport, identity: str) -> None:
        if identity == self._user_identity:
            await self.end("the user left the room", cancel=True)

    async def _on_pipeline_error(self, worker: PipelineWorker, frame: ErrorFrame) -> None:
        processor = frame.processor
        if processor is not None and not processor.is_usable:
            # The worker ends the pipeline itself (ProcessorUnusablePolicy.END); keep why,
            # and let the phone hear it before the bot leaves.
            await self._settle(f"{processor.name} failed: {frame.error}")
