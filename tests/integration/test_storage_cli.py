"""``python -m storage``: what a person sees for a small seeded session."""

from __future__ import annotations

import asyncio
import io
import os
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from storage.cli import print_sessions, print_timeline, summarize
from storage.database import Database
from storage.journal import COLUMNS

ROOT = Path(__file__).resolve().parents[2]
START = datetime(2026, 3, 1, 7, 0, 0, tzinfo=UTC)

JOURNAL = [  # (seconds after start, kind, direction, payload)
    (0.0, "StartFrame", "downstream", {}),
    (1.25, "InterimTranscriptionFrame", "downstream", {"text": "I need to", "confidence": 0.61}),
    (
        2.5,
        "TranscriptionFrame",
        "downstream",
        {"text": "I need to ship the demo", "confidence": 0.93},
    ),
    (2.75, "LLMTextFrame", "downstream", {"text": "Great — what does done look like?"}),
    (
        3.0,
        "FunctionCallInProgressFrame",
        "downstream",
        {"function_name": "create_quest", "arguments": {"title": "Ship the demo", "kind": "main"}},
    ),
    (
        3.1,
        "FunctionCallResultFrame",
        "upstream",
        {
            "function_name": "create_quest",
            "arguments": {"title": "Ship the demo"},
            "result": {"id": "q1"},
        },
    ),
    (3.2, "BotStartedSpeakingFrame", "upstream", {"state": "speaking"}),
    (3.3, "TTSTextFrame", "downstream", {"text": "Great"}),
    (4.0, "ErrorFrame", "upstream", {"error": "TTS timeout", "ui": {"banner": "retrying"}}),
]


async def seed(database: Database) -> uuid.UUID:
    session_id = uuid.uuid4()
    await database.sessions.create_session(session_id, "cli-user", "room-cli", {})
    await database.pool.execute(
        "UPDATE sessions SET started_at = $2, ended_at = $3, end_reason = 'user_left' "
        "WHERE id = $1",
        session_id,
        START,
        START + timedelta(seconds=95),
    )
    records = [
        (
            session_id,
            seq,
            10_000_000_000 + int(at * 1e9),
            START + timedelta(seconds=at),
            kind,
            direction,
            "test",
            payload,
        )
        for seq, (at, kind, direction, payload) in enumerate(JOURNAL)
    ]
    await database.pool.copy_records_to_table("frame_journal", records=records, columns=COLUMNS)
    return session_id


async def test_timeline_and_sessions_in_process(database_dsn: str) -> None:
    database = await Database.open(database_dsn)
    try:
        session_id = await seed(database)
        out = io.StringIO()
        assert await print_timeline(database, out, session_id) == 0
        sessions = io.StringIO()
        assert await print_sessions(database, sessions, user="cli-user") == 0
        missing = io.StringIO()
        assert await print_timeline(database, missing, uuid.uuid4()) == 1
    finally:
        await database.close()

    lines = out.getvalue().splitlines()
    print(out.getvalue())
    assert lines[0] == f"session {session_id}: 9 events from 2026-03-01 07:00:00 UTC"
    body = lines[1:]
    assert body[0] == "   +0.000s   StartFrame"
    assert '"I need to ship the demo" (0.93)' in body[2] and body[2].startswith("   +2.500s")
    assert '"Great — what does done look like?"' in body[3]
    assert 'create_quest({"kind":"main","title":"Ship the demo"})' in body[4]
    assert "↑" in body[5] and 'result={"id":"q1"}' in body[5]
    assert "state=speaking" in body[6]
    assert body[8].endswith(
        'ErrorFrame                   error=TTS timeout ui={"banner":"retrying"}'
    )
    assert sessions.getvalue().splitlines()[1].split() == [
        str(session_id),
        "cli-user",
        "2026-03-01",
        "07:00:00",
        "1:35",
        "user_left",
    ]
    assert "no journal" in missing.getvalue()


def test_summarize_is_one_short_line() -> None:
    assert summarize({"text": "line one\nline two " + "x" * 200}).count("\n") == 0
    assert len(summarize({"text": "x" * 500})) == 100
    assert summarize({}) == ""
    assert summarize(None) == ""


async def test_cli_runs_as_a_module(database_dsn: str) -> None:
    database = await Database.open(database_dsn)
    try:
        session_id = await seed(database)
    finally:
        await database.close()
    env = {**os.environ, "DATABASE_URL": database_dsn}
    outputs = []
    for args in (["sessions", "--limit", "5"], ["timeline", str(session_id)]):
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "storage",
            *args,
            cwd=ROOT,
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        stdout, stderr = await proc.communicate()
        assert proc.returncode == 0, stderr.decode()
        assert b"INFO" not in stderr
        outputs.append(stdout.decode())
    assert str(session_id) in outputs[0] and "cli-user" in outputs[0]
    assert "TranscriptionFrame" in outputs[1] and "create_quest(" in outputs[1]
