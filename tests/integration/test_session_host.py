"""A session process on its own: what it answers to good and bad commands, and how it exits."""

import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from session.host_messages import (
    MAX_LINE_BYTES,
    BadLineError,
    EndAll,
    Ended,
    Refused,
    StartSession,
    decode_command,
    decode_event,
    encode,
)
from storage.database import Database

ROOT = Path(__file__).resolve().parents[2]


class Host:
    """`python -m session.host` with pipes, as the worker runs it."""

    def __init__(self, process: asyncio.subprocess.Process):
        self.process = process

    async def send(self, line: bytes) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(line)
        await self.process.stdin.drain()

    async def event(self, timeout_s: float = 60.0):
        assert self.process.stdout is not None
        line = await asyncio.wait_for(self.process.stdout.readline(), timeout_s)
        assert line, "the session process closed its event pipe"
        return decode_event(line)


@pytest.fixture
async def host(database: Database, database_dsn: str, tmp_path: Path) -> AsyncIterator[Host]:
    """The worker migrated the database before it starts its session processes."""
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("KANE_", "LIVEKIT_"))},
        "DATABASE_URL": database_dsn,
        "KANE_DATA_DIR": str(tmp_path / "data"),
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "session.host",
        "--index",
        "3",
        cwd=ROOT,
        env=env,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=(tmp_path / "host.log").open("wb"),
        limit=MAX_LINE_BYTES * 2,
    )
    yield Host(process)
    if process.returncode is None:
        process.kill()
        await process.wait()


async def test_bad_commands_are_refused_and_the_process_goes_on(host: Host, tmp_path: Path):
    ready = await host.event()
    assert ready.event == "ready" and ready.pid == host.process.pid

    await host.send(b"this is not json\n")
    refused = await host.event()
    assert isinstance(refused, Refused) and "bad command" in refused.reason

    await host.send(json.dumps({"op": "start", "session_id": "s1"}).encode() + b"\n")
    refused = await host.event()
    assert isinstance(refused, Refused) and "user_id" in refused.reason

    await host.send(b"x" * (MAX_LINE_BYTES + 10) + b"\n")
    refused = await host.event()
    assert isinstance(refused, Refused) and "too long" in refused.reason

    await host.send(
        json.dumps({"op": "end", "session_id": "nobody", "reason": "r"}).encode() + b"\n"
    )
    refused = await host.event()
    assert isinstance(refused, Refused) and refused.session_id == "nobody"

    # Still taking commands: end_all ends it cleanly.
    await host.send(encode(EndAll(reason="the worker is shutting down", grace_s=1)))
    assert await asyncio.wait_for(host.process.wait(), 30) == 0
    log = (tmp_path / "host.log").read_text()
    assert "sessions-3" in log and "refused a command" in log


async def test_a_session_that_cannot_join_ends_and_is_reported(host: Host, database_dsn: str):
    assert (await host.event()).event == "ready"
    # Nothing listens on this port: the bot cannot join, and the session ends on its own.
    start = StartSession(
        session_id="7d4b8f7e-44c5-4a8e-9d55-2f7d8e0c1a10",
        user_id="ada",
        room="kane-test",
        livekit_url="ws://127.0.0.1:9",
        bot_token="not-a-real-token",
    )
    await host.send(encode(start))
    ended = await host.event(timeout_s=60)
    assert isinstance(ended, Ended) and ended.session_id == start.session_id
    assert ended.reason
    # The pipe closing (the worker gone) ends the process too.
    assert host.process.stdin is not None
    host.process.stdin.close()
    assert await asyncio.wait_for(host.process.wait(), 30) == 0


def test_lines_are_validated_both_ways():
    with pytest.raises(BadLineError):
        decode_command(b'{"op": "start"}')
    with pytest.raises(BadLineError):
        decode_command(b'{"op": "explode"}')
    with pytest.raises(BadLineError):
        decode_event(b'{"event": "ended"}')
    with pytest.raises(BadLineError):
        decode_command(b"[" * (MAX_LINE_BYTES + 1))
    start = StartSession(
        session_id="s", user_id="u", room="r", livekit_url="ws://x", bot_token="secret-token"
    )
    assert decode_command(encode(start)) == start
    assert "secret-token" not in repr(start)
