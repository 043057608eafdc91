"""Sessions as the worker kept them: the person's recording, their words, the pipeline."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from urllib.parse import unquote, urlsplit

from pydantic import ValidationError

from processors.stages import PipelineSpec
from storage.database import Database
from transport.file_records import TextTurn

# The journal's kind of the person's final words, and of the moment they joined.
FINAL_TRANSCRIPT = "TranscriptionFrame"
JOINED = "session_started"
FINAL_TRANSCRIPTS_SQL = (
    "SELECT kind, mono_ns, payload FROM frame_journal "
    "WHERE session_id = $1 AND kind IN ($2, $3) ORDER BY seq"
)
"""A session's final transcripts and its joining, from the journal; $2, $3: the kinds."""


class StoredSessionError(ValueError):
    """A stored session that cannot be replayed; the message says why."""


@dataclass(frozen=True)
class StoredSession:
    """What a replay needs of a kept session.

    Parameters:
        session_id: The session.
        user_id: Its person.
        started_at: When it started.
        pipeline: The pipeline it ran with.
        recording_url: Where the person's recording was kept, if it was.
        recording: That recording, if it is a file on this machine.
        text_turns: The person's final transcripts, timed from when they joined.
    """

    session_id: str
    user_id: str
    started_at: datetime
    pipeline: PipelineSpec
    recording_url: str | None
    recording: Path | None
    text_turns: list[TextTurn]


async def load_session(database: Database, session_id: str) -> StoredSession:
    """Load a kept session from the worker's database.

    Raises:
        StoredSessionError: No such session, or its pipeline cannot be rebuilt.
    """
    try:
        sid = uuid.UUID(session_id)
    except ValueError:
        raise StoredSessionError(f"{session_id!r} is not a session id (a UUID)") from None
    conversation = await database.conversations.get(sid)
    if conversation is None:
        raise StoredSessionError(f"no session {session_id} in {database.describe()}")
    try:
        pipeline = PipelineSpec.model_validate(conversation.pipeline)
    except ValidationError as e:
        raise StoredSessionError(
            f"session {session_id} recorded a pipeline that cannot be rebuilt "
            f"({conversation.pipeline!r}): {e.errors()[0]['msg']}"
        ) from e
    url = conversation.user_audio_url or conversation.audio_url
    return StoredSession(
        session_id=str(sid),
        user_id=conversation.user_id,
        started_at=conversation.timestamp,
        pipeline=pipeline,
        recording_url=url,
        recording=_local_file(url),
        text_turns=await _final_transcripts(database, sid),
    )


async def sessions_since(database: Database, user_id: str, since: datetime) -> list[str]:
    """The ids of a person's sessions that started at or after `since`, oldest first."""
    rows = await database.pool.fetch(
        'SELECT session_id FROM conversations WHERE user_id = $1 AND "timestamp" >= $2 '
        'ORDER BY "timestamp"',
        user_id,
        since,
    )
    return [str(row["session_id"]) for row in rows]


async def _final_transcripts(database: Database, session_id: uuid.UUID) -> list[TextTurn]:
    rows = await database.pool.fetch(FINAL_TRANSCRIPTS_SQL, session_id, FINAL_TRANSCRIPT, JOINED)
    joined = next((row["mono_ns"] for row in rows if row["kind"] == JOINED), None)
    turns = []
    for row in rows:
        text = (row["payload"] or {}).get("text")
        if row["kind"] != FINAL_TRANSCRIPT or not isinstance(text, str) or not text.strip():
            continue
        origin = joined if joined is not None else rows[0]["mono_ns"]
        turns.append(TextTurn(at_s=max(0.0, (row["mono_ns"] - origin) / 1e9), text=text))
    return turns


def _local_file(url: str | None) -> Path | None:
    """The file a recording URL names, if it is a local file that exists."""
    if not url:
        return None
    parts = urlsplit(url)
    if parts.scheme not in ("", "file"):
        return None
    path = Path(unquote(parts.path))
    return path if path.is_file() else None
