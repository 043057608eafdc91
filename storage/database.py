"""The database: a connection pool to a migrated PostgreSQL, external or embedded."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import asyncpg
from asyncpg.pool import PoolConnectionProxy
from loguru import logger

from storage.conversations import ConversationStore
from storage.embedded import EmbeddedPostgres
from storage.journal import JournalWriter
from storage.migrations import MigrationError, load_migrations
from storage.migrations import migrate as apply_migrations
from storage.patterns import PatternStore
from storage.quests import QuestStore
from storage.sessions import SessionStore

# Connections are cheap to hold and the event loop is single-threaded: a worker rarely
# has more than a few queries in flight. The journal writer will want one of its own.
POOL_MIN_SIZE = 1
POOL_MAX_SIZE = 8
# /health must answer fast even when the database does not.
COMMAND_TIMEOUT_S = 30.0
PING_TIMEOUT = 1.0
_APPLIED_VERSIONS = "SELECT version FROM schema_migrations"


class Database:
    """A connection pool to a migrated KANE database.

    Open with ``await Database.open(settings.database_url)``: with a URL it connects to
    that server; without one it starts the embedded PostgreSQL. Either way the schema is
    migrated before ``open`` returns (or, with ``migrate=False``, found up to date).

    Connections decode ``json``/``jsonb`` to Python objects and encode them from Python
    objects (``jsonb`` in binary format, which ``copy_records_to_table`` needs).
    """

    def __init__(
        self,
        pool: asyncpg.Pool,
        *,
        description: str,
        dsn: str = "",
        embedded: EmbeddedPostgres | None = None,
    ) -> None:
        """Wraps an open pool; use ``Database.open`` rather than calling this.

        Args:
            pool: Open pool on a migrated database.
            description: What ``describe`` returns (must not hold a password).
            dsn: How another process of this worker connects to the same database (may
                hold a password: never log it).
            embedded: The embedded server this database started, stopped on ``close``.
        """
        self._pool = pool
        self._description = description
        self._dsn = dsn
        self._embedded = embedded
        self._sessions = SessionStore(pool)
        self._conversations = ConversationStore(pool)
        self._quests = QuestStore(pool)
        self._patterns = PatternStore(pool)

    def __str__(self) -> str:
        return f"Database({self._description})"

    @classmethod
    async def open(
        cls,
        database_url: str | None,
        *,
        data_dir: Path | None = None,
        min_size: int = POOL_MIN_SIZE,
        max_size: int = POOL_MAX_SIZE,
        migrate: bool = True,
    ) -> Database:
        """Connects (starting the embedded server if needed), migrates, and returns.

        Args:
            database_url: ``postgresql://`` URL (e.g. ``DATABASE_URL``); None or empty
                starts the embedded PostgreSQL.
            data_dir: Data directory of the embedded server; defaults to
                ``<user data dir>/kane/postgres``. Ignored with a URL.
            min_size: Connections the pool keeps open.
            max_size: Most connections the pool opens.
            migrate: Bring the schema up to date. False leaves the database as it is, for
                a reader of someone else's database, and refuses one whose schema is older
                than this code.

        Raises:
            storage.migrations.MigrationError: The schema cannot be brought up to date
                (or, with ``migrate=False``, is not up to date).
            OSError, asyncpg.PostgresError: The server cannot be reached.
        """
        embedded: EmbeddedPostgres | None = None
        if database_url:
            dsn = database_url
        else:
            embedded = EmbeddedPostgres(data_dir)
            dsn = await embedded.start()
        try:
            # A database that hangs must not hang a session: no statement waits forever.
            pool = await asyncpg.create_pool(
                dsn,
                min_size=min_size,
                max_size=max_size,
                init=init_connection,
                reset=keep_connection_state,
                command_timeout=COMMAND_TIMEOUT_S,
            )
        except BaseException:
            if embedded is not None:
                await embedded.stop()
            raise
        try:
            async with pool.acquire() as conn:
                if migrate:
                    await apply_migrations(conn)
                else:
                    await _check_schema(conn)
                major = conn.get_server_version().major
        except BaseException:
            await pool.close()
            if embedded is not None:
                await embedded.stop()
            raise
        if embedded is not None:
            description = f"embedded PostgreSQL {major} at {embedded.socket_dir}"
        else:
            description = f"PostgreSQL {major} at {redact_dsn(dsn)}"
        database = cls(pool, description=description, dsn=dsn, embedded=embedded)
        logger.info(f"{database}: open")
        return database

    @property
    def dsn(self) -> str:
        """How another process connects to this database (secret: never log it)."""
        return self._dsn

    @property
    def pool(self) -> asyncpg.Pool:
        """The asyncpg connection pool."""
        return self._pool

    @property
    def sessions(self) -> SessionStore:
        """Session rows (create, end, count)."""
        return self._sessions

    @property
    def conversations(self) -> ConversationStore:
        """Conversation rows (start, finish, get) and UI interactions."""
        return self._conversations

    @property
    def quests(self) -> QuestStore:
        """Each user's current quests, with every change versioned in quest_history."""
        return self._quests

    @property
    def patterns(self) -> PatternStore:
        """What KANE learned about each user (``user_patterns``), days taken in UTC."""
        return self._patterns

    def journal_writer(self, spool_path: Path, **options: Any) -> JournalWriter:
        """Returns a frame journal writer on this database's pool (not yet started).

        Args:
            spool_path: Spool file for while the database is away; one writer per file.
            **options: Further ``JournalWriter`` options (``max_batch``, ...).
        """
        return JournalWriter(self._pool, spool_path=spool_path, **options)

    def describe(self) -> str:
        """Says which database this is, for logs and /health; never shows a password."""
        return self._description

    async def ping(self, *, within: float = PING_TIMEOUT) -> bool:
        """Checks that the database answers a query within a short time.

        Args:
            within: Seconds to wait for a connection and the answer together.

        Returns:
            True if it answered, False otherwise (never raises).
        """
        try:
            async with asyncio.timeout(within):
                async with self._pool.acquire() as conn:
                    return bool(await conn.fetchval("SELECT 1") == 1)
        except Exception as exc:  # /health reports; it does not raise
            logger.warning(f"{self}: ping failed: {type(exc).__name__}: {exc}")
            return False

    async def close(self) -> None:
        """Closes the pool and stops the embedded server if this database started it."""
        if not self._pool.is_closing():
            try:
                await asyncio.wait_for(self._pool.close(), timeout=10)
            except TimeoutError:
                logger.warning(f"{self}: connections still busy after 10 s; terminating them")
                self._pool.terminate()
        if self._embedded is not None:
            await self._embedded.stop()
        logger.info(f"{self}: closed")


async def init_connection(conn: asyncpg.Connection) -> None:
    """Sets up a new connection: JSON codecs for ``json`` and ``jsonb``.

    Args:
        conn: A freshly opened connection.
    """
    await conn.set_type_codec("json", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")
    await conn.set_type_codec(
        "jsonb",
        encoder=_encode_jsonb,
        decoder=_decode_jsonb,
        schema="pg_catalog",
        format="binary",
    )


async def keep_connection_state(conn: asyncpg.Connection) -> None:
    """What a connection going back to the pool gets: nothing sent to the server.

    asyncpg's default sends a reset query on every release (`pg_advisory_unlock_all()`,
    `CLOSE ALL`, `UNLISTEN *`, `RESET ALL`): a round trip per release, ~100 µs of this
    process's CPU and ~170 µs of wall time measured against the embedded server, paid by
    every journal batch. KANE leaves no session state on a connection (no `SET`, no
    `LISTEN`, no cursor outside a transaction; the migrations' advisory lock is released
    before theirs is), and asyncpg still rolls back an open transaction and drops listeners
    before calling this.

    Args:
        conn: The connection going back to the pool.
    """


def redact_dsn(dsn: str) -> str:
    """Returns ``scheme://[user@]host[:port]/database`` from a DSN, without password.

    Query parameters are dropped (they may carry ``password=``), except a Unix socket
    directory given as ``?host=`` when the URL names no host.

    Args:
        dsn: A ``postgresql://`` URL.
    """
    try:
        parts = urlsplit(dsn)
        userinfo, _, hosts = parts.netloc.rpartition("@")
        user = userinfo.partition(":")[0]
        user_part = f"{user}@" if user else ""
        redacted = f"{parts.scheme}://{user_part}{hosts}{parts.path}"
        if not hosts:
            socket_dirs = parse_qs(parts.query).get("host", [])
            redacted += f"?host={','.join(socket_dirs)}" if socket_dirs else ""
        return redacted
    except ValueError:
        return "<unparseable database URL>"


async def _check_schema(conn: asyncpg.Connection | PoolConnectionProxy) -> None:
    """Refuses a database missing migrations this code knows; only reads it.

    Raises:
        MigrationError: The database has no KANE schema, or one older than this code.
    """
    try:
        applied = {row["version"] for row in await conn.fetch(_APPLIED_VERSIONS)}
    except asyncpg.UndefinedTableError:
        raise MigrationError(
            "the database has no KANE schema (no schema_migrations table)"
        ) from None
    pending = [m for m in load_migrations() if m.version not in applied]
    if pending:
        names = ", ".join(f"{m.version:04d}_{m.name}" for m in pending)
        raise MigrationError(
            f"the database's schema is older than this code (not applied: {names}); "
            "the worker migrates it when it starts"
        )


def _encode_jsonb(value: Any) -> bytes:
    # Binary jsonb is a version byte (1) followed by the JSON text.
    return b"\x01" + json.dumps(value).encode("utf-8")


def _decode_jsonb(data: bytes) -> Any:
    return json.loads(data[1:])
