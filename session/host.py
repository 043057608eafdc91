"""A session process: runs the bots of the sessions the worker hands it, on its own core.

`python -m session.host --index N` is started by the worker (api/session_processes.py), one per
core: a session's pipeline is one event loop's work, and one loop is one core. The worker keeps
the HTTP API, the LiveKit rooms and the embedded PostgreSQL; this process connects to the same
database (DATABASE_URL, set by the worker) and journals into a spool of its own.

Commands arrive on stdin and events leave on the file descriptor that was stdout
(session/host_messages.py); stdout itself is pointed at stderr, so nothing a library prints
can break the protocol. The process ignores SIGINT and SIGTERM: the worker decides when its
sessions end (they say goodbye first), and stdin closing (the worker gone) ends them all.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from typing import BinaryIO

import aiohttp
import asyncpg
import uvloop
from loguru import logger
from pydantic import ValidationError

from bot import BotSession, SessionPlace
from processors.stages import PipelineError, load_pipeline
from session.archive import Archive
from session.heap import freeze_startup_heap
from session.host_messages import (
    MAX_LINE_BYTES,
    BadLineError,
    Ended,
    EndSession,
    Ready,
    Refused,
    StartSession,
    decode_command,
    encode,
)
from session.runner import SessionNeeds, run_to_end
from session.shared import load_shared, release_shared
from settings import Settings
from storage.database import Database
from storage.migrations import MigrationError
from transport.livekit import KaneLiveKitTransport

WORKER_GONE = "the worker stopped"
"""Why sessions end when the worker's pipe closes without an `end_all`."""

WORKER_GONE_GRACE_S = 10.0


class SessionHost:
    """The sessions of one session process.

    Args:
        index: This process's number among the worker's session processes.
        events: Where events go (the pipe the worker reads).
        needs: What every session runs with.
    """

    def __init__(self, *, index: int, events: BinaryIO, needs: SessionNeeds):
        """Create the host; `serve` runs it."""
        self._index = index
        self._events = events
        self._needs = needs
        self._tasks: dict[str, asyncio.Task[str]] = {}
        self._bots: dict[str, BotSession] = {}

    def __str__(self) -> str:
        return f"SessionHost#{self._index}"

    def tell(self, event: Ready | Ended | Refused) -> None:
        """Send an event to the worker."""
        self._events.write(encode(event))
        self._events.flush()

    async def serve(self, commands: asyncio.StreamReader) -> None:
        """Take commands until `end_all` or the worker's pipe closes; then end every session."""
        self.tell(Ready(pid=os.getpid()))
        while True:
            try:
                line = await commands.readline()
            except ValueError:  # a line over the reader's limit
                logger.warning(f"{self}: refused a command over {MAX_LINE_BYTES} bytes")
                self.tell(Refused(reason="command too long"))
                continue
            if not line:
                logger.info(f"{self}: the worker's pipe closed; ending every session")
                await self.end_all(WORKER_GONE, WORKER_GONE_GRACE_S)
                return
            try:
                command = decode_command(line)
            except BadLineError as e:
                logger.warning(f"{self}: refused a command: {e}")
                self.tell(Refused(reason=f"bad command: {e}"))
                continue
            if isinstance(command, StartSession):
                self.start(command)
            elif isinstance(command, EndSession):
                await self.end(command.session_id, command.reason)
            else:
                await self.end_all(command.reason, command.grace_s)
                return

    def start(self, command: StartSession) -> None:
        """Start a bot in the command's room."""
        session_id = command.session_id
        if session_id in self._tasks:
            # No session_id: a refusal naming a session says it does not run here.
            self.tell(Refused(reason=f"session {session_id} already runs here"))
            return
        place = SessionPlace(session_id=session_id, user_id=command.user_id, room=command.room)
        transport = KaneLiveKitTransport.for_room(
            url=command.livekit_url, token=command.bot_token, room_name=command.room
        )
        task = asyncio.create_task(
            run_to_end(
                place,
                transport,
                self._needs,
                on_bot=lambda bot: self._bots.__setitem__(session_id, bot),
            ),
            name=f"kane-{session_id}",
        )
        self._tasks[session_id] = task
        task.add_done_callback(lambda done: self._ended(session_id, done))
        logger.info(f"{self}: session {session_id} started in {command.room}")

    def _ended(self, session_id: str, task: asyncio.Task[str]) -> None:
        self._tasks.pop(session_id, None)
        self._bots.pop(session_id, None)
        reason = "the worker stopped the session" if task.cancelled() else task.result()
        self.tell(Ended(session_id=session_id, reason=reason))

    async def end(self, session_id: str, reason: str) -> None:
        """End one session cleanly; an unknown or not yet made one is refused."""
        bot = self._bots.get(session_id)
        if bot is None:
            self.tell(Refused(session_id=session_id, reason="no such session here"))
            return
        await bot.lifecycle.end(reason)

    async def end_all(self, reason: str, grace_s: float) -> None:
        """End every session; cancel the ones still running after `grace_s`."""
        tasks = list(self._tasks.values())
        if not tasks:
            return
        logger.info(f"{self}: ending {len(tasks)} sessions: {reason}")
        await asyncio.gather(
            *(bot.lifecycle.end(reason) for bot in list(self._bots.values())),
            return_exceptions=True,
        )
        _, pending = await asyncio.wait(tasks, timeout=grace_s)
        for task in pending:
            task.cancel()
        if pending:
            # Cancelled sessions still close their records; give them the time to.
            await asyncio.wait(pending, timeout=10.0)


async def _main(index: int, events: BinaryIO) -> int:
    try:
        settings = Settings()
        pipeline = load_pipeline(settings.kane_pipeline)
    except (ValidationError, PipelineError) as e:
        logger.error(f"Session process {index}: configuration refused: {e}")
        return 2
    try:
        await load_shared(settings)
    except RuntimeError as e:
        logger.error(f"Session process {index}: {e}")
        return 2
    database_url = settings.database_url.get_secret_value() if settings.database_url else None
    if not database_url:
        logger.error(f"Session process {index}: no DATABASE_URL from the worker")
        return 2
    # The worker migrated the database; this process only checks that the schema is current.
    try:
        database = await Database.open(database_url, migrate=False)
    except (MigrationError, OSError, asyncpg.PostgresError) as e:
        logger.error(f"Session process {index}: database refused: {type(e).__name__}: {e}")
        return 2
    archive = Archive.open(
        database, settings.kane_data_dir, spool=f"journal-sessions-{index}.spool"
    )
    freeze_startup_heap()
    loop = asyncio.get_running_loop()
    commands = asyncio.StreamReader(limit=MAX_LINE_BYTES)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(commands), sys.stdin)
    try:
        async with aiohttp.ClientSession() as http:
            needs = SessionNeeds(settings=settings, http=http, archive=archive, pipeline=pipeline)
            host = SessionHost(index=index, events=events, needs=needs)
            await host.serve(commands)
    finally:
        await archive.close()
        await database.close()
        await release_shared()
    return 0


def main(argv: list[str] | None = None) -> int:
    """Serve the worker's commands until it says stop or goes away."""
    parser = argparse.ArgumentParser(prog="python -m session.host")
    parser.add_argument("--index", type=int, required=True)
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    # Events go out on what was stdout; anything printed goes to stderr with the logs.
    events = os.fdopen(os.dup(sys.stdout.fileno()), "wb", buffering=0)
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    logger.remove()
    # diagnose=False: a traceback must never print local variables (keys, tokens).
    logger.add(
        sys.stderr,
        level=args.log_level.upper(),
        format="{time:YYYY-MM-DD HH:mm:ss.SSS} | {level: <8} | sessions-"
        + str(args.index)
        + " | {name}:{function}:{line} - {message}",
        diagnose=False,
        backtrace=False,
    )
    # uvloop: the same asyncio, its loop in C; Pipecat's per-frame hops cost less CPU.
    return uvloop.run(_main(args.index, events))


if __name__ == "__main__":
    sys.exit(main())
