"""``python -m storage``: look at sessions and their journals from a terminal.

Examples::

    uv run python -m storage sessions --user u1 --limit 20
    uv run python -m storage timeline 0b6f...-...
    uv run python -m storage patterns --all

Connects to ``DATABASE_URL``, or to the embedded PostgreSQL when it is unset.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, TextIO

from loguru import logger

from storage.database import Database
from storage.patterns import PatternStore, UserPatterns

TIMELINE_SQL = (
    "SELECT seq, mono_ns, wall_time, kind, direction, source, payload FROM frame_journal "
    "WHERE session_id = $1 ORDER BY seq"
)
"""A session's journal in order ($1: the session)."""

_TEXT_WIDTH = 100
# Payload keys shown in the timeline, in this order; anything else is left out.
_SHOWN_KEYS = ("error", "state", "function_name", "arguments", "result", "ui")


def main(argv: Sequence[str] | None = None, out: TextIO = sys.stdout) -> int:
    """Runs the command line.

    Args:
        argv: Arguments without the program name; defaults to ``sys.argv[1:]``.
        out: Where to print.

    Returns:
        The exit status.
    """
    parser = argparse.ArgumentParser(prog="python -m storage", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    sessions = commands.add_parser("sessions", help="list sessions, newest first")
    sessions.add_argument("--user", help="only this user's sessions")
    sessions.add_argument("--limit", type=int, default=20, help="most sessions (default 20)")
    timeline = commands.add_parser("timeline", help="print a session's journal in order")
    timeline.add_argument("session_id", type=uuid.UUID, help="the session id")
    patterns = commands.add_parser("patterns", help="analyse users' patterns into user_patterns")
    who = patterns.add_mutually_exclusive_group(required=True)
    who.add_argument("--user", help="analyse this user")
    who.add_argument("--all", action="store_true", help="analyse every user")
    patterns.add_argument(
        "--tz",
        default=os.environ.get("KANE_CHECKIN_TZ", "UTC"),
        help="time zone of days and session times (default $KANE_CHECKIN_TZ or UTC)",
    )
    args = parser.parse_args(argv)

    logger.remove()  # a listing, not a log: only problems go to stderr
    logger.add(sys.stderr, level="WARNING")
    return asyncio.run(_run(args, out))


async def _run(args: argparse.Namespace, out: TextIO) -> int:
    database = await Database.open(os.environ.get("DATABASE_URL"))
    try:
        if args.command == "sessions":
            return await print_sessions(database, out, user=args.user, limit=args.limit)
        if args.command == "patterns":
            store = PatternStore(database.pool, tz=args.tz)
            return await analyze_patterns(store, out, user=args.user, err=sys.stderr)
        return await print_timeline(database, out, args.session_id)
    finally:
        await database.close()


async def print_sessions(
    database: Database, out: TextIO, *, user: str | None = None, limit: int = 20
) -> int:
    """Prints sessions, newest first: id, user, start, duration, end reason.

    Args:
        database: An open database.
        out: Where to print.
        user: Only this user's sessions, if given.
        limit: Most sessions to print.

    Returns:
        The exit status (0).
    """
    rows = await database.pool.fetch(
        "SELECT id, user_id, started_at, ended_at, end_reason FROM sessions "
        "WHERE $1::text IS NULL OR user_id = $1 ORDER BY started_at DESC LIMIT $2",
        user,
        limit,
    )
    print(f"{'session':36}  {'user':16}  {'started (UTC)':19}  {'duration':>9}  end", file=out)
    for row in rows:
        started: datetime = row["started_at"]
        ended: datetime | None = row["ended_at"]
        duration = _duration(ended - started) if ended else "active"
        print(
            f"{row['id']!s:36}  {_clip(row['user_id'], 16):16}  "
            f"{started:%Y-%m-%d %H:%M:%S}  {duration:>9}  {row['end_reason'] or '-'}",
            file=out,
        )
    if not rows:
        print("(no sessions)", file=out)
    return 0


async def print_timeline(database: Database, out: TextIO, session_id: uuid.UUID) -> int:
    """Prints a session's journal in order: time since its first event, kind, a short text.

    Args:
        database: An open database.
        out: Where to print.
        session_id: The session.

    Returns:
        The exit status: 0, or 1 if the session has no journal.
    """
    rows = await database.pool.fetch(TIMELINE_SQL, session_id)
    if not rows:
        print(f"no journal for session {session_id}", file=out)
        return 1
    first = rows[0]
    print(
        f"session {session_id}: {len(rows)} events from {first['wall_time']:%Y-%m-%d %H:%M:%S} UTC",
        file=out,
    )
    for row in rows:
        elapsed = (row["mono_ns"] - first["mono_ns"]) / 1e9
        arrow = "↑" if row["direction"] == "upstream" else " "
        line = f"{elapsed:+9.3f}s {arrow} {row['kind']:28} {summarize(row['payload'])}"
        print(line.rstrip(), file=out)
    return 0


async def analyze_patterns(
    store: PatternStore, out: TextIO, *, user: str | None = None, err: TextIO | None = None
) -> int:
    """Analyses one user's patterns, or every user's with a progress bar, and prints them.

    Args:
        store: The pattern store to analyse with (its time zone applies).
        out: Where to print the patterns.
        user: This user only; None for every user.
        err: Where the progress bar goes (``--all`` only); None for no bar.

    Returns:
        The exit status (0).
    """
    if user is not None:
        await store.analyze(user)
        users = [user]
    else:
        bar = _ProgressBar(err) if err is not None else None
        users = await store.analyze_all(progress=bar)
        if bar is not None:
            bar.close()
    print(
        f"{'user':16}  {'sessions':>8}  {'time':5}  {'q/day':>5}  {'done':>4}  {'coach':>5}  "
        "usual main quest",
        file=out,
    )
    for user_id in users:
        patterns = await store.get(user_id)
        if patterns is not None:
            print(_pattern_line(patterns), file=out)
    if not users:
        print("(no users)", file=out)
    return 0


def _pattern_line(p: UserPatterns) -> str:
    when = f"{p.preferred_session_time:%H:%M}" if p.preferred_session_time else "-"
    main = p.common_main_quests[0] if p.common_main_quests else None
    usual = f"{main.title} ({main.days} days)" if main else "-"
    return (
        f"{_clip(p.user_id, 16):16}  {p.session_count:>8}  {when:5}  "
        f"{_optional(p.average_quests_per_day, '.1f'):>5}  "
        f"{_optional(p.completion_rate, '.0%'):>4}  "
        f"{_optional(p.needs_coaching_probability, '.2f'):>5}  {_clip(usual, 40)}"
    )


def _optional(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


class _ProgressBar:
    """A text progress bar on a stream: redrawn in place on a terminal, a line a tenth otherwise."""

    WIDTH = 30

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._tty = stream.isatty()
        self._shown = -1

    def __call__(self, done: int, total: int, user_id: str) -> None:
        tenth = done * 10 // max(total, 1)
        if not self._tty and tenth == self._shown and done != total:
            return
        self._shown = tenth
        filled = done * self.WIDTH // max(total, 1)
        line = f"[{'#' * filled}{'.' * (self.WIDTH - filled)}] {done}/{total} {_clip(user_id, 24)}"
        self._stream.write(f"\r{line:<70}" if self._tty else line + "\n")
        self._stream.flush()

    def close(self) -> None:
        """Ends the bar's line."""
        if self._tty and self._shown >= 0:
            self._stream.write("\n")
            self._stream.flush()


def summarize(payload: Any) -> str:
    """Returns a short, one-line text for a journal payload, from the keys it has.

    Shows ``text`` (with ``confidence``) quoted, then ``error``, ``state``,
    ``function_name`` with its ``arguments``, ``result`` and ``ui``, as ``key=value``.

    Args:
        payload: A decoded ``frame_journal.payload``.
    """
    if not isinstance(payload, Mapping):
        return _clip(_compact(payload), _TEXT_WIDTH) if payload is not None else ""
    parts = []
    if (text := payload.get("text")) is not None:
        quoted = json.dumps(str(text), ensure_ascii=False)
        if (confidence := payload.get("confidence")) is not None:
            quoted += f" ({_number(confidence)})"
        parts.append(quoted)
    for key in _SHOWN_KEYS:
        if key == "arguments" and "function_name" in payload:
            continue  # shown with the name
        if (value := payload.get(key)) is None:
            continue
        if key == "function_name":
            parts.append(f"{value}({_compact(payload.get('arguments') or {})})")
        else:
            parts.append(f"{key}={_compact(value)}")
    return _clip(" ".join(parts), _TEXT_WIDTH)


def _compact(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)


def _number(value: Any) -> str:
    return f"{value:.2f}" if isinstance(value, float) else str(value)


def _clip(text: str, width: int) -> str:
    text = " ".join(text.split())  # one line
    return text if len(text) <= width else text[: width - 1] + "…"


def _duration(delta: Any) -> str:
    seconds = int(delta.total_seconds())
    minutes, seconds = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d}" if hours else f"{minutes}:{seconds:02d}"
