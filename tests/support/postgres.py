"""Real PostgreSQL for tests: one embedded server per test run, a fresh database per test.

Use as a pytest plugin (``pytest_plugins = ["tests.support.postgres"]``), then ask for
``postgres_dsn`` (the server's admin DSN), ``database_dsn`` (an empty database of the
test's own, dropped afterwards) or ``pg_data_dir`` (a place for a server of the test's own).

Data directories live outside pytest's ``tmp_path``: as root, PostgreSQL runs as another
user that needs to traverse the parents, and every new pytest session (a colleague's run
in parallel, say) resets ``/tmp/pytest-of-<user>`` to mode 0700.
"""

from __future__ import annotations

import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

import asyncpg
import pytest
import pytest_asyncio

from storage.database import Database
from storage.embedded import EmbeddedPostgres


def with_database(dsn: str, database: str) -> str:
    """Returns ``dsn`` pointing at another database on the same server."""
    return urlunsplit(urlsplit(dsn)._replace(path="/" + quote(database)))


async def create_database(admin_dsn: str, prefix: str = "test") -> str:
    """Creates an empty database with a unique name and returns its DSN."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    conn = await asyncpg.connect(admin_dsn)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return with_database(admin_dsn, name)


async def drop_database(admin_dsn: str, dsn: str) -> None:
    """Drops the database ``dsn`` points at, disconnecting anyone still on it."""
    name = urlsplit(dsn).path.lstrip("/")
    conn = await asyncpg.connect(admin_dsn)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


def make_data_dir() -> Path:
    """Returns a not-yet-existing PGDATA path in a new directory under the system temp."""
    return Path(tempfile.mkdtemp(prefix="kane-test-pg-")) / "data"


@pytest.fixture
def pg_data_dir() -> Iterator[Path]:
    """A data directory path for a test's own embedded server; removed afterwards."""
    data_dir = make_data_dir()
    yield data_dir
    shutil.rmtree(data_dir.parent, ignore_errors=True)


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def postgres_dsn() -> AsyncIterator[str]:
    """One embedded PostgreSQL for the whole test run; yields its admin DSN."""
    server = EmbeddedPostgres(make_data_dir())
    try:
        yield await server.start(database="postgres")
    finally:
        await server.stop()
        shutil.rmtree(server.data_dir.parent, ignore_errors=True)


@pytest.fixture
async def database_dsn(postgres_dsn: str) -> AsyncIterator[str]:
    """An empty database of the test's own on the shared server; yields its DSN."""
    dsn = await create_database(postgres_dsn)
    yield dsn
    await drop_database(postgres_dsn, dsn)


@pytest.fixture
async def database(database_dsn: str) -> AsyncIterator[Database]:
    """KANE's storage layer over the test's own database, migrated; closed afterwards."""
    database = await Database.open(database_dsn)
    try:
        yield database
    finally:
        await database.close()
