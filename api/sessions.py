"""The worker's running sessions: start one per /connect, watch it, end them all on shutdown."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import deque
from dataclasses import dataclass, field

import aiohttp
from loguru import logger

from api.livekit_rooms import LiveKitRooms
from api.session_processes import ProcessState, SessionProcesses
from bot import BotSession, SessionPlace
from processors.stages import PipelineSpec
from session.archive import Archive
from session.host_messages import StartSession
from session.runner import SessionNeeds, run_to_end
from settings import Settings
from transport.base import KaneTransport
from transport.livekit import KaneLiveKitTransport

RETRY_AFTER_S = 30
"""What a caller turned away at capacity is told to wait (Retry-After), in seconds."""


class AtCapacityError(Exception):
    """The worker runs as many sessions as it may, or is shutting down."""


@dataclass
class Grant:
    """What the phone needs to join its session."""

    session_id: str
    room: str
    token: str


@dataclass
class LiveSession:
    """A session this worker runs."""

    session_id: str
    user_id: str
    room: str
    started_at: float = field(default_factory=time.time)
    in_livekit: bool = False
    process: int | None = None
    transport: KaneTransport | None = None
    bot: BotSession | None = None
    task: asyncio.Task | None = None


@dataclass(frozen=True)
class Ending:
    """How a recent session ended, for /health."""

    session_id: str
    reason: str
    ended_at: float


class SessionManager:
    """Starts and tracks the bot sessions of this worker.

    Each session gets a room of its own (LiveKit's, or the playground's WebRTC connection), a
    database row and a bot. A LiveKit session's bot runs in one of the worker's session
    processes when it has them (one per core, api/session_processes.py), else as a task of
    this process, like a playground session. A session's end, for whatever reason, is logged,
    recorded and kept in `recent_endings`; it never takes the worker down.
    """

    def __init__(
        self,
        *,
        settings: Settings,
        rooms: LiveKitRooms | None,
        archive: Archive,
        http: aiohttp.ClientSession,
        pipeline: PipelineSpec,
        processes: SessionProcesses | None = None,
    ):
        """Create the manager.

        Args:
            settings: The worker's settings (session limit, engines, LiveKit URL).
            rooms: Creates LiveKit rooms and mints tokens; None without a LiveKit server.
            archive: The stores that keep each session.
            http: A shared HTTP session for the bots' services.
            pipeline: KANE's stages for every session.
            processes: The session processes that run LiveKit sessions' bots; None runs
                them in this process.
        """
        self._settings = settings
        self._rooms = rooms
        self._archive = archive
        self._needs = SessionNeeds(settings=settings, http=http, archive=archive, pipeline=pipeline)
        self._processes = processes
        self._sessions: dict[str, LiveSession] = {}
        self._draining = False
        self.recent_endings: deque[Ending] = deque(maxlen=20)

    @property
    def active(self) -> int:
        """How many sessions run now."""
        return len(self._sessions)

    def process_states(self) -> list[ProcessState]:
        """The session processes, for /health (none when sessions run in this process)."""
        return self._processes.states() if self._processes else []

    @property
    def draining(self) -> bool:
        """Whether the worker has stopped taking sessions."""
        return self._draining

    async def start(self, user_id: str) -> Grant:
        """Start a session for `user_id` in a LiveKit room of its own: room, token, bot.

        Args:
            user_id: The person the session is for (their LiveKit identity).

        Raises:
            AtCapacityError: At the session limit, or shutting down.
            RuntimeError: The worker has no LiveKit server.
        """
        if self._rooms is None:
            raise RuntimeError("the worker has no LiveKit server")
        live = self._reserve(user_id, room_prefix="kane")
        live.in_livekit = True
        try:
            await self._rooms.create_room(live.room)
            if self._draining:  # shutdown began while the room was being made
                raise AtCapacityError("the worker is shutting down")
        except BaseException:
            self._sessions.pop(live.session_id, None)
            raise
        url, bot_token = self._settings.livekit_url or "", self._rooms.bot_token(room=live.room)
        if self._processes is None:
            self._launch(
                live, KaneLiveKitTransport.for_room(url=url, token=bot_token, room_name=live.room)
            )
        else:
            command = StartSession(
                session_id=live.session_id,
                user_id=user_id,
                room=live.room,
                livekit_url=url,
                bot_token=bot_token,
            )
            try:
                live.process = self._processes.start_session(command)
            except ConnectionError as e:
                await self._forget(live, f"not started: {e}")
                raise AtCapacityError(str(e)) from e
            logger.info(
                f"{self}: session {live.session_id} started in {live.room}"
                f" (session process {live.process})"
            )
        return Grant(
            session_id=live.session_id,
            room=live.room,
            token=self._rooms.user_token(room=live.room, identity=user_id),
        )

    def start_with(
        self, user_id: str, transport: KaneTransport, *, room_prefix: str = "local"
    ) -> str:
        """Start a session for `user_id` on a transport the caller made (the playground's).

        Args:
            user_id: The person the session is for (their identity on the transport).
            transport: Carries the session's audio and data.
            room_prefix: Names the session's "room" in its record, before the session id.

        Returns:
            The session's id.

        Raises:
            AtCapacityError: At the session limit, or shutting down.
        """
        live = self._reserve(user_id, room_prefix=room_prefix)
        self._launch(live, transport)
        return live.session_id

    def ensure_capacity(self) -> None:
        """Check that a session could start now, before the caller prepares one.

        Raises:
            AtCapacityError: At the session limit, or shutting down.
        """
        if self._draining:
            raise AtCapacityError("the worker is shutting down")
        if self.active >= self._settings.kane_max_sessions:
            raise AtCapacityError(f"the worker runs {self.active} sessions, its limit")

    def _reserve(self, user_id: str, *, room_prefix: str) -> LiveSession:
        """Hold a session's slot (before any await, so concurrent requests can't overshoot)."""
        self.ensure_capacity()
        session_id = str(uuid.uuid4())
        live = LiveSession(
            session_id=session_id, user_id=user_id, room=f"{room_prefix}-{session_id}"
        )
        self._sessions[session_id] = live
        return live

    def _launch(self, live: LiveSession, transport: KaneTransport) -> None:
        live.transport = transport
        place = SessionPlace(session_id=live.session_id, user_id=live.user_id, room=live.room)
        live.task = asyncio.create_task(
            self._run(live, place, transport), name=f"kane-{live.session_id}"
        )
        logger.info(f"{self}: session {live.session_id} started in {live.room}")

    async def _run(self, live: LiveSession, place: SessionPlace, transport: KaneTransport) -> None:
        reason = await run_to_end(
            place, transport, self._needs, on_bot=lambda bot: setattr(live, "bot", bot)
        )
        await self._forget(live, reason)

    async def process_session_ended(self, session_id: str, reason: str, recorded: bool) -> None:
        """A session process says one of its sessions ended (or died with it).

        Args:
            session_id: The session.
            reason: Why it ended.
            recorded: Whether its end is in the database (False when its process died).
        """
        live = self._sessions.get(session_id)
        if live is None:
            return
        if not recorded:
            try:
                await self._archive.sessions.end_session(session_id, reason)
            except Exception as e:
                logger.error(f"{self}: could not record the end of {session_id}: {e}")
        await self._forget(live, reason)

    async def _forget(self, live: LiveSession, reason: str) -> None:
        """A session has ended: free its slot, keep why, delete its room."""
        self._sessions.pop(live.session_id, None)
        self.recent_endings.append(Ending(live.session_id, reason, time.time()))
        logger.info(f"{self}: session {live.session_id} ended: {reason}")
        if self._rooms is None or not live.in_livekit:
            return
        try:
            await self._rooms.delete_room(live.room)
        except Exception as e:
            logger.debug(f"{self}: room {live.room} not deleted: {e}")

    async def shutdown(self, *, grace_s: float = 10.0) -> None:
        """Stop taking sessions, end the running ones cleanly, then wait for them.

        Args:
            grace_s: How long sessions get to finish before they are cancelled.
        """
        self._draining = True
        reason = "the worker is shutting down"
        await asyncio.gather(
            self._shutdown_here(reason, grace_s),
            self._processes.stop(reason, grace_s=grace_s) if self._processes else asyncio.sleep(0),
        )

    async def _shutdown_here(self, reason: str, grace_s: float) -> None:
        """End the sessions that run in this process."""
        sessions = [live for live in self._sessions.values() if live.process is None]
        if not sessions:
            return
        logger.info(f"{self}: ending {len(sessions)} sessions for shutdown")
        # All at once: each says goodbye to its phone and lets its last words drain.
        await asyncio.gather(
            *(live.bot.lifecycle.end(reason) for live in sessions if live.bot),
            return_exceptions=True,
        )
        tasks = [live.task for live in sessions if live.task]
        if not tasks:
            return
        _, pending = await asyncio.wait(tasks, timeout=grace_s)
        for task in pending:
            task.cancel()
        if pending:
            # Cancelled sessions still close their records; give them the time to.
            await asyncio.wait(pending, timeout=10.0)
