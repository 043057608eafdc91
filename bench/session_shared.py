"""What every process of the session benchmark shares: one PostgreSQL and one emulated cloud.

`SharedServices` starts the embedded PostgreSQL (migrated once, here) and the emulated cloud
in its own process, scripts the cloud before each round and counts its chat requests. What
the sessions need to reach them is a `Backends`, small and picklable, so that shard processes
connect to the same database (by DSN) and the same emulators (by URL).
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import psutil

from bench.emulated_cloud import EmulatedCloud, Latencies
from storage.database import Database
from storage.embedded import EmbeddedPostgres


@dataclass(frozen=True)
class Backends:
    """Where the shared services are.

    Parameters:
        dsn: The embedded PostgreSQL's `kane` database, already migrated.
        deepgram_urls: Each session slot's STT emulator.
        openai_url: The LLM and TTS emulator.
        emulators_pid: The emulated cloud's process.
        postgres_pids: PostgreSQL's postmaster (its backends are its children).
    """

    dsn: str
    deepgram_urls: list[str]
    openai_url: str
    emulators_pid: int
    postgres_pids: list[int]


class SharedServices:
    """Starts, scripts and stops the PostgreSQL and the emulated cloud of a benchmark run."""

    def __init__(self, *, slots: int, reply: str, cloud_nice: int = 0):
        """Prepare (nothing runs until `open`).

        Args:
            slots: Most sessions at once (one STT emulator each).
            reply: What the emulated LLM answers every turn.
            cloud_nice: The emulated cloud's niceness; below 0 it gets the CPU before the
                sessions, as the real cloud (other machines) would, so its latencies stay
                the stated ones under load. Needs the right to raise a priority (root).
        """
        self._tmp = Path(tempfile.mkdtemp(prefix="kane-session-bench-db-"))
        self._cloud = EmulatedCloud(slots=slots, latencies=Latencies(), reply=reply)
        self._cloud_nice = cloud_nice
        self._postgres: EmbeddedPostgres | None = None
        self.backends: Backends | None = None

    async def open(self) -> Backends:
        """Start PostgreSQL (embedded, migrated) and the emulated cloud; where they are."""
        self._postgres = EmbeddedPostgres(self._tmp / "postgres")
        dsn = await self._postgres.start()
        migrated = await Database.open(dsn)
        await migrated.close()
        pids = [
            int(pid_file.read_text().split()[0])
            for pid_file in (self._tmp / "postgres").rglob("postmaster.pid")
        ]
        await self._cloud.start()
        if self._cloud_nice:
            psutil.Process(self._cloud.pid).nice(self._cloud_nice)  # PermissionError: not root
        self.backends = Backends(
            dsn=dsn,
            deepgram_urls=self._cloud.deepgram_urls,
            openai_url=self._cloud.openai_url,
            emulators_pid=self._cloud.pid,
            postgres_pids=pids,
        )
        return self.backends

    async def close(self) -> None:
        """Stop everything `open` started."""
        await self._cloud.stop()
        if self._postgres is not None:
            await self._postgres.stop()
        shutil.rmtree(self._tmp, ignore_errors=True)

    async def prepare(self, scripts: list[list[str]]) -> None:
        """Reset the emulators for a round: slot i's STT hears `scripts[i]`, in order."""
        await self._cloud.prepare(scripts)

    async def chat_requests(self) -> int:
        """How many chat completions the LLM was asked for since the round began."""
        return await self._cloud.chat_requests()


def processes(pids: list[int]) -> list[psutil.Process]:
    """The processes of `pids` that are still there."""
    found = []
    for pid in pids:
        try:
            found.append(psutil.Process(pid))
        except psutil.Error:
            pass
    return found
