"""Rounds of the session benchmark: N sessions of one kind through their turns, accounted for.

A `Bench` runs sessions in this process against the shared services (`bench.session_shared`:
one PostgreSQL, the emulated cloud in its own process), with its own connection pool, the
worker's stores and an HTTP session. For a round it builds its sessions (all N, or one shard's
slots of them), waits until every microphone is open (and, in a shard, for the other shards),
lets the people talk (first turns spread over `stagger_s`), ends the sessions as a person
leaving would after the microphone closed, and measures meanwhile: CPU of this process,
Postgres and the emulators, RSS, the journal's backlog and the microphones' backlog in
Pipecat's input queues. `LocalRounds` is every round in this process (`--processes 1`).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import hashlib
import os
import random
import resource
import shutil
import tempfile
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import psutil
import soundfile as sf

from bench.loopback_transport import SpokenTurn
from bench.session_runs import (
    BenchSession,
    Services,
    SessionOutcome,
    bench_settings,
    is_kane,
    slot_kind,
)
from bench.session_shared import Backends, SharedServices, processes
from session.archive import Archive
from session.heap import freeze_startup_heap
from session.shared import load_shared, release_shared
from speech.espeak import write_wav
from storage.database import Database

REPLY = "Got it. What comes next?"
TURNS = [
    "My main quest today is to ship the onboarding flow.",
    "I should also book the dentist for next week.",
    "I will know it is done when new users can sign up on their own.",
    "Another thing is to review the pull requests from yesterday.",
    "And I want to go for a run before dinner.",
]
"""What the people say: sentences Smart Turn v3 judges finished, every time (checked), so the
latency measured is the pipelines', not the luck of the turn model's verdict."""
UNFINISHED = "So my plan for today is"
"""Words that trail off, then silence: Smart Turn v3 judges them unfinished (every time,
checked), so the turn ends only after its 3 s of silence. The preemptive study has every
session say them second."""
SAMPLE_S = 0.1
SPEECH_LEVEL = 500  # |sample| above which eSpeak's audio is speech (about -36 dBFS)


def spoken_turns(texts: list[str], sample_rate: int = 16000) -> list[SpokenTurn]:
    """The turns as eSpeak NG says them (WAV fixtures, cached under ~/.cache/kane)."""
    folder = Path.home() / ".cache" / "kane" / "bench-speech"
    turns = []
    for text in texts:
        key = hashlib.sha256(f"{text}|{sample_rate}".encode()).hexdigest()[:16]
        path = folder / f"{key}.wav"
        if not path.exists():
            write_wav(path.with_suffix(".partial.wav"), text, sample_rate=sample_rate).replace(path)
        audio, rate = sf.read(path, dtype="int16")
        assert rate == sample_rate
        voiced = np.flatnonzero(np.abs(audio.astype(np.int32)) > SPEECH_LEVEL)
        end = int(voiced[-1]) + 1
        turns.append(SpokenTurn(text=text, pcm=audio[:end].tobytes(), speech_end=end))
    return turns


def scripts(
    pool: list[SpokenTurn], unfinished_turn: SpokenTurn, n: int, turns: int, unfinished: bool
) -> list[list[SpokenTurn]]:
    """What each of `n` slots says: slot i the turns from the i-th on, so sessions do not all
    say the same; with `unfinished`, each slot's second turn is `unfinished_turn`."""
    said = []
    for slot in range(n):
        script = [pool[(slot + k) % len(pool)] for k in range(turns)]
        if unfinished and turns > 1:
            script[1] = unfinished_turn
        said.append(script)
    return said


@dataclass
class Usage:
    """CPU seconds of this process, Postgres and the emulators, and of the event loop's thread.

    The loop's thread also counts its context switches: *preempted* (the kernel gave its
    core to another thread while it had work: every one delays every session on the loop)
    and *waited* (it gave the core up: the loop idle in epoll, or waiting for the GIL).
    """

    own: float
    postgres: float
    emulators: float
    at: float
    loop_cpu: float
    loop_preempted: int
    loop_waited: int

    @classmethod
    def now(cls, postgres: list[psutil.Process], emulators: psutil.Process) -> Usage:
        """Read the counters; call it on the event loop's thread."""
        loop = resource.getrusage(resource.RUSAGE_THREAD)
        return cls(
            own=_cpu(psutil.Process()),
            postgres=tree_cpu(postgres),
            emulators=_cpu(emulators),
            at=time.monotonic(),
            loop_cpu=loop.ru_utime + loop.ru_stime,
            loop_preempted=loop.ru_nivcsw,
            loop_waited=loop.ru_nvcsw,
        )


def _cpu(process: psutil.Process, *, reaped: bool = False) -> float:
    """CPU seconds of `process`; with `reaped`, also of the children it has waited for."""
    try:
        times = process.cpu_times()
    except psutil.Error:
        return 0.0
    own = times.user + times.system
    return own + (times.children_user + times.children_system if reaped else 0.0)


def tree_cpu(processes: list[psutil.Process]) -> float:
    """CPU seconds of `processes` and of every child they have had: each living process's
    own and that of the children it has reaped (the kernel adds an ended child's seconds
    to its parent's when the parent waits for it), so a child that ends between two
    readings (a PostgreSQL backend, an autovacuum worker) keeps its seconds in the
    difference instead of taking them out of it."""
    tree = []
    for process in processes:
        try:
            tree += [process, *process.children(recursive=True)]
        except psutil.Error:
            pass
    return sum(_cpu(process, reaped=True) for process in tree)


@dataclass
class RoundResult:
    """One round: N sessions of one kind through all their turns."""

    kind: str
    sessions: int
    index: int
    outcomes: list[SessionOutcome]
    setup_s: float
    talk_s: float
    teardown_s: float
    cpu_own_s: float
    cpu_postgres_s: float
    cpu_emulators_s: float
    system_cpu_pct: float
    rss_before_mb: float
    rss_peak_mb: float
    input_backlog_peak: int
    chat_requests: int
    loadavg: tuple[float, float]
    journal: dict[str, Any] = field(default_factory=dict)
    loop_cpu_s: float = 0.0
    """CPU of the event loops' threads while the people talked (summed over processes)."""
    loop_preempted: int = 0
    """Times the event loops' threads were preempted while the people talked."""
    loop_waited: int = 0
    """Times the event loops' threads gave up their core while the people talked."""


def split_round(result: RoundResult) -> dict[str, RoundResult]:
    """A mixed round (`session_runs.mixed`) as one round of each of its kinds.

    Each part has its kind's sessions only and keeps the whole round's other figures: CPU,
    RSS, the loops' switches, the load and the chat requests are the mix's, so a part's CPU
    per session is the mix's average, not its kind's. The journal's accounting goes with the
    KANE part (it counted KANE's sessions only: mix one KANE kind with bare ones).
    """
    kinds = {o.kind for o in result.outcomes}
    return {
        kind: replace(
            result,
            kind=kind,
            outcomes=[o for o in result.outcomes if o.kind == kind],
            journal=result.journal if is_kane(kind) else {},
        )
        for kind in sorted(kinds)
    }


class Bench:
    """Runs the sessions of rounds in this process, against the shared services."""

    def __init__(
        self,
        args: argparse.Namespace,
        turns: list[SpokenTurn],
        unfinished: SpokenTurn,
        backends: Backends,
    ):
        """Keep the options; `open` connects to what the rounds need."""
        self._args = args
        self._turns = turns
        self._unfinished = unfinished
        self._backends = backends
        self._tmp = Path(tempfile.mkdtemp(prefix="kane-session-bench-"))
        self._database: Database | None = None
        self._archive: Archive | None = None
        self._http: aiohttp.ClientSession | None = None
        self._postgres: list[psutil.Process] = []

    async def open(self) -> None:
        """Connect to Postgres (already migrated), open the worker's stores and HTTP.

        As a session process starts: shared models and client loaded, start-up heap frozen.
        """
        self._database = await Database.open(self._backends.dsn, migrate=False)
        self._archive = Archive.open(self._database, self._tmp)
        self._postgres = processes(self._backends.postgres_pids)
        self._http = aiohttp.ClientSession()
        services = Services(self._backends.deepgram_urls, self._backends.openai_url)
        await load_shared(bench_settings(services, 0, "kane"))
        freeze_startup_heap()

    async def close(self) -> None:
        """Close everything `open` opened."""
        if self._http is not None:
            await self._http.close()
        if self._archive is not None:
            await self._archive.close()
        if self._database is not None:
            await self._database.close()
        await release_shared()
        shutil.rmtree(self._tmp, ignore_errors=True)

    async def run(
        self,
        kind: str,
        n: int,
        index: int,
        turns: int,
        *,
        slots: range | None = None,
        unfinished: bool = False,
        barrier: Callable[[], Awaitable[None]] | None = None,
    ) -> RoundResult:
        """Run the sessions of `slots` (all `n` by default) of a round of `n` sessions of
        `kind` (a mixed kind gives each slot its own, `slot_kind`), each saying `turns`
        turns, and account for them.

        The emulated cloud must have been prepared for the round. With `unfinished`, each
        session's second turn is `UNFINISHED`. `barrier` is awaited once every microphone is
        open, before the people start talking. The result counts no chat requests.
        """
        args = self._args
        assert self._archive is not None and self._http is not None
        slots = range(n) if slots is None else slots
        said = scripts(self._turns, self._unfinished, n, turns, unfinished)
        backends = self._backends
        services = Services(backends.deepgram_urls, backends.openai_url)
        gc.collect()
        load_before = os.getloadavg()[0]
        me = psutil.Process()
        rss_before = me.memory_info().rss
        journal_before = self._archive.journal.stats
        emulators = psutil.Process(backends.emulators_pid)

        built = time.monotonic()
        sessions = [
            BenchSession(
                kind=slot_kind(kind, slot),
                slot=slot,
                services=services,
                http=self._http,
                archive=self._archive if is_kane(slot_kind(kind, slot)) else None,
            )
            for slot in slots
        ]
        for session in sessions:
            session.start()
        kane_here = any(is_kane(session.kind) for session in sessions)
        sampler = _Sampler(me, self._archive if kane_here else None, sessions)
        try:
            await asyncio.gather(*(s.ready() for s in sessions))
            setup_s = time.monotonic() - built
            if barrier is not None:
                await barrier()
            rng = random.Random(f"{n}-{index}")
            plans = [
                (rng.uniform(0, args.stagger_s), [rng.uniform(0.6, 1.2) for _ in range(turns)])
                for _ in range(n)
            ]
            psutil.cpu_percent()
            before = Usage.now(self._postgres, emulators)
            await asyncio.gather(
                *(
                    s.converse(
                        said[s.slot], first_after_s=plans[s.slot][0], gaps_s=plans[s.slot][1]
                    )
                    for s in sessions
                )
            )
            after = Usage.now(self._postgres, emulators)
            system_cpu = psutil.cpu_percent()
        finally:
            ending = time.monotonic()
            results = await asyncio.gather(*(s.end() for s in sessions), return_exceptions=True)
            sampler.stop()
        failures = [r for r in results if isinstance(r, BaseException)]
        if failures:
            raise RuntimeError(f"{len(failures)} sessions did not end cleanly") from failures[0]
        outcomes = [r for r in results if isinstance(r, SessionOutcome)]
        teardown_s = time.monotonic() - ending
        result = RoundResult(
            kind=kind,
            sessions=n,
            index=index,
            outcomes=outcomes,
            setup_s=setup_s,
            talk_s=after.at - before.at,
            teardown_s=teardown_s,
            cpu_own_s=after.own - before.own,
            cpu_postgres_s=after.postgres - before.postgres,
            cpu_emulators_s=after.emulators - before.emulators,
            system_cpu_pct=system_cpu,
            rss_before_mb=rss_before / 2**20,
            rss_peak_mb=sampler.rss_peak / 2**20,
            input_backlog_peak=sampler.input_backlog_peak,
            chat_requests=0,
            loadavg=(load_before, os.getloadavg()[0]),
            loop_cpu_s=after.loop_cpu - before.loop_cpu,
            loop_preempted=after.loop_preempted - before.loop_preempted,
            loop_waited=after.loop_waited - before.loop_waited,
        )
        if kane_here:
            result.journal = await self._journal_accounting(
                [o for o in outcomes if is_kane(o.kind)],
                journal_before,
                result.talk_s,
                sampler.backlog_peak,
            )
        return result

    async def _journal_accounting(
        self,
        outcomes: list[SessionOutcome],
        before: Any,
        talk_s: float,
        backlog_peak: int,
    ) -> dict[str, Any]:
        assert self._archive is not None and self._database is not None
        journal = self._archive.journal
        await journal.flush()
        after = journal.stats
        ids = [uuid.UUID(o.session_id) for o in outcomes]
        rows = await self._database.pool.fetch(
            "SELECT session_id, count(*) AS n FROM frame_journal "
            "WHERE session_id = ANY($1::uuid[]) GROUP BY session_id",
            ids,
        )
        stored = {str(r["session_id"]): r["n"] for r in rows}
        written_by_taps = sum(o.journaled or 0 for o in outcomes)
        in_postgres = sum(stored.values())
        mismatched = sum(1 for o in outcomes if stored.get(o.session_id, 0) != o.journaled)
        return {
            "events_by_taps": written_by_taps,
            "rows_in_postgres": in_postgres,
            "sessions_mismatched": mismatched,
            "accepted": after.accepted - before.accepted,
            "written": after.written - before.written,
            "spooled": after.spooled - before.spooled,
            "events_per_s": round((after.accepted - before.accepted) / max(talk_s, 1e-9), 1),
            "backlog_peak": backlog_peak,
        }


class _Sampler:
    """Samples RSS, the journal's backlog and the microphones' backlog while a round runs."""

    def __init__(
        self, process: psutil.Process, archive: Archive | None, sessions: list[BenchSession]
    ):
        self._process = process
        self._archive = archive
        self._sessions = sessions
        self.rss_peak = process.memory_info().rss
        self.backlog_peak = 0
        self.input_backlog_peak = 0
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while True:
            self.rss_peak = max(self.rss_peak, self._process.memory_info().rss)
            if self._archive is not None:
                self.backlog_peak = max(self.backlog_peak, self._archive.journal.pending)
            backlog = max(s.transport.input_backlog for s in self._sessions)
            self.input_backlog_peak = max(self.input_backlog_peak, backlog)
            await asyncio.sleep(SAMPLE_S)

    def stop(self) -> None:
        self._task.cancel()


class Rounds(ABC):
    """What runs rounds needs, however it spreads the sessions (`LocalRounds`, `ShardedRounds`).

    Args:
        args: The benchmark's options.
        turns: The finished turns the people say.
        unfinished: The turn that trails off.
        shared: The emulated cloud and PostgreSQL, opened by the caller.
    """

    warmup_sessions = 1
    """A warm-up round of this many sessions warms every event loop that runs sessions."""

    def __init__(
        self,
        args: argparse.Namespace,
        turns: list[SpokenTurn],
        unfinished: SpokenTurn,
        shared: SharedServices,
    ):
        """Keep what the rounds need; `open` connects."""
        self._args = args
        self._turns = turns
        self._unfinished = unfinished
        self._shared = shared

    @abstractmethod
    async def open(self) -> None:
        """Connect (and start the shards)."""

    @abstractmethod
    async def close(self) -> None:
        """Disconnect (and stop the shards)."""

    @abstractmethod
    async def round(
        self, kind: str, n: int, index: int, turns: int, *, unfinished: bool = False
    ) -> RoundResult:
        """Run `n` sessions of `kind`, each saying `turns` turns, and account for them."""

    async def _script(self, n: int, turns: int, unfinished: bool) -> None:
        """Tell the emulated cloud what each of the round's `n` people will say."""
        said = scripts(self._turns, self._unfinished, n, turns, unfinished)
        await self._shared.prepare([[t.text for t in script] for script in said])


class LocalRounds(Rounds):
    """Every session of every round in this process, on one event loop (`--processes 1`)."""

    _bench: Bench | None = None

    async def open(self) -> None:
        """Connect to the shared services."""
        assert self._shared.backends is not None
        self._bench = Bench(self._args, self._turns, self._unfinished, self._shared.backends)
        await self._bench.open()

    async def close(self) -> None:
        """Disconnect."""
        if self._bench is not None:
            await self._bench.close()

    async def round(
        self, kind: str, n: int, index: int, turns: int, *, unfinished: bool = False
    ) -> RoundResult:
        """Run `n` sessions of `kind`, each saying `turns` turns, and account for them."""
        assert self._bench is not None
        await self._script(n, turns, unfinished)
        result = await self._bench.run(kind, n, index, turns, unfinished=unfinished)
        result.chat_requests = await self._shared.chat_requests()
        return result
