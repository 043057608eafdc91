"""Numbered SQL migrations, applied at start.

Migrations are files ``storage/migrations/NNNN_name.sql``. Each is applied once, in
version order, in its own transaction, and recorded in ``schema_migrations`` with a
checksum of its text. A PostgreSQL advisory lock serialises workers that start at the
same time. An applied migration whose file has since changed is refused: write a new
migration instead of editing an old one.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

import asyncpg
from asyncpg.pool import PoolConnectionProxy
from loguru import logger

MIGRATIONS_DIR = Path(__file__).with_name("migrations")

# Key of the session-level advisory lock held while migrating (any fixed bigint works;
# this one is the first 8 bytes of sha256("kane.schema_migrations"), as a signed int).
ADVISORY_LOCK_KEY = int.from_bytes(
    hashlib.sha256(b"kane.schema_migrations").digest()[:8], "big", signed=True
)

_FILE_NAME = re.compile(r"^(?P<version>\d{4})_(?P<name>[a-z0-9_]+)\.sql$")

_CREATE_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version     integer     PRIMARY KEY,
    name        text        NOT NULL,
    checksum    text        NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT now()
)
"""


class MigrationError(RuntimeError):
    """The migrations on disk and the ones applied to the database disagree."""


@dataclass(frozen=True)
class Migration:
    """One SQL migration file.

    Parameters:
        version: Number from the file name, e.g. 1 for ``0001_sessions.sql``.
        name: Rest of the file name, e.g. ``sessions``.
        sql: The file's text.
        checksum: sha256 of the text, with line endings normalised to LF.
    """

    version: int
    name: str
    sql: str
    checksum: str

    @classmethod
    def from_file(cls, path: Path) -> Migration:
        """Reads a migration file.

        Args:
            path: A file named ``NNNN_name.sql``.

        Raises:
            MigrationError: The file name does not follow the pattern.
        """
        match = _FILE_NAME.match(path.name)
        if match is None:
            raise MigrationError(f"migration file {path.name!r} is not named NNNN_name.sql")
        sql = path.read_text(encoding="utf-8").replace("\r\n", "\n")
        checksum = hashlib.sha256(sql.encode("utf-8")).hexdigest()
        return cls(int(match["version"]), match["name"], sql, checksum)


def load_migrations(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    """Reads all migrations in ``directory``, sorted by version.

    Args:
        directory: Folder of ``NNNN_name.sql`` files.

    Raises:
        MigrationError: A ``.sql`` file is misnamed, or two files share a version.
    """
    migrations = sorted(
        (Migration.from_file(path) for path in directory.glob("*.sql")),
        key=lambda m: m.version,
    )
    for previous, current in zip(migrations, migrations[1:], strict=False):
        if previous.version == current.version:
            raise MigrationError(
                f"two migrations share version {current.version}: "
                f"{previous.name!r} and {current.name!r}"
            )
    return migrations


async def migrate(
    conn: asyncpg.Connection | PoolConnectionProxy,
    directory: Path = MIGRATIONS_DIR,
    *,
    lock_timeout: float = 60.0,
) -> list[Migration]:
    """Applies pending migrations to the database ``conn`` is connected to.

    Safe to call from several processes at once: they queue on an advisory lock and all
    but the first find nothing to do.

    Args:
        conn: A connection outside any transaction.
        directory: Folder of migration files.
        lock_timeout: Seconds to wait for another process's migration run.

    Returns:
        The migrations applied by this call (empty if the schema was up to date).

    Raises:
        MigrationError: An applied migration's file changed, or the files are invalid.
        TimeoutError: Another process held the migration lock for too long.
    """
    migrations = load_migrations(directory)
    await conn.execute("SELECT pg_advisory_lock($1)", ADVISORY_LOCK_KEY, timeout=lock_timeout)
    try:
        await conn.execute(_CREATE_TABLE)
        applied = {
            row["version"]: row
            for row in await conn.fetch("SELECT version, name, checksum FROM schema_migrations")
        }
        _check_applied(migrations, applied)
        done: list[Migration] = []
        for migration in migrations:
            if migration.version in applied:
                continue
            async with conn.transaction():
                await conn.execute(migration.sql)
                await conn.execute(
                    "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
                    migration.version,
                    migration.name,
                    migration.checksum,
                )
            logger.info(f"migrations: applied {migration.version:04d}_{migration.name}")
            done.append(migration)
        return done
    finally:
        if not conn.is_closed():
            await conn.execute("SELECT pg_advisory_unlock($1)", ADVISORY_LOCK_KEY)


def _check_applied(migrations: list[Migration], applied: dict[int, asyncpg.Record]) -> None:
    known = {m.version: m for m in migrations}
    for version, row in sorted(applied.items()):
        migration = known.get(version)
        if migration is None:
            # A newer worker migrated this database; older code can still run on it.
            logger.warning(
                f"migrations: database has {version:04d}_{row['name']}, unknown to this code"
            )
        elif migration.checksum != row["checksum"]:
            raise MigrationError(
                f"migration {version:04d}_{migration.name} was changed after it was applied "
                f"(checksum {row['checksum'][:12]}… in the database, "
                f"{migration.checksum[:12]}… on disk); add a new migration instead"
            )
