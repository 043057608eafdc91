"""The worker's session processes: one per core, each running its share of the sessions.

A session's pipeline is the work of one event loop, and one event loop uses one core; a
worker that ran every session in its own process would leave the other cores idle (the
session benchmark saturated one core at 16 sessions with the second idle). The worker keeps
the HTTP API, the LiveKit rooms and the database, and hands each LiveKit session to the
least busy of its session processes (session/host.py). A process that dies takes its sessions
with it (they are ended and recorded here) and is started again.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from loguru import logger

from session.host_messages import (
    MAX_LINE_BYTES,
    BadLineError,
    EndAll,
    Ended,
    EndSession,
    Ready,
    Refused,
    StartSession,
    decode_event,
    encode,
)

ROOT = Path(__file__).resolve().parent.parent
READY_TIMEOUT_S = 120.0
"""How long a session process may take to load (Pipecat, models) before it is given up."""
RESTART_DELAYS_S = (1.0, 2.0, 5.0, 10.0, 30.0)
"""Waits before starting a dead process again, longer each time it dies young."""
STABLE_AFTER_S = 60.0
"""A process that lived this long died of something new: its restarts begin again at 1 s."""

OnEnded = Callable[[str, str, bool], Awaitable[None]]
"""Told (session_id, reason, recorded) when a session of a process ends; `recorded` is False
when the process died and the session's end is not in the database yet."""


@dataclass
class ProcessState:
    """What /health shows of a session process."""

    index: int
    pid: int | None
    ready: bool
    sessions: int
    restarts: int


class SessionProcess:
    """One session process, its pipes, and the sessions it runs."""

    def __init__(self, index: int, *, env: dict[str, str], log_level: str, on_ended: OnEnded):
        """Describe the process; `start` starts it.

        Args:
            index: Its number among the worker's session processes.
            env: Its environment (the worker's, with the database's URL).
            log_level: Its loguru level.
            on_ended: Told when one of its sessions ends.
        """
        self.index = index
        self.sessions: set[str] = set()
        self.restarts = 0
        self._env = env
        self._log_level = log_level
        self._on_ended = on_ended
        self._process: asyncio.subprocess.Process | None = None
        self._ready = asyncio.Event()
        self._reader: asyncio.Task[None] | None = None
        self._started_at = 0.0

    def __str__(self) -> str:
        pid = self._process.pid if self._process else "-"
        return f"SessionProcess#{self.index}(pid {pid})"

    @property
    def ready(self) -> bool:
        """Whether it takes sessions."""
        return self._ready.is_set() and self._process is not None

    def state(self) -> ProcessState:
        """What /health shows of it."""
        pid = self._process.pid if self._process else None
        return ProcessState(self.index, pid, self.ready, len(self.sessions), self.restarts)

    async def start(self) -> None:
        """Start the process and wait until it takes sessions.

        Raises:
            RuntimeError: It exited, or did not get ready within READY_TIMEOUT_S.
        """
        self._ready.clear()
        self._started_at = time.monotonic()
        self._process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "session.host",
            "--index",
            str(self.index),
            "--log-level",
            self._log_level,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            cwd=ROOT,
            env=self._env,
            limit=MAX_LINE_BYTES,
        )
        self._reader = asyncio.create_task(self._read(), name=f"kane-sessions-{self.index}")
        ready = asyncio.create_task(self._ready.wait())
        try:
            await asyncio.wait(
                {ready, self._reader}, timeout=READY_TIMEOUT_S, return_when="FIRST_COMPLETED"
            )
        finally:
            ready.cancel()
        if not self._ready.is_set():
            await self.kill()
            raise RuntimeError(f"{self} did not get ready")

    def send(self, command: StartSession | EndSession | EndAll) -> None:
        """Write a command to the process.

        Raises:
            ConnectionError: The process is gone.
        """
        process = self._process
        if process is None or process.stdin is None or process.returncode is not None:
            raise ConnectionError(f"{self} is not running")
        process.stdin.write(encode(command))

    async def stop(self, reason: str, grace_s: float) -> None:
        """End its sessions (they say goodbye), let it exit; kill it if it hangs."""
        process = self._process
        if process is None:
            return
        try:
            self.send(EndAll(reason=reason, grace_s=grace_s))
            assert process.stdin is not None
            process.stdin.close()
        except (ConnectionError, OSError):
            pass
        try:
            # The sessions' grace, their records' 10 s, and the journal written out.
            await asyncio.wait_for(process.wait(), timeout=grace_s + 20.0)
        except TimeoutError:
            logger.error(f"{self}: did not exit after its sessions; killing it")
            await self.kill()
        if self._reader is not None:
            await asyncio.gather(self._reader, return_exceptions=True)

    async def kill(self) -> None:
        """Kill the process at once."""
        process = self._process
        if process is not None and process.returncode is None:
            process.kill()
            await process.wait()

    async def _read(self) -> None:
        process = self._process
        assert process is not None and process.stdout is not None
        while True:
            try:
                line = await process.stdout.readline()
            except ValueError:
                logger.error(f"{self}: an event over {MAX_LINE_BYTES} bytes; skipped")
                continue
            if not line:
                break
            try:
                event = decode_event(line)
            except BadLineError as e:
                logger.error(f"{self}: unreadable event: {e}")
                continue
            if isinstance(event, Ready):
                self._ready.set()
            elif isinstance(event, Ended):
                self.sessions.discard(event.session_id)
                await self._on_ended(event.session_id, event.reason, True)
            elif isinstance(event, Refused):
                logger.warning(f"{self}: refused a command ({event.session_id}): {event.reason}")
                if event.session_id in self.sessions:
                    # It does not run a session the worker thinks it runs: end it here.
                    self.sessions.discard(event.session_id)
                    reason = f"refused by its session process: {event.reason}"
                    await self._on_ended(event.session_id, reason, False)
        code = await process.wait()
        self._ready.clear()
        orphans, self.sessions = self.sessions, set()
        if orphans:
            logger.error(f"{self}: exited ({code}) with {len(orphans)} sessions")
        for session_id in orphans:
            await self._on_ended(session_id, f"its session process died (exit code {code})", False)

    async def exited(self) -> None:
        """Wait until the process has exited and its sessions are accounted for."""
        if self._reader is not None:
            await asyncio.shield(self._reader)

    def lived_s(self) -> float:
        """Seconds since it was started."""
        return time.monotonic() - self._started_at


class SessionProcesses:
    """The worker's session processes: started together, given sessions by load, restarted."""

    def __init__(
        self,
        count: int,
        *,
        database_url: str,
        log_level: str,
        on_ended: OnEnded,
        env: dict[str, str] | None = None,
    ):
        """Describe the processes; `start` starts them.

        Args:
            count: How many.
            database_url: The database they connect to (the worker's; never logged).
            log_level: Their loguru level.
            on_ended: Told when a session of any of them ends.
            env: Their environment before the database's URL (default: the worker's).
        """
        environment = dict(os.environ if env is None else env)
        environment["DATABASE_URL"] = database_url
        self._processes = [
            SessionProcess(i, env=environment, log_level=log_level, on_ended=on_ended)
            for i in range(count)
        ]
        self._watchers: list[asyncio.Task[None]] = []
        self._stopping = False

    def __str__(self) -> str:
        return f"SessionProcesses({len(self._processes)})"

    async def start(self) -> None:
        """Start every process and wait until all take sessions.

        Raises:
            RuntimeError: One could not start (the others are stopped).
        """
        results = await asyncio.gather(
            *(p.start() for p in self._processes), return_exceptions=True
        )
        failed = [r for r in results if isinstance(r, BaseException)]
        if failed:
            for p in self._processes:
                await p.kill()
            raise RuntimeError(f"session processes did not start: {failed[0]}")
        self._watchers = [
            asyncio.create_task(self._watch(p), name=f"kane-watch-sessions-{p.index}")
            for p in self._processes
        ]
        pids = ", ".join(str(p.state().pid) for p in self._processes)
        logger.info(f"{self}: ready (pids {pids})")

    def states(self) -> list[ProcessState]:
        """Each process, for /health."""
        return [p.state() for p in self._processes]

    def start_session(self, command: StartSession) -> int:
        """Hand a session to the least busy ready process.

        Returns:
            The index of the process that runs it.

        Raises:
            ConnectionError: No process takes sessions now.
        """
        ready = [p for p in self._processes if p.ready]
        if not ready:
            raise ConnectionError("no session process is ready")
        process = min(ready, key=lambda p: (len(p.sessions), p.index))
        process.send(command)
        process.sessions.add(command.session_id)
        return process.index

    def end_session(self, session_id: str, reason: str) -> bool:
        """Ask the process running `session_id` to end it; False if none runs it."""
        for process in self._processes:
            if session_id in process.sessions:
                try:
                    process.send(EndSession(session_id=session_id, reason=reason))
                    return True
                except ConnectionError:
                    return False
        return False

    async def stop(self, reason: str, *, grace_s: float) -> None:
        """End every session of every process and let the processes exit."""
        self._stopping = True
        for watcher in self._watchers:
            watcher.cancel()
        await asyncio.gather(*self._watchers, return_exceptions=True)
        await asyncio.gather(*(p.stop(reason, grace_s) for p in self._processes))

    async def _watch(self, process: SessionProcess) -> None:
        """Start `process` again whenever it dies, waiting longer if it keeps dying young."""
        attempt = 0
        while not self._stopping:
            await process.exited()
            if self._stopping:
                return
            if process.lived_s() >= STABLE_AFTER_S:
                attempt = 0
            delay = RESTART_DELAYS_S[min(attempt, len(RESTART_DELAYS_S) - 1)]
            attempt += 1
            logger.warning(f"{process}: died; starting it again in {delay:g} s")
            await asyncio.sleep(delay)
            process.restarts += 1
            try:
                await process.start()
            except (RuntimeError, OSError) as e:
                logger.error(f"{process}: {e}")
