"""The journal's spool: an append-only file of events waiting for the database.

One JSON array a line: ``[session_id, seq, mono_ns, wall_time_us, kind, direction, source,
payload]``, with the wall time in microseconds since the Unix epoch. Lines are read back
in the order they were written, from a read offset kept in memory; once every line has
been read and stored, the file is truncated. A crash between storing lines and truncating
means they are stored again on the next start, which is why the journal drains the spool
with ``INSERT ... ON CONFLICT DO NOTHING``.

Lines the database refuses for their content (e.g. a NUL character in a string, which jsonb
cannot hold) are moved to ``<spool>.rejected``: kept, not retried forever.
"""

from __future__ import annotations

import fcntl
import json
import os
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from io import BufferedReader, BufferedWriter
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loguru import logger

if TYPE_CHECKING:
    from storage.journal import JournalEvent

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
_READ_BLOCK = 1 << 20

# A journal row as copy_records_to_table takes it, in frame_journal's column order.
Record = tuple[uuid.UUID, int, int, datetime, str, str, str, Any]


def encode_line(event: JournalEvent) -> bytes:
    """Encodes one event as a spool line (JSON array and a newline).

    Never raises for an odd payload: values JSON cannot hold become strings, and a payload
    that still cannot be encoded (a reference cycle, say) is replaced by its ``repr``.

    Args:
        event: The event.
    """
    wall = event.wall_time if event.wall_time.tzinfo else event.wall_time.replace(tzinfo=UTC)
    head = [
        str(event.session_id),
        event.seq,
        event.mono_ns,
        (wall - _EPOCH) // _MICROSECOND,
        event.kind,
        event.direction,
        event.source,
    ]
    try:
        text = json.dumps([*head, event.payload], separators=(",", ":"), default=str)
    except (TypeError, ValueError):
        text = json.dumps([*head, {"unserializable": repr(event.payload)[:2000]}])
    return text.encode("utf-8") + b"\n"


def decode_line(line: bytes) -> Record:
    """Decodes a spool line into a ``frame_journal`` row.

    Args:
        line: One line, as ``encode_line`` wrote it.

    Raises:
        ValueError: The line is not a spooled event.
    """
    try:
        sid, seq, mono_ns, wall_us, kind, direction, source, payload = json.loads(line)
        return (
            uuid.UUID(sid),
            int(seq),
            int(mono_ns),
            _EPOCH + timedelta(microseconds=wall_us),
            str(kind),
            str(direction),
            str(source),
            payload,
        )
    except (TypeError, ValueError, OverflowError) as exc:
        raise ValueError(f"not a spooled event: {exc}") from exc


@dataclass
class SpoolChunk:
    """Lines read from the spool, not yet marked as stored.

    Parameters:
        records: Decoded rows, in spool order.
        lines: The raw line of each row (for the rejected file).
        bad_lines: Lines that could not be decoded.
        end: File offset just past the last line read.
    """

    records: list[Record] = field(default_factory=list)
    lines: list[bytes] = field(default_factory=list)
    bad_lines: list[bytes] = field(default_factory=list)
    end: int = 0

    @property
    def count(self) -> int:
        """Lines in the chunk, decodable or not."""
        return len(self.lines) + len(self.bad_lines)


class JournalSpool:
    """An append-only spool file, locked against a second writer.

    Not thread-safe: use it from one thread (the event loop), except ``fileno`` for
    ``os.fsync`` in a worker thread.
    """

    def __init__(self, path: Path) -> None:
        """Initializes the spool; nothing is opened until ``open``.

        Args:
            path: The spool file; its folder is created if missing.
        """
        self._path = Path(path)
        self._rejected_path = self._path.with_name(self._path.name + ".rejected")
        self._appender: BufferedWriter | None = None
        self._reader: BufferedReader | None = None
        self._offset = 0
        self._pending = 0
        self._dirty = False

    def __str__(self) -> str:
        return f"JournalSpool({self._path})"

    @property
    def path(self) -> Path:
        """The spool file."""
        return self._path

    @property
    def rejected_path(self) -> Path:
        """Where lines the database refused are kept."""
        return self._rejected_path

    @property
    def pending(self) -> int:
        """Events in the spool not yet stored in the database."""
        return self._pending

    @property
    def dirty(self) -> bool:
        """Whether lines were appended since the last ``begin_sync``."""
        return self._dirty

    def open(self) -> int:
        """Opens (creating if needed) and locks the spool; returns the events it holds.

        A torn last line, left by a crash in the middle of a write, is moved to the
        rejected file first.

        Raises:
            RuntimeError: Another writer holds the spool.
        """
        self._path.parent.mkdir(parents=True, exist_ok=True)
        appender = open(self._path, "ab")  # noqa: SIM115 - held open until close()
        try:
            fcntl.flock(appender.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            appender.close()
            raise RuntimeError(f"{self}: in use by another journal writer") from None
        self._appender = appender
        self._repair_tail()
        self._reader = open(self._path, "rb")  # noqa: SIM115
        self._offset = 0
        self._pending = self._count_lines()
        return self._pending

    def append(self, events: Iterable[JournalEvent]) -> int:
        """Appends events (buffered; durable after ``begin_sync`` and an fsync).

        Args:
            events: Events in order.

        Returns:
            How many were appended.

        Raises:
            OSError: The file cannot be written; nothing was appended then.
        """
        data = [encode_line(event) for event in events]
        if not data:
            return 0
        self._require_appender().write(b"".join(data))
        self._pending += len(data)
        self._dirty = True
        return len(data)

    def begin_sync(self) -> int:
        """Pushes buffered lines to the OS and returns the descriptor to ``os.fsync``."""
        appender = self._require_appender()
        appender.flush()
        self._dirty = False
        return appender.fileno()

    def read(self, max_rows: int) -> SpoolChunk:
        """Reads up to ``max_rows`` lines from the read offset, without consuming them.

        Args:
            max_rows: Most lines to read.
        """
        self._require_appender().flush()  # so the reader sees every appended line
        reader = self._reader
        assert reader is not None
        reader.seek(self._offset)
        chunk = SpoolChunk(end=self._offset)
        while chunk.count < max_rows:
            line = reader.readline()
            if not line.endswith(b"\n"):
                break  # end of file
            chunk.end += len(line)
            try:
                chunk.records.append(decode_line(line))
                chunk.lines.append(line)
            except ValueError:
                chunk.bad_lines.append(line)
        return chunk

    def consume(self, chunk: SpoolChunk) -> None:
        """Marks a chunk's lines as stored; truncates the file once all are.

        Args:
            chunk: The chunk ``read`` returned last.
        """
        self._offset = chunk.end
        self._pending -= chunk.count
        if self._pending == 0:
            self._require_appender().flush()
            if os.fstat(self._require_appender().fileno()).st_size == self._offset:
                os.truncate(self._path, 0)
                self._offset = 0

    def reject(self, lines: list[bytes]) -> None:
        """Appends lines to the rejected file and fsyncs it.

        Args:
            lines: Raw spool lines.
        """
        if not lines:
            return
        with open(self._rejected_path, "ab") as rejected:
            rejected.write(b"".join(lines))
            rejected.flush()
            os.fsync(rejected.fileno())

    def close(self) -> None:
        """Flushes, fsyncs and closes the spool, releasing the lock."""
        if self._appender is not None:
            self._appender.flush()
            os.fsync(self._appender.fileno())
            self._appender.close()  # closing the descriptor releases the flock
            self._appender = None
        if self._reader is not None:
            self._reader.close()
            self._reader = None

    def _require_appender(self) -> BufferedWriter:
        if self._appender is None:
            raise RuntimeError(f"{self}: not open")
        return self._appender

    def _repair_tail(self) -> None:
        size = self._path.stat().st_size
        if size == 0:
            return
        with open(self._path, "rb") as spool:
            spool.seek(size - 1)
            if spool.read(1) == b"\n":
                return
            start = max(0, size - _READ_BLOCK)
            while True:
                spool.seek(start)
                cut = spool.read(size - start).rfind(b"\n")
                if cut >= 0 or start == 0:
                    keep = start + cut + 1 if cut >= 0 else 0
                    break
                start = max(0, start - _READ_BLOCK)
            spool.seek(keep)
            torn = spool.read()
        self.reject([torn + b"\n"])
        os.truncate(self._path, keep)
        logger.warning(f"{self}: moved a torn last line ({len(torn)} bytes) to the rejected file")

    def _count_lines(self) -> int:
        count = 0
        with open(self._path, "rb") as spool:
            while block := spool.read(_READ_BLOCK):
                count += block.count(b"\n")
        return count
