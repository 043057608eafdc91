"""Rows of ``quests`` (each user's current quests) and ``quest_history`` (every version)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, NamedTuple

import asyncpg
from asyncpg.pool import PoolConnectionProxy

QuestSource = Literal["llm", "person"]

KINDS = ("main", "side")
STATUSES = ("active", "completed", "deleted")
# The same limits as the wire protocol's `QuestChanges`, so the phone and the LLM agree.
MAX_TITLE = 200
MAX_CRITERIA = 10
MAX_CRITERION = 300

_COLUMNS = "id, user_id, title, kind, status, success_criteria, version"

# The session row may not exist (a session run without an archive, or one whose row was
# never written); the change is kept all the same, without its session.
_INSERT_HISTORY = """
INSERT INTO quest_history (
    quest_id, version, title, kind, status, changes_from_previous, trigger_phrase,
    confidence, user_id, session_id, source
)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, (SELECT id FROM sessions WHERE id = $10), $11)
"""

_Connection = asyncpg.Connection | PoolConnectionProxy


class QuestError(Exception):
    """A quest change that cannot be made, with a code the caller can act on.

    Parameters:
        code: Short, stable reason, e.g. ``unknown_quest`` or ``second_main_quest``.
        message: What went wrong and what to do instead, in plain words.
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Quest:
    """A quest as it stands now.

    Parameters:
        id: The quest's id (a UUID, as text).
        user_id: The app user the quest belongs to.
        title: What the quest is.
        kind: "main" or "side".
        status: "active", "completed" or "deleted".
        success_criteria: How the person will know it is done.
        version: Rises by one with every change, starting at 1.
    """

    id: str
    user_id: str
    title: str
    kind: str
    status: str
    success_criteria: list[str]
    version: int

    def to_dict(self) -> dict[str, Any]:
        """Returns the quest as the phone and the LLM see it (no user id)."""
        return {
            "id": self.id,
            "title": self.title,
            "kind": self.kind,
            "status": self.status,
            "success_criteria": list(self.success_criteria),
            "version": self.version,
        }


class QuestChange(NamedTuple):
    """A quest after a change, with the fields that changed (new values; empty: none)."""

    quest: Quest
    changes: dict[str, Any]


@dataclass(frozen=True)
class QuestVersion:
    """One row of ``quest_history``.

    Parameters:
        quest_id: The quest.
        version: The version this row records.
        title: The title at this version.
        kind: The kind at this version.
        status: The status at this version.
        changes_from_previous: Per changed field ``{"from": old, "to": new}``; None for
            version 1.
        trigger_phrase: What the person said that led to the change.
        confidence: How sure whoever made the change was, 0 to 1.
        user_id: The quest's user.
        session_id: The session the change was made in, if known.
        source: "llm" or "person".
        timestamp: When the change was made.
    """

    quest_id: str
    version: int
    title: str
    kind: str | None
    status: str | None
    changes_from_previous: dict[str, Any] | None
    trigger_phrase: str | None
    confidence: float | None
    user_id: str
    session_id: str | None
    source: str | None
    timestamp: datetime


class QuestStore:
    """Each user's current quests, with every change versioned in ``quest_history``.

    A change and its history row are written in one transaction. Every method takes the
    user's id and acts only on that user's quests: another user's quest is as unknown as
    one that never existed. Deleted quests stay in the table (status "deleted") but can no
    longer be changed. A user has at most one active main quest.

    Change methods take keyword-only provenance: ``session_id`` (the session, or None),
    ``trigger_phrase`` (what the person said), ``confidence`` (0 to 1, or None) and
    ``source`` ("llm" or "person"). A change that changes nothing writes no version and
    returns empty ``changes``.

    Expects a pool whose connections encode and decode ``jsonb`` as ``Database`` sets up.
    """

    def __init__(self, pool: asyncpg.Pool) -> None:
        """Initializes the store.

        Args:
            pool: Connection pool of a migrated database.
        """
        self._pool = pool

    async def create(
        self,
        user_id: str,
        title: str,
        kind: str,
        *,
        session_id: uuid.UUID | str | None = None,
        trigger_phrase: str | None = None,
        confidence: float | None = None,
        source: QuestSource = "llm",
    ) -> Quest:
        """Creates an active quest at version 1.

        Args:
            user_id: The quest's user.
            title: What the quest is (trimmed; 1 to 200 characters).
            kind: "main" or "side".
            session_id: Provenance, see the class.
            trigger_phrase: Provenance, see the class.
            confidence: Provenance, see the class.
            source: Provenance, see the class.

        Raises:
            QuestError: ``empty_title``, ``title_too_long``, ``invalid_kind``, or
                ``second_main_quest`` when a main quest is created while one is active.
        """
        title = _check_title(title)
        _check_kind(kind)
        async with self._pool.acquire() as conn, conn.transaction():
            if kind == "main":
                await _refuse_second_main(conn, user_id, None)
            try:
                row = await conn.fetchrow(
                    f"INSERT INTO quests (user_id, title, kind) VALUES ($1, $2, $3) "
                    f"RETURNING {_COLUMNS}",
                    user_id,
                    title,
                    kind,
                )
            except asyncpg.UniqueViolationError as e:
                # Another session of the same user made a main quest in between.
                raise _second_main_error(None) from e
            assert row is not None  # RETURNING of an insert
            quest = _quest(row)
            await _record(conn, quest, None, session_id, trigger_phrase, confidence, source)
        return quest

    async def update(
        self,
        quest_id: str,
        user_id: str,
        *,
        title: str | None = None,
        kind: str | None = None,
        success_criteria: list[str] | None = None,
        status: str | None = None,
        session_id: uuid.UUID | str | None = None,
        trigger_phrase: str | None = None,
        confidence: float | None = None,
        source: QuestSource = "llm",
    ) -> QuestChange:
        """Changes any of a quest's fields, as one new version.

        Making a quest the main quest this way is refused while another main quest is
        active; `set_main` demotes the other one instead.

        Args:
            quest_id: The quest.
            user_id: Its user.
            title: New title, or None to keep it.
            kind: New kind, or None to keep it.
            success_criteria: New criteria (replacing the old), or None to keep them.
            status: New status ("active", "completed", "deleted"), or None to keep it.
            session_id: Provenance, see the class.
            trigger_phrase: Provenance, see the class.
            confidence: Provenance, see the class.
            source: Provenance, see the class.

        Returns:
            The quest after the change and the fields that changed.

        Raises:
            QuestError: ``unknown_quest``, ``empty_title``, ``title_too_long``,
                ``invalid_kind``, ``invalid_status``, ``second_main_quest``, or a
                criteria error (see `set_success_criteria`).
        """
        wanted: dict[str, Any] = {}
        if title is not None:
            wanted["title"] = _check_title(title)
        if kind is not None:
            wanted["kind"] = _check_kind(kind)
        if success_criteria is not None:
            wanted["success_criteria"] = _check_criteria(success_criteria)
        if status is not None:
            if status not in STATUSES:
                raise QuestError("invalid_status", f"Status must be one of {', '.join(STATUSES)}.")
            wanted["status"] = status
        async with self._pool.acquire() as conn, conn.transaction():
            current = await _lock(conn, quest_id, user_id)
            change = await _apply(
                conn, current, wanted, session_id, trigger_phrase, confidence, source
            )
        return change

    async def set_main(
        self,
        quest_id: str,
        user_id: str,
        *,
        session_id: uuid.UUID | str | None = None,
        trigger_phrase: str | None = None,
        confidence: float | None = None,
        source: QuestSource = "llm",
    ) -> tuple[QuestChange, QuestChange | None]:
        """Makes an active quest the main quest, demoting the current main one to side.

        Args:
            quest_id: The quest to promote.
            user_id: Its user.
            session_id: Provenance, see the class.
            trigger_phrase: Provenance, see the class.
            confidence: Provenance, see the class.
            source: Provenance, see the class.

        Returns:
            The promoted quest's change and the demoted quest's change (None if no other
            main quest was active). Both are new versions.

        Raises:
            QuestError: ``unknown_quest``, or ``quest_not_active`` for a completed quest.
        """
        provenance = (session_id, trigger_phrase, confidence, source)
        async with self._pool.acquire() as conn, conn.transaction():
            current = await _lock(conn, quest_id, user_id)
            if current.status != "active":
                raise QuestError(
                    "quest_not_active",
                    f"Quest '{current.title}' is {current.status}; only an active quest "
                    "can be the main quest.",
                )
            demoted: QuestChange | None = None
            if current.kind != "main":
                other = await conn.fetchrow(
                    f"SELECT {_COLUMNS} FROM quests WHERE user_id = $1 AND kind = 'main' "
                    "AND status = 'active' FOR UPDATE",
                    user_id,
                )
                if other is not None:
                    demoted = await _apply(conn, _quest(other), {"kind": "side"}, *provenance)
            promoted = await _apply(conn, current, {"kind": "main"}, *provenance)
        return promoted, demoted

    async def set_success_criteria(
        self,
        quest_id: str,
        user_id: str,
        criteria: list[str],
        *,
        session_id: uuid.UUID | str | None = None,
        trigger_phrase: str | None = None,
        confidence: float | None = None,
        source: QuestSource = "llm",
    ) -> QuestChange:
        """Replaces a quest's success criteria.

        Args:
            quest_id: The quest.
            user_id: Its user.
            criteria: The new criteria, each trimmed; at most 10 of at most 300 characters.
                An empty list clears them.
            session_id: Provenance, see the class.
            trigger_phrase: Provenance, see the class.
            confidence: Provenance, see the class.
            source: Provenance, see the class.

        Raises:
            QuestError: ``unknown_quest``, ``too_many_criteria``, ``empty_criterion`` or
                ``criterion_too_long``.
        """
        return await self.update(
            quest_id,
            user_id,
            success_criteria=criteria,
            session_id=session_id,
            trigger_phrase=trigger_phrase,
            confidence=confidence,
            source=source,
        )

    async def complete(
        self,
        quest_id: str,
        user_id: str,
        *,
        session_id: uuid.UUID | str | None = None,
        trigger_phrase: str | None = None,
        confidence: float | None = None,
        source: QuestSource = "llm",
    ) -> QuestChange:
        """Marks a quest completed (a completed quest is left as it is).

        Raises:
            QuestError: ``unknown_quest``.
        """
        return await self.update(
            quest_id,
            user_id,
            status="completed",
            session_id=session_id,
            trigger_phrase=trigger_phrase,
            confidence=confidence,
            source=source,
        )

    async def delete(
        self,
        quest_id: str,
        user_id: str,
        *,
        session_id: uuid.UUID | str | None = None,
        trigger_phrase: str | None = None,
        confidence: float | None = None,
        source: QuestSource = "llm",
    ) -> QuestChange:
        """Marks a quest deleted; it keeps its history but can no longer be changed.

        Raises:
            QuestError: ``unknown_quest``.
        """
        return await self.update(
            quest_id,
            user_id,
            status="deleted",
            session_id=session_id,
            trigger_phrase=trigger_phrase,
            confidence=confidence,
            source=source,
        )

    async def list_active(self, user_id: str) -> list[Quest]:
        """Returns a user's active quests: the main quest first, then oldest first."""
        rows = await self._pool.fetch(
            f"SELECT {_COLUMNS} FROM quests WHERE user_id = $1 AND status = 'active' "
            "ORDER BY kind = 'main' DESC, created_at, id",
            user_id,
        )
        return [_quest(row) for row in rows]

    async def get(self, quest_id: str, user_id: str) -> Quest | None:
        """Returns one of a user's quests (of any status), or None if they have no such."""
        quest_uuid = _parse_uuid(quest_id)
        if quest_uuid is None:
            return None
        row = await self._pool.fetchrow(
            f"SELECT {_COLUMNS} FROM quests WHERE id = $1 AND user_id = $2", quest_uuid, user_id
        )
        return _quest(row) if row is not None else None

    async def history(self, quest_id: str, user_id: str | None = None) -> list[QuestVersion]:
        """Returns every version of a quest, oldest first.

        Args:
            quest_id: The quest (deleted ones included).
            user_id: Only this user's history; None for any (for analysis, not for users).
        """
        quest_uuid = _parse_uuid(quest_id)
        if quest_uuid is None:
            return []
        rows = await self._pool.fetch(
            "SELECT quest_id, version, title, kind, status, changes_from_previous, "
            "trigger_phrase, confidence, user_id, session_id, source, timestamp "
            "FROM quest_history WHERE quest_id = $1 AND ($2::text IS NULL OR user_id = $2) "
            "ORDER BY version",
            quest_uuid,
            user_id,
        )
        versions = []
        for row in rows:
            values = dict(row)
            values["quest_id"] = str(values["quest_id"])
            session = values["session_id"]
            values["session_id"] = str(session) if session is not None else None
            versions.append(QuestVersion(**values))
        return versions


async def _lock(conn: _Connection, quest_id: str, user_id: str) -> Quest:
    """Returns a changeable quest of the user, locked for the transaction."""
    quest_uuid = _parse_uuid(quest_id)
    row = None
    if quest_uuid is not None:
        row = await conn.fetchrow(
            f"SELECT {_COLUMNS} FROM quests WHERE id = $1 AND user_id = $2 FOR UPDATE",
            quest_uuid,
            user_id,
        )
    if row is not None and row["status"] == "deleted":
        raise QuestError("unknown_quest", f"Quest '{row['title']}' (id {quest_id}) was deleted.")
    if row is None:
        raise QuestError(
            "unknown_quest",
            f"There is no quest with id '{quest_id}'. Call list_quests for the current ids.",
        )
    return _quest(row)


async def _apply(
    conn: _Connection,
    current: Quest,
    wanted: dict[str, Any],
    session_id: uuid.UUID | str | None,
    trigger_phrase: str | None,
    confidence: float | None,
    source: QuestSource,
) -> QuestChange:
    """Writes the fields of `wanted` that differ from `current` as one new version."""
    before = current.to_dict()
    changes = {name: value for name, value in wanted.items() if before[name] != value}
    if not changes:
        return QuestChange(current, {})
    after = {**before, **changes}
    if after["kind"] == "main" and after["status"] == "active":
        await _refuse_second_main(conn, current.user_id, current.id)
    try:
        row = await conn.fetchrow(
            f"UPDATE quests SET title = $2, kind = $3, status = $4, success_criteria = $5, "
            f"version = version + 1, updated_at = now() WHERE id = $1 RETURNING {_COLUMNS}",
            uuid.UUID(current.id),
            after["title"],
            after["kind"],
            after["status"],
            after["success_criteria"],
        )
    except asyncpg.UniqueViolationError as e:
        raise _second_main_error(None) from e
    assert row is not None  # the row is locked by this transaction
    quest = _quest(row)
    diff = {name: {"from": before[name], "to": value} for name, value in changes.items()}
    await _record(conn, quest, diff, session_id, trigger_phrase, confidence, source)
    return QuestChange(quest, changes)


async def _record(
    conn: _Connection,
    quest: Quest,
    diff: dict[str, Any] | None,
    session_id: uuid.UUID | str | None,
    trigger_phrase: str | None,
    confidence: float | None,
    source: QuestSource,
) -> None:
    await conn.execute(
        _INSERT_HISTORY,
        uuid.UUID(quest.id),
        quest.version,
        quest.title,
        quest.kind,
        quest.status,
        diff,
        trigger_phrase,
        confidence,
        quest.user_id,
        _parse_uuid(session_id) if session_id is not None else None,
        source,
    )


async def _refuse_second_main(conn: _Connection, user_id: str, quest_id: str | None) -> None:
    row = await conn.fetchrow(
        "SELECT id, title FROM quests WHERE user_id = $1 AND kind = 'main' "
        "AND status = 'active' AND ($2::uuid IS NULL OR id <> $2)",
        user_id,
        uuid.UUID(quest_id) if quest_id else None,
    )
    if row is not None:
        raise _second_main_error((str(row["id"]), row["title"]))


def _second_main_error(main: tuple[str, str] | None) -> QuestError:
    named = f" ('{main[1]}', id {main[0]})" if main else ""
    return QuestError(
        "second_main_quest",
        f"There is already an active main quest{named}, and there can be only one. To make "
        "this quest the main quest, keep it a side quest and call set_main_quest with its "
        "id: that demotes the current main quest to a side quest.",
    )


def _check_title(title: str) -> str:
    title = title.strip()
    if not title:
        raise QuestError("empty_title", "A quest needs a title that is not empty.")
    if len(title) > MAX_TITLE:
        raise QuestError(
            "title_too_long",
            f"The title has {len(title)} characters; at most {MAX_TITLE} are allowed. "
            "Say it shorter and put details into success criteria.",
        )
    return title


def _check_kind(kind: str) -> str:
    if kind not in KINDS:
        raise QuestError("invalid_kind", f"Kind must be 'main' or 'side', not '{kind}'.")
    return kind


def _check_criteria(criteria: list[str]) -> list[str]:
    cleaned = [criterion.strip() for criterion in criteria]
    if len(cleaned) > MAX_CRITERIA:
        raise QuestError(
            "too_many_criteria",
            f"{len(cleaned)} success criteria given; at most {MAX_CRITERIA} are allowed.",
        )
    if any(not criterion for criterion in cleaned):
        raise QuestError("empty_criterion", "A success criterion must not be empty.")
    if any(len(criterion) > MAX_CRITERION for criterion in cleaned):
        raise QuestError(
            "criterion_too_long",
            f"Each success criterion may have at most {MAX_CRITERION} characters.",
        )
    return cleaned


def _quest(row: asyncpg.Record) -> Quest:
    return Quest(
        id=str(row["id"]),
        user_id=row["user_id"],
        title=row["title"],
        kind=row["kind"],
        status=row["status"],
        success_criteria=list(row["success_criteria"]),
        version=row["version"],
    )


def _parse_uuid(value: uuid.UUID | str) -> uuid.UUID | None:
    # Ids come from an LLM or a phone: a malformed one is an unknown quest, not a crash.
    if isinstance(value, uuid.UUID):
        return value
    try:
        return uuid.UUID(str(value))
    except ValueError:
        return None
