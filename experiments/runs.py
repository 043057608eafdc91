"""One session played from a file through KANE's full pipeline, into a scratch database."""

from __future__ import annotations

import shutil
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import aiohttp
import asyncpg

from bot import SessionPlace, create_session, run_session
from processors.stages import PipelineSpec
from session.archive import Archive
from settings import Settings
from storage.database import Database
from storage.embedded import EmbeddedPostgres
from storage.quests import Quest
from transport.file import FileTransport
from transport.file_records import SentMessage, UserTurn


@dataclass
class RunResult:
    """What one run of a session did.

    Parameters:
        session_id: The run's own session id (in its scratch database).
        user_id: The person it ran for.
        pipeline: The pipeline it ran with.
        messages: Everything sent to the phone, in order.
        turns: The person's turns, as turn detection saw them.
        quests: The person's quests when it ended.
        end_reason: Why the session ended.
        speed: The speed it was asked to run at.
        session_s: Session time at the end (the person's side, trailing silence included).
        wall_s: Wall time it took, from the person joining to the end.
    """

    session_id: str
    user_id: str
    pipeline: PipelineSpec
    messages: list[SentMessage]
    turns: list[UserTurn]
    quests: list[Quest]
    end_reason: str
    speed: float
    session_s: float
    wall_s: float


class ScratchPostgres:
    """An embedded PostgreSQL in a temporary folder, with a fresh database for each run.

    Nothing touches the person's data: the server, its databases and the runs' recordings
    live under one temporary folder, removed on exit.

    Example:
        async with ScratchPostgres() as scratch:
            database = await scratch.open_database()
    """

    def __init__(self) -> None:
        """Prepare; the server starts on entering."""
        self.root = Path(tempfile.mkdtemp(prefix="kane-experiment-"))
        self._server = EmbeddedPostgres(self.root / "postgres" / "data")
        self._names: dict[Database, str] = {}

    async def __aenter__(self) -> ScratchPostgres:
        try:
            await self._server.start(database="postgres")
        except BaseException:
            shutil.rmtree(self.root, ignore_errors=True)
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            await self._server.stop()
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    async def open_database(self) -> Database:
        """A new, migrated database on the scratch server."""
        name = f"run_{uuid.uuid4().hex[:12]}"
        await self._server.ensure_database(name)
        database = await Database.open(self._server.dsn(name))
        self._names[database] = name
        return database

    async def drop_database(self, database: Database) -> None:
        """Close a database of `open_database` and drop it."""
        name = self._names.pop(database)
        await database.close()
        conn = await asyncpg.connect(self._server.dsn())
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()

    def data_dir(self, run: str) -> Path:
        """A folder of the scratch area for one run's recordings and spool."""
        folder = self.root / "runs" / run
        folder.mkdir(parents=True, exist_ok=True)
        return folder


async def run_file_session(
    transport: FileTransport,
    *,
    settings: Settings,
    pipeline: PipelineSpec,
    database: Database,
    data_dir: Path,
    on_message: Callable[[SentMessage], None] | None = None,
) -> RunResult:
    """Run one whole session whose person is `transport`, keeping it in `database`.

    Args:
        transport: The person's side (a WAV file or text turns).
        settings: Which engines run (and the greeting, the join deadlines).
        pipeline: KANE's stages between STT and the LLM.
        database: Where the session is kept (a scratch database).
        data_dir: Where its recordings and journal spool go.
        on_message: Called with each message for the phone as it is sent.
    """
    if on_message is not None:
        transport.add_event_handler("on_message_sent", lambda _, message: on_message(message))
    user_id = transport.user_identity
    place = SessionPlace(session_id=str(uuid.uuid4()), user_id=user_id, room="file")
    archive = Archive.open(database, data_dir)
    try:
        async with aiohttp.ClientSession() as http:
            session = create_session(place, transport, settings, http, archive, pipeline)
            reason = await run_session(session)
            ended = time.monotonic()
        quests = await archive.quests.list_active(user_id)
    finally:
        await archive.close()
    return RunResult(
        session_id=place.session_id,
        user_id=user_id,
        pipeline=pipeline,
        messages=list(transport.messages),
        turns=list(transport.turns),
        quests=quests,
        end_reason=reason,
        speed=transport.speed,
        session_s=transport.clock_s,
        wall_s=ended - transport.started_at if transport.started_at else 0.0,
    )


def offline(settings: Settings) -> Settings:
    """The same settings with every engine offline: faster-whisper, rules coach, eSpeak NG.

    Emotion is measured locally too: without a Hume key the emotion stage gets only the
    local analyzer. Nothing leaves the machine.
    """
    return settings.model_copy(
        update={
            "kane_stt": "whisper",
            "kane_llm": "rules",
            "kane_tts": ["espeak"],
            "hume_api_key": None,
        }
    )
