"""Real PostgreSQL for tests: one embedded server per test run, a fresh database per test.

Use as a pytest plugin (``pytest_plugins = ["tests.support.postgres"]``), then ask for
``postgres_dsn`` (the server's admin DSN) or ``database_dsn`` (an empty database of the
test's own, dropped afterwards).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from urllib.parse import quote, urlsplit, urlunsplit

import asyncpg
import pytest
import pytest_asyncio

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


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def postgres_dsn(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[str]:
    """One embedded PostgreSQL for the whole test run; yields its admin DSN."""
    server = EmbeddedPostgres(tmp_path_factory.mktemp("postgres") / "data")
    dsn = await server.start(database="postgres")
    yield dsn
    await server.stop()


@pytest.fixture
async def database_dsn(postgres_dsn: str) -> AsyncIterator[str]:
    """An empty database of the test's own on the shared server; yields its DSN."""
    dsn = await create_database(postgres_dsn)
    yield dsn
    await drop_database(postgres_dsn, dsn)
