"""Storage against a real (embedded) PostgreSQL: migrations, Database, sessions."""

from __future__ import annotations

import asyncio
import shutil
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest
from loguru import logger

from storage.database import Database, redact_dsn
from storage.embedded import EmbeddedPostgres
from storage.migrations import MIGRATIONS_DIR, MigrationError, load_migrations, migrate

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def log_lines() -> Iterator[list[str]]:
    lines: list[str] = []
    sink = logger.add(lambda message: lines.append(str(message)), level="DEBUG")
    yield lines
    logger.remove(sink)


@pytest.fixture
def migrations_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "migrations"
    shutil.copytree(MIGRATIONS_DIR, directory)
    return directory


def postmaster_running(data_dir: Path) -> bool:
    return (data_dir / "postmaster.pid").exists()


# --- migrations ---------------------------------------------------------------------


async def test_migrations_apply_once_and_reopen_is_idempotent(database_dsn: str) -> None:
    db = await Database.open(database_dsn)
    first = await db.pool.fetch("SELECT version, name, checksum, applied_at FROM schema_migrations")
    assert await db.pool.fetchval("SELECT to_regclass('sessions') IS NOT NULL")
    await db.close()

    db = await Database.open(database_dsn)
    try:
        again = await db.pool.fetch(
            "SELECT version, name, checksum, applied_at FROM schema_migrations"
        )
        async with db.pool.acquire() as conn:
            assert await migrate(conn) == []
    finally:
        await db.close()

    assert [(r["version"], r["name"]) for r in first] == [
        (m.version, m.name) for m in load_migrations()
    ]
    assert again == first  # same rows, same applied_at: nothing re-applied


async def test_changed_applied_migration_is_refused(database_dsn: str, migrations_dir: Path):
    conn = await asyncpg.connect(database_dsn)
    try:
        assert len(await migrate(conn, migrations_dir)) == len(load_migrations())
        first = migrations_dir / "0001_sessions.sql"
        first.write_text(first.read_text() + "\nALTER TABLE sessions ADD COLUMN extra text;\n")
        (migrations_dir / "9001_more.sql").write_text("CREATE TABLE more (id int);")

        with pytest.raises(MigrationError, match="0001_sessions was changed"):
            await migrate(conn, migrations_dir)

        assert await conn.fetchval("SELECT to_regclass('more')") is None
        assert await conn.fetchval("SELECT max(version) FROM schema_migrations") == max(
            m.version for m in load_migrations()
        )
    finally:
        await conn.close()


async def test_migrations_apply_in_order_each_in_a_transaction(
    database_dsn: str, migrations_dir: Path
) -> None:
    # Fixture migrations are numbered 9001+ so they never collide with the real ones.
    (migrations_dir / "9010_uses_later.sql").write_text("ALTER TABLE notes ADD COLUMN n int;")
    (migrations_dir / "9001_notes.sql").write_text("CREATE TABLE notes (body text);")
    (migrations_dir / "9011_broken.sql").write_text("CREATE TABLE half (id int); SELECT 1/0;")
    shipped = [m.version for m in load_migrations()]
    conn = await asyncpg.connect(database_dsn)
    try:
        with pytest.raises(asyncpg.DivisionByZeroError):
            await migrate(conn, migrations_dir)
        versions = await conn.fetch("SELECT version FROM schema_migrations ORDER BY applied_at")
        assert [r["version"] for r in versions] == [*shipped, 9001, 9010]
        assert await conn.fetchval("SELECT to_regclass('half')") is None  # rolled back
        # The lock was released despite the failure: a second run gets it and retries.
        (migrations_dir / "9011_broken.sql").write_text("CREATE TABLE half (id int);")
        assert [m.version for m in await migrate(conn, migrations_dir, lock_timeout=2)] == [9011]
    finally:
        await conn.close()


def test_misnamed_migration_file_is_refused(migrations_dir: Path) -> None:
    (migrations_dir / "2_oops.sql").write_text("SELECT 1;")
    with pytest.raises(MigrationError, match="NNNN_name.sql"):
        load_migrations(migrations_dir)


async def test_concurrent_migrations_apply_each_once(
    database_dsn: str, migrations_dir: Path
) -> None:
    # A slow migration keeps the first runner inside the lock while the others arrive.
    (migrations_dir / "9001_slow.sql").write_text(
        "SELECT pg_sleep(0.3); CREATE TABLE slow (id int);"
    )
    conns = [await asyncpg.connect(database_dsn) for _ in range(4)]
    try:
        results = await asyncio.gather(*(migrate(c, migrations_dir) for c in conns))
        rows = await conns[0].fetch("SELECT version FROM schema_migrations ORDER BY version")
    finally:
        for conn in conns:
            await conn.close()

    expected = [*(m.version for m in load_migrations()), 9001]
    applied = sorted(m.version for result in results for m in result)
    assert applied == expected
    assert [r["version"] for r in rows] == expected


# --- Database -------------------------------------------------------------------------


async def test_open_with_url_pings_and_hides_password(
    database_dsn: str, log_lines: list[str]
) -> None:
    # The embedded server trusts local connections, so any password is accepted.
    url = database_dsn.replace("postgresql://postgres@", "postgresql://postgres:s3cr3t@")
    url += "&password=s3cr3t"
    db = await Database.open(url)
    try:
        assert await db.ping()
        description = db.describe()
    finally:
        await db.close()

    assert description.startswith("PostgreSQL 18 at postgresql://postgres@/test_")
    assert "?host=/" in description
    assert "s3cr3t" not in description
    assert log_lines and not any("s3cr3t" in line for line in log_lines)


def test_redact_dsn_drops_password_wherever_it_is() -> None:
    assert (
        redact_dsn("postgres://kane:p%40ss@db.example.com:5433/kane?sslmode=require")
        == "postgres://kane@db.example.com:5433/kane"
    )
    assert (
        redact_dsn("postgresql://u:x@/kane?password=x&host=/run/pg")
        == "postgresql://u@/kane?host=/run/pg"
    )
    assert redact_dsn("postgresql://a:pw@h1:5432,h2:5433/db") == "postgresql://a@h1:5432,h2:5433/db"


async def test_ping_is_false_once_closed(database_dsn: str) -> None:
    db = await Database.open(database_dsn)
    await db.close()
    assert await db.ping() is False


async def test_open_embedded_restart_reuses_data_dir(pg_data_dir: Path) -> None:
    data_dir = pg_data_dir
    started = time.perf_counter()
    db = await Database.open(None, data_dir=data_dir)
    fresh_start = time.perf_counter() - started
    session_id = uuid.uuid4()
    try:
        assert db.describe().startswith("embedded PostgreSQL 18 at ")
        assert await db.ping()
        await db.sessions.create_session(session_id, "u1", "room-1", {"stt": "whisper"})
    finally:
        await db.close()
    assert not postmaster_running(data_dir)

    started = time.perf_counter()
    db = await Database.open(None, data_dir=data_dir)
    restart = time.perf_counter() - started
    try:
        record = await db.sessions.get_session(session_id)
        assert record is not None and record.engines == {"stt": "whisper"}
        assert await db.pool.fetchval("SELECT count(*) FROM schema_migrations") == len(
            load_migrations()
        )
    finally:
        await db.close()
    print(f"embedded start: fresh {fresh_start:.2f} s, restart {restart:.2f} s")


async def test_two_handles_in_one_process_share_the_server(pg_data_dir: Path) -> None:
    first, second = EmbeddedPostgres(pg_data_dir), EmbeddedPostgres(pg_data_dir)
    dsn = await first.start()
    assert await second.start() == dsn
    await first.stop()
    conn = await asyncpg.connect(dsn)  # still up for the second handle
    await conn.close()
    await second.stop()
    assert not postmaster_running(pg_data_dir)


_CRASH = """
import asyncio, os, signal, sys
from pathlib import Path
from storage.embedded import EmbeddedPostgres

async def main():
    server = EmbeddedPostgres(Path(sys.argv[1]))
    await server.start()
    pid = int((server.data_dir / "postmaster.pid").read_text().split()[0])
    os.kill(pid, signal.SIGKILL)

asyncio.run(main())
os._exit(0)  # no atexit: the handle file keeps this dead pid
"""


@pytest.mark.parametrize("pid_reused", [False, True], ids=["dead-pid", "pid-reused"])
async def test_start_after_crash_clears_stale_files(pg_data_dir: Path, pid_reused: bool) -> None:
    data_dir = pg_data_dir
    crash = await asyncio.create_subprocess_exec(sys.executable, "-c", _CRASH, data_dir, cwd=ROOT)
    assert await crash.wait() == 0
    pid_file = data_dir / "postmaster.pid"
    assert pid_file.exists()
    squatter = None
    if pid_reused:  # an unrelated live process now has the dead server's pid
        squatter = await asyncio.create_subprocess_exec("sleep", "30")
        lines = pid_file.read_text().splitlines()
        pid_file.write_text("\n".join([str(squatter.pid), *lines[1:]]) + "\n")
    try:
        db = await Database.open(None, data_dir=data_dir)
        try:
            assert await db.ping()
        finally:
            await db.close()
    finally:
        if squatter is not None:
            squatter.terminate()
            await squatter.wait()
    # The dead holder was forgotten, so closing the last live handle stopped the server.
    assert not pid_file.exists()


# --- sessions ---------------------------------------------------------------------------


async def test_session_lifecycle(database_dsn: str) -> None:
    db = await Database.open(database_dsn)
    sessions = db.sessions
    a, b = uuid.uuid4(), str(uuid.uuid4())
    try:
        assert await sessions.count_active_sessions() == 0
        await sessions.create_session(a, "user-1", "room-a", {"stt": "deepgram", "llm": "openai"})
        await sessions.create_session(b, "user-2", "room-b", {})
        assert await sessions.count_active_sessions() == 2
        with pytest.raises(asyncpg.UniqueViolationError):
            await sessions.create_session(a, "user-1", "room-a", {})

        assert await sessions.end_session(a, "user_left") is True
        assert await sessions.end_session(a, "error") is False  # already ended: unchanged
        assert await sessions.end_session(uuid.uuid4(), "error") is False
        assert await sessions.count_active_sessions() == 1

        record = await sessions.get_session(a)
        assert record is not None
        assert (record.user_id, record.room, record.end_reason) == ("user-1", "room-a", "user_left")
        assert record.engines == {"stt": "deepgram", "llm": "openai"}
        assert record.ended_at is not None and record.ended_at >= record.started_at
        assert await sessions.get_session(uuid.uuid4()) is None
    finally:
        await db.close()


async def test_jsonb_codec_supports_copy(database_dsn: str) -> None:
    db = await Database.open(database_dsn)
    try:
        records = [(uuid.uuid4(), "u", "r", {"n": i}) for i in range(3)]
        await db.pool.copy_records_to_table(
            "sessions", records=records, columns=["id", "user_id", "room", "engines"]
        )
        rows = await db.pool.fetch("SELECT engines FROM sessions ORDER BY engines->>'n'")
        assert [r["engines"] for r in rows] == [{"n": 0}, {"n": 1}, {"n": 2}]
    finally:
        await db.close()


async def test_a_connection_back_in_the_pool_has_no_transaction_left_open(
    database_dsn: str,
) -> None:
    """The pool sends no reset query on release, yet what a caller left open is rolled back."""
    database = await Database.open(database_dsn, min_size=1, max_size=1)
    try:
        pool = database.pool
        async with pool.acquire() as conn:
            await conn.execute("BEGIN")
            await conn.execute("CREATE TEMP TABLE left_behind (a int)")
        async with pool.acquire() as conn:  # the one connection, again
            assert not conn.is_in_transaction()
            tables = await conn.fetchval(
                "SELECT count(*) FROM pg_tables WHERE tablename = $1", "left_behind"
            )
            assert tables == 0
    finally:
        await database.close()
