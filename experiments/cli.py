"""``python -m experiments``: run talks through KANE offline, and replay kept sessions.

Examples::

    uv run python -m experiments simulate talk.wav --pipeline pipelines/no_emotion.toml
    uv run python -m experiments replay 0b6f...-... --pipeline pipelines/no_emotion.toml
    uv run python -m experiments replay --user ada --since 2026-11-01 --text

Both run on the offline engines (faster-whisper, the rules coach, eSpeak NG, local emotion),
so nothing leaves the machine; ``simulate --configured-engines`` runs the ones the settings
configure instead. Every run goes into a scratch database (an embedded PostgreSQL in a
temporary folder), so nothing touches the person's data; replays only read the worker's
database, and never migrate it. Every input is checked before anything runs.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import uuid
from collections.abc import Sequence
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import TextIO

import asyncpg
from loguru import logger
from pydantic import ValidationError

from experiments.compare import outcome
from experiments.replay import NotReplayable, check_replayable, replay_session
from experiments.report import (
    ProgressBar,
    SummaryRow,
    message_line,
    quest_lines,
    side_by_side,
    summary_table,
)
from experiments.runs import ScratchPostgres, offline, run_file_session
from experiments.stored import StoredSession, StoredSessionError, load_session, sessions_since
from processors.stages import PipelineError, PipelineSpec, load_pipeline
from settings import Settings
from storage.database import Database, redact_dsn
from storage.migrations import MigrationError
from transport.file import FileTransport, FileTransportError, FileTransportParams
from transport.file_records import SentMessage

USAGE_ERROR = 2


class UsageError(Exception):
    """Input the command cannot work with; printed as is, exit status 2."""


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line, logging only problems (or everything, with ``--verbose``).

    Args:
        argv: Arguments without the program name; defaults to ``sys.argv[1:]``.

    Returns:
        The exit status: 0, or 2 for input it cannot work with.
    """
    args = _parser().parse_args(argv)
    logger.remove()  # a report, not a log
    logger.add(sys.stderr, level="DEBUG" if args.verbose else "WARNING")
    return run(args)


def run(args: argparse.Namespace | Sequence[str], out: TextIO = sys.stdout) -> int:
    """Run a command, leaving logging as it is.

    Args:
        args: Parsed arguments, or arguments to parse (without the program name).
        out: Where results go; progress and problems go to stderr.

    Returns:
        The exit status: 0, or 2 for input it cannot work with.
    """
    if not isinstance(args, argparse.Namespace):
        args = _parser().parse_args(args)
    try:
        return asyncio.run(args.run(args, out))
    except (UsageError, PipelineError, StoredSessionError, NotReplayable, FileTransportError) as e:
        print(f"error: {e}", file=sys.stderr)
        return USAGE_ERROR
    except ValidationError as e:  # the settings in the environment
        print(f"error: the settings do not hold: {e}", file=sys.stderr)
        return USAGE_ERROR


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m experiments", description=(__doc__ or "").split("\n")[0]
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log what KANE does")
    commands = parser.add_subparsers(dest="command", required=True)

    simulate = commands.add_parser(
        "simulate", help="run a WAV through a whole session and print what the phone gets"
    )
    simulate.add_argument("audio", type=Path, help="a WAV of the person talking (any rate)")
    simulate.add_argument("--pipeline", type=Path, help="a pipeline file (default KANE_PIPELINE)")
    simulate.add_argument("--user", default="experiment", help="who talks (default experiment)")
    simulate.add_argument("--bot-audio", type=Path, help="write KANE's voice to this WAV")
    simulate.add_argument(
        "--configured-engines",
        action="store_true",
        help="use the engines the settings configure (cloud ones with their keys), not the "
        "offline ones: the person's audio and words then leave the machine",
    )
    _speed_argument(simulate, default=1.0)
    simulate.set_defaults(run=_simulate)

    replay = commands.add_parser(
        "replay",
        help="rerun kept sessions offline through their own pipeline and another, and diff",
    )
    which = replay.add_mutually_exclusive_group(required=True)
    which.add_argument("session", nargs="?", help="the session id")
    which.add_argument("--user", help="replay this person's sessions (with --since)")
    replay.add_argument("--since", type=_day, help="with --user: sessions from this day (UTC)")
    replay.add_argument(
        "--pipeline", type=Path, help="the pipeline to compare with (default KANE_PIPELINE)"
    )
    replay.add_argument(
        "--text", action="store_true", help="replay the final transcripts, not the audio"
    )
    replay.add_argument("--database-url", help="the worker's database (default DATABASE_URL)")
    replay.add_argument(
        "--data-dir", type=Path, help="the worker's data folder (default KANE_DATA_DIR)"
    )
    _speed_argument(replay, default=2.0)
    replay.set_defaults(run=_replay)
    return parser


def _speed_argument(parser: argparse.ArgumentParser, *, default: float) -> None:
    parser.add_argument(
        "--speed",
        type=float,
        default=default,
        help=f"times faster than real time (default {default:g}; runs compare at equal speed)",
    )


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a day (YYYY-MM-DD): {text!r}") from None


def _params(speed: float) -> FileTransportParams:
    try:
        return FileTransportParams(speed=speed)
    except ValidationError:
        raise UsageError(f"--speed must be above 0 and at most 100, not {speed:g}") from None


async def _simulate(args: argparse.Namespace, out: TextIO) -> int:
    params = _params(args.speed)
    if not args.user.strip():
        raise UsageError("--user must name someone")
    if not args.audio.is_file():
        raise UsageError(f"no such file: {args.audio}")
    if args.bot_audio is not None:
        _check_writable(args.bot_audio, option="--bot-audio")
    configured = Settings()
    settings = configured if args.configured_engines else offline(configured)
    pipeline = load_pipeline(args.pipeline or settings.kane_pipeline)
    transport = FileTransport(
        user_identity=args.user,
        audio=args.audio,
        bot_audio_path=args.bot_audio,
        params=params,
    )
    engines = "the configured engines" if args.configured_engines else "offline engines"
    print(
        f"simulating {args.audio} ({transport.audio_s:.1f} s) through pipeline "
        f"'{pipeline.name}' at {args.speed:g}x, on {engines}:",
        file=out,
    )
    for stage, engine in _engines(settings, pipeline):
        print(f"  {stage:8} {engine}", file=out)

    def show(message: SentMessage) -> None:
        print(message_line(message), file=out, flush=True)

    async with ScratchPostgres() as scratch:
        database = await scratch.open_database()
        try:
            run = await run_file_session(
                transport,
                settings=settings,
                pipeline=pipeline,
                database=database,
                data_dir=scratch.data_dir("simulate"),
                on_message=show,
            )
        finally:
            await database.close()
    print(
        f"session ended ({run.end_reason}) after {run.session_s:.1f} s of session time "
        f"in {run.wall_s:.1f} s; quests:",
        file=out,
    )
    for line in quest_lines(outcome(run).quests):
        print(line, file=out)
    return 0


def _check_writable(path: Path, *, option: str) -> None:
    """Make sure a file can be written at `path` (its folder is made when missing)."""
    if path.is_dir():
        raise UsageError(f"{option} {path}: a folder, not a file")
    if path.exists():
        if not os.access(path, os.W_OK):
            raise UsageError(f"{option} {path}: not writable")
        return
    folder = next(p for p in (path.parent, *path.parent.parents) if p.exists())
    if not folder.is_dir() or not os.access(folder, os.W_OK | os.X_OK):
        raise UsageError(f"{option} {path}: cannot write in {folder}")


def _engines(settings: Settings, pipeline: PipelineSpec) -> list[tuple[str, str]]:
    """The engine of each stage of a session, as the header shows them."""
    engines = settings.describe_engines()
    if any(stage.name == "emotion" for stage in pipeline.stages):
        emotion = engines["emotion"]
    else:
        emotion = f"none (pipeline '{pipeline.name}' has no emotion stage)"
    return [
        ("vad", engines["vad"]),
        ("stt", engines["stt"]),
        ("llm", engines["llm"]),
        ("tts", engines["tts"]),
        ("emotion", emotion),
    ]


async def _replay(args: argparse.Namespace, out: TextIO) -> int:
    if args.user is not None and args.since is None:
        raise UsageError("--user needs --since (the first day to replay)")
    if args.session is not None and args.since is not None:
        raise UsageError("--since goes with --user, not with a session id")
    if args.session is not None:
        _check_session_id(args.session)
    params = _params(args.speed)
    settings = Settings()
    other = load_pipeline(args.pipeline or settings.kane_pipeline)
    stored = await _load_stored(args, settings)
    if args.session is not None:
        return await _replay_one(stored[0], other, settings, params, args, out)
    if not stored:
        print(f"no sessions of {args.user} since {args.since}", file=out)
        return 0
    return await _replay_many(stored, other, settings, params, args, out)


async def _replay_one(
    session: StoredSession,
    other: PipelineSpec,
    settings: Settings,
    params: FileTransportParams,
    args: argparse.Namespace,
    out: TextIO,
) -> int:
    check_replayable(session, text=args.text)
    async with ScratchPostgres() as scratch:
        a, b = await replay_session(
            session, other, scratch=scratch, settings=settings, params=params, text=args.text
        )
    print(
        f"session {session.session_id} of {session.user_id}, kept {_when(session)} UTC, "
        f"replayed offline from its {'final transcripts' if args.text else 'recording'} "
        f"at {args.speed:g}x",
        file=out,
    )
    side_by_side(outcome(a), outcome(b), labels=_labels(session.pipeline, other), out=out)
    return 0


async def _replay_many(
    stored: list[StoredSession],
    other: PipelineSpec,
    settings: Settings,
    params: FileTransportParams,
    args: argparse.Namespace,
    out: TextIO,
) -> int:
    rows = []
    bar = ProgressBar(sys.stderr, len(stored))
    async with ScratchPostgres() as scratch:
        for done, session in enumerate(stored):
            bar.show(done, session.session_id[:8])
            try:
                a, b = await replay_session(
                    session,
                    other,
                    scratch=scratch,
                    settings=settings,
                    params=params,
                    text=args.text,
                )
            except NotReplayable as e:
                rows.append(SummaryRow(session.session_id, _when(session), note=str(e)))
                continue
            rows.append(SummaryRow(session.session_id, _when(session), outcome(a), outcome(b)))
        bar.show(len(stored), "done")
    bar.close()
    summary_table(rows, labels=("own pipeline", other.name), out=out)
    return 0


def _when(session: StoredSession) -> str:
    return f"{session.started_at.astimezone(UTC):%Y-%m-%d %H:%M}"


def _check_session_id(text: str) -> None:
    try:
        uuid.UUID(text)
    except ValueError:
        raise UsageError(f"{text!r} is not a session id (a UUID)") from None


async def _load_stored(args: argparse.Namespace, settings: Settings) -> list[StoredSession]:
    """The sessions to replay, read from the worker's database (which is then closed)."""
    database = await _open_worker_database(args, settings)
    try:
        if args.session is not None:
            return [await load_session(database, args.session)]
        since = datetime.combine(args.since, time.min, tzinfo=UTC)
        return [
            await load_session(database, session_id)
            for session_id in await sessions_since(database, args.user, since)
        ]
    finally:
        await database.close()


async def _open_worker_database(args: argparse.Namespace, settings: Settings) -> Database:
    """The worker's database, as it is: a replay reads it and never migrates it."""
    url = args.database_url or (
        settings.database_url.get_secret_value() if settings.database_url else None
    )
    if url:
        where = redact_dsn(url)
        data_dir = None
    else:
        data_dir = (args.data_dir or settings.kane_data_dir) / "postgres"
        where = f"the embedded PostgreSQL in {data_dir}"
        # Starting a server on a folder without one would make a new, empty database there.
        if not (data_dir / "PG_VERSION").is_file():
            raise UsageError(
                f"no worker's database in {data_dir} (give --database-url, or --data-dir "
                "with the worker's KANE_DATA_DIR)"
            )
    try:
        return await Database.open(url, data_dir=data_dir, migrate=False)
    except MigrationError as e:
        raise UsageError(f"the worker's database ({where}) cannot be replayed from: {e}") from e
    except (OSError, ValueError, asyncpg.PostgresError, asyncpg.InterfaceError) as e:
        raise UsageError(f"cannot open the worker's database ({where}): {e}") from e


def _labels(own: PipelineSpec, other: PipelineSpec) -> tuple[str, str]:
    if own.name == other.name:
        return (f"{own.name} (the session's)", f"{other.name} (its file now)")
    return (f"{own.name} (the session's)", other.name)
