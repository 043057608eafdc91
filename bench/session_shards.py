"""The session benchmark over P processes, as a worker with one process per core runs.

`ShardedRounds` starts P long-lived shard processes (multiprocessing, spawn) once per run.
Each imports Pipecat, loads its models and connects to the shared PostgreSQL (by DSN) on its
own, and runs its share of every round's N sessions on its own event loop with the in-process
machinery (`Bench.run`), slots numbered as in one process. A round: the parent scripts the
emulated cloud for all N slots, sends each shard its slots, waits until every shard's
microphones are open, tells them all when to start talking (the same instant), and merges
their results into one `RoundResult`. A side-by-side round gives the shards the two kinds in
turn and merges each kind's parts apart (`ShardedRounds.side_by_side`).

Messages on each shard's pipe: parent -> shard `Run` or None (stop); `_Go` (start at a
`time.monotonic()` instant, the same clock in every process); shard -> parent ("open",),
("ready",), ("done", RoundResult) or ("error", traceback).
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import sys
import time
import traceback
from dataclasses import dataclass, replace
from multiprocessing.connection import Connection
from typing import Any

import uvloop
from loguru import logger

from bench.loopback_transport import SpokenTurn
from bench.session_rounds import Bench, RoundResult, Rounds
from bench.session_shared import Backends, SharedServices

START_AHEAD_S = 0.05
"""How far ahead of now the parent sets the shards' common start, so every shard has the
word before it comes."""
OPEN_TIMEOUT_S = 300.0


@dataclass(frozen=True)
class Run:
    """A round's share for one shard.

    Parameters:
        kind: The kind of session.
        n: Sessions in the whole round.
        index: The round's number (seeds the first turns' offsets and gaps).
        turns: Turns per session.
        slots: This shard's slots of the round.
        unfinished: Each session's second turn is the unfinished one.
    """

    kind: str
    n: int
    index: int
    turns: int
    slots: range
    unfinished: bool


@dataclass(frozen=True)
class _Go:
    at: float


class _Stopped(Exception):
    """The parent said stop while a shard waited for a round to begin."""


def split(n: int, shards: int) -> list[range]:
    """`range(n)` in `shards` contiguous parts as even as possible (the first ones longer)."""
    size, extra = divmod(n, shards)
    parts, start = [], 0
    for shard in range(shards):
        length = size + (shard < extra)
        parts.append(range(start, start + length))
        start += length
    return parts


def merge(
    parts: list[RoundResult], chat_requests: int, loadavg: tuple[float, float]
) -> RoundResult:
    """One round from its shards' parts.

    CPU of the shards (and of their event loops' threads, and those threads' context
    switches) is summed; Postgres', the emulators' and the system's are those of the
    shard that talked longest (every shard starts at the same instant, so its window holds
    the others'). RSS before and at peak are summed, so their difference is the sum of each
    shard's growth. The journal's counts and backlog peaks are summed (one writer a shard).
    """
    longest = max(parts, key=lambda part: part.talk_s)
    journals = [part.journal for part in parts if part.journal]
    journal: dict[str, Any] = {}
    if journals:
        journal = {key: sum(j[key] for j in journals) for key in journals[0]}
        journal["events_per_s"] = round(journal["accepted"] / max(longest.talk_s, 1e-9), 1)
    return RoundResult(
        kind=parts[0].kind,
        sessions=parts[0].sessions,
        index=parts[0].index,
        outcomes=sorted((o for part in parts for o in part.outcomes), key=lambda o: o.slot),
        setup_s=max(part.setup_s for part in parts),
        talk_s=longest.talk_s,
        teardown_s=max(part.teardown_s for part in parts),
        cpu_own_s=sum(part.cpu_own_s for part in parts),
        cpu_postgres_s=longest.cpu_postgres_s,
        cpu_emulators_s=longest.cpu_emulators_s,
        system_cpu_pct=longest.system_cpu_pct,
        rss_before_mb=sum(part.rss_before_mb for part in parts),
        rss_peak_mb=sum(part.rss_peak_mb for part in parts),
        input_backlog_peak=max(part.input_backlog_peak for part in parts),
        chat_requests=chat_requests,
        loadavg=loadavg,
        journal=journal,
        loop_cpu_s=sum(part.loop_cpu_s for part in parts),
        loop_preempted=sum(part.loop_preempted for part in parts),
        loop_waited=sum(part.loop_waited for part in parts),
    )


def side_by_side_refusal(processes: int, sessions: int) -> str | None:
    """Why `processes` shards cannot run a round of `sessions` side by side (each kind in
    as many processes as the other, every process with a session), or None if they can."""
    if processes % 2 or sessions < processes:
        return (
            "side-by-side rounds need an even number of processes and a session for each:"
            f" {processes} processes, {sessions} sessions"
        )
    return None


class ShardedRounds(Rounds):
    """Every round's sessions spread over P shard processes."""

    def __init__(
        self,
        args: argparse.Namespace,
        turns: list[SpokenTurn],
        unfinished: SpokenTurn,
        shared: SharedServices,
        processes: int,
    ):
        """Run rounds over `processes` shards once `open` started them (see `Rounds`)."""
        super().__init__(args, turns, unfinished, shared)
        self._count = processes
        self._shards: list[tuple[multiprocessing.process.BaseProcess, Connection]] = []
        self.warmup_sessions = processes  # one session for every shard

    async def open(self) -> None:
        """Start the shards and wait until each has connected."""
        assert self._shared.backends is not None
        context = multiprocessing.get_context("spawn")
        for shard in range(self._count):
            mine, theirs = context.Pipe()
            process = context.Process(
                target=serve,
                args=(theirs, self._args, self._turns, self._unfinished, self._shared.backends),
                name=f"kane-bench-shard-{shard}",
                daemon=True,
            )
            process.start()
            theirs.close()
            self._shards.append((process, mine))
        await asyncio.wait_for(
            asyncio.gather(*(_expect(conn, "open") for _, conn in self._shards)), OPEN_TIMEOUT_S
        )

    async def close(self) -> None:
        """Stop the shards (each closes its connections first)."""
        for process, conn in self._shards:
            if process.is_alive():
                try:
                    conn.send(None)
                except OSError:
                    pass
        for process, conn in self._shards:
            await asyncio.to_thread(process.join, 30)
            if process.is_alive():
                process.terminate()
                await asyncio.to_thread(process.join, 10)
            conn.close()
        self._shards = []

    async def round(
        self, kind: str, n: int, index: int, turns: int, *, unfinished: bool = False
    ) -> RoundResult:
        """Run `n` sessions of `kind` over the shards, each saying `turns` turns; merged."""
        parts, chat_requests, loadavg = await self._run_shares(
            [kind] * self._count, n, index, turns, unfinished
        )
        return merge(parts, chat_requests, loadavg)

    async def side_by_side(
        self, kinds: tuple[str, str], n: int, index: int, turns: int
    ) -> dict[str, RoundResult]:
        """Run a round of `n` sessions with each shard's share all of one kind, the shards
        taking `kinds` in turn (shard 0 `kinds[0]`, shard 1 `kinds[1]`, ...): every process
        holds sessions of one kind only, and both kinds talk in the same moments of the host.

        Returns:
            Each kind's shares merged, its `sessions` the count of its own sessions (its
            CPU is its processes' alone); the chat requests and load are the round's.
        """
        if refusal := side_by_side_refusal(self._count, n):
            raise ValueError(refusal)
        shares = [kinds[shard % len(kinds)] for shard in range(self._count)]
        parts, chat_requests, loadavg = await self._run_shares(shares, n, index, turns, False)
        by_kind = {}
        for kind in kinds:
            mine = [part for part in parts if part.kind == kind]
            merged = merge(mine, chat_requests, loadavg)
            by_kind[kind] = replace(merged, sessions=len(merged.outcomes))
        return by_kind

    async def _run_shares(
        self, kinds: list[str], n: int, index: int, turns: int, unfinished: bool
    ) -> tuple[list[RoundResult], int, tuple[float, float]]:
        """Run a round, shard i's slots as `kinds[i]`; the shards' parts, the chat requests
        and the load average before and after."""
        await self._script(n, turns, unfinished)
        load_before = os.getloadavg()[0]
        busy = [
            (conn, Run(kind, n, index, turns, slots, unfinished))
            for (_, conn), kind, slots in zip(
                self._shards, kinds, split(n, self._count), strict=True
            )
            if slots
        ]
        for conn, run in busy:
            conn.send(run)
        await asyncio.gather(*(_expect(conn, "ready") for conn, _ in busy))
        go = _Go(at=time.monotonic() + START_AHEAD_S)
        for conn, _ in busy:
            conn.send(go)
        parts = await asyncio.gather(*(_expect(conn, "done") for conn, _ in busy))
        chat_requests = await self._shared.chat_requests()
        return list(parts), chat_requests, (load_before, os.getloadavg()[0])


async def _expect(conn: Connection, what: str) -> Any:
    """The shard's next message, which must be `what`; its payload, if any."""
    try:
        message = await asyncio.to_thread(conn.recv)
    except EOFError as error:
        raise RuntimeError(
            f"a benchmark shard exited while the parent waited for {what}"
        ) from error
    if message[0] == "error":
        raise RuntimeError(f"a benchmark shard failed:\n{message[1]}")
    if message[0] != what:
        raise RuntimeError(f"a benchmark shard said {message[0]!r}, not {what!r}")
    return message[1] if len(message) > 1 else None


def serve(
    conn: Connection,
    args: argparse.Namespace,
    turns: list[SpokenTurn],
    unfinished: SpokenTurn,
    backends: Backends,
) -> None:
    """A shard process: run rounds' shares as the parent asks, until it says stop."""
    logger.remove()
    logger.add(sys.stderr, level=args.log_level)
    # The worker's session processes run on uvloop (session/host.py); so do the shards.
    uvloop.run(_serve(conn, Bench(args, turns, unfinished, backends)))


async def _serve(conn: Connection, bench: Bench) -> None:
    try:
        await bench.open()
    except Exception:
        conn.send(("error", traceback.format_exc()))
        await bench.close()
        return
    try:
        conn.send(("open",))
        while (run := await asyncio.to_thread(conn.recv)) is not None:

            async def barrier() -> None:
                conn.send(("ready",))
                go = await asyncio.to_thread(conn.recv)
                if not isinstance(go, _Go):
                    raise _Stopped
                await asyncio.sleep(max(0.0, go.at - time.monotonic()))

            try:
                result = await bench.run(
                    run.kind,
                    run.n,
                    run.index,
                    run.turns,
                    slots=run.slots,
                    unfinished=run.unfinished,
                    barrier=barrier,
                )
            except _Stopped:
                break
            except Exception:
                conn.send(("error", traceback.format_exc()))
            else:
                conn.send(("done", result))
    except EOFError:
        pass  # the parent went away
    finally:
        await bench.close()
