"""Synthetic user histories, written straight into sessions, conversations, quests, quest_history.

Three kinds of users (``PERSONAS``), each over ``days`` days before ``today``:

- ``steady``: the same main quest on most days (in a few phrasings), success criteria every
  time, a morning session at about 08:00 and now and then an evening review.
- ``scattered``: a different main quest each day, or none, many corrections ("actually…",
  "no wait…"), sessions at any hour, success criteria rarely.
- ``no_criteria``: names a main quest but never success criteria, sessions at about 09:30,
  a negative mood now and then.

Deterministic: the same persona, user, day and seed give the same rows. Quests left unfinished
on a day are dropped at the next day's session, except on the last day: those stay active
(yesterday's leftovers, for the planner). The quest rows follow ``QuestStore``'s rules
(versions, ``changes_from_previous``, at most one active main quest).
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import asyncpg
import pytest

from storage.database import Database

PERSONAS = ("steady", "scattered", "no_criteria")

STEADY_MAIN = ["ship the onboarding flow", "ship onboarding", "Ship the onboarding flow!"]
STEADY_OTHER_MAINS = ["prepare the quarterly review", "move apartments"]
SCATTERED_MAINS = [
    "redo the pricing page",
    "write the grant application",
    "call the landlord about the heating",
    "learn the basics of Rust",
    "plan Mia's birthday party",
    "clean up the garage",
    "migrate the blog to a new host",
    "apply for three jobs",
    "fix the flaky CI pipeline",
    "sort out the tax return",
    "record the podcast intro",
    "draft the conference talk",
]
NO_CRITERIA_MAINS = ["finish the chapter draft", "finish chapter draft", "edit the chapter"]
SIDE_QUESTS = [
    "answer support emails",
    "review pull requests",
    "book the dentist",
    "buy groceries",
    "go for a run",
    "pay the electricity bill",
    "water the plants",
    "reply to Sam",
]
PRIORITY_PHRASES = {
    "steady": ["my main quest today is to {t}", "my main quest is {t}"],
    "scattered": ["the main thing is to {t}", "first {t}", "okay the main thing is {t}"],
    "no_criteria": ["today I want to {t}", "the main thing is {t}"],
}
CORRECTION_PHRASES = ["actually make it {t}", "no wait, {t}", "actually {t}", "scratch that, {t}"]


@dataclass
class GeneratedHistory:
    """The rows made for one user, and what a test may want to know about them.

    Parameters:
        user_id: The user.
        persona: One of ``PERSONAS``.
        sessions: ``sessions`` rows.
        conversations: ``conversations`` rows.
        quests: ``quests`` rows.
        history: ``quest_history`` rows.
        unfinished: Titles of the quests left active on the last day (main quest first).
    """

    user_id: str
    persona: str
    sessions: list[tuple[Any, ...]] = field(default_factory=list)
    conversations: list[tuple[Any, ...]] = field(default_factory=list)
    quests: list[dict[str, Any]] = field(default_factory=list)
    history: list[tuple[Any, ...]] = field(default_factory=list)
    unfinished: list[str] = field(default_factory=list)


SESSION_COLUMNS = ("id", "user_id", "room", "started_at", "ended_at", "end_reason")
CONVERSATION_COLUMNS = (
    "session_id",
    "user_id",
    "timestamp",
    "transcript",
    "ai_response",
    "quests_created",
    "quest_refinements",
    "emotional_journey",
    "speaking_pace",
    "clarity_score",
    "correction_count",
    "main_quest_identified",
    "success_criteria_defined",
    "duration_s",
    "turn_count",
)
QUEST_COLUMNS = (
    "id",
    "user_id",
    "title",
    "kind",
    "status",
    "success_criteria",
    "version",
    "created_at",
    "updated_at",
)
HISTORY_COLUMNS = (
    "quest_id",
    "version",
    "title",
    "changes_from_previous",
    "trigger_phrase",
    "confidence",
    "timestamp",
    "user_id",
    "session_id",
    "source",
    "kind",
    "status",
)


class _Quests:
    """Quests of one user as ``QuestStore`` would keep them, with their history rows."""

    def __init__(self, out: GeneratedHistory, rng: random.Random) -> None:
        self._out = out
        self._rng = rng

    def create(
        self, title: str, kind: str, at: datetime, session: uuid.UUID, phrase: str
    ) -> dict[str, Any]:
        quest = {
            "id": _uuid(self._rng),
            "user_id": self._out.user_id,
            "title": title,
            "kind": kind,
            "status": "active",
            "success_criteria": [],
            "version": 1,
            "created_at": at,
            "updated_at": at,
        }
        self._out.quests.append(quest)
        self._record(quest, None, at, session, phrase)
        return quest

    def change(
        self, quest: dict[str, Any], at: datetime, session: uuid.UUID, phrase: str, **fields: Any
    ) -> None:
        diff = {k: {"from": quest[k], "to": v} for k, v in fields.items() if quest[k] != v}
        if not diff:
            return
        quest.update(fields)
        quest["version"] += 1
        quest["updated_at"] = at
        self._record(quest, diff, at, session, phrase)

    def _record(
        self,
        quest: dict[str, Any],
        diff: dict[str, Any] | None,
        at: datetime,
        session: uuid.UUID,
        phrase: str,
    ) -> None:
        self._out.history.append(
            (
                quest["id"],
                quest["version"],
                quest["title"],
                diff,
                phrase,
                round(self._rng.uniform(0.7, 0.98), 2),
                at,
                self._out.user_id,
                session,
                "llm",
                quest["kind"],
                quest["status"],
            )
        )


def make_history(
    persona: str, user_id: str, *, today: date, days: int = 14, seed: int = 7
) -> GeneratedHistory:
    """Makes the rows of a user's history over the ``days`` days before ``today`` (UTC).

    Args:
        persona: One of ``PERSONAS``.
        user_id: The user.
        today: The day after the history ends.
        days: Days of history.
        seed: Seed of the random choices (with the persona and user).
    """
    if persona not in PERSONAS:
        raise ValueError(f"unknown persona {persona!r}; one of {PERSONAS}")
    rng = random.Random(f"{seed}:{persona}:{user_id}")
    out = GeneratedHistory(user_id, persona)
    quests = _Quests(out, rng)
    leftovers: list[dict[str, Any]] = []
    for index in range(days):
        day = today - timedelta(days=days - index)
        last_day = index == days - 1
        start = datetime.combine(day, _session_time(persona, rng), UTC)
        session = _uuid(rng)
        corrections = 0
        criteria_set = False
        made = 0
        refinements = 0
        at = start + timedelta(seconds=20)
        for old in leftovers:  # yesterday's leftovers are dropped, one way or another
            quests.change(old, at, session, "let's drop that one", status="deleted")
        leftovers = []

        title = _main_title(persona, index, rng)
        main = None
        if title is not None:
            template = rng.choice(PRIORITY_PHRASES[persona])
            if persona == "scattered" and rng.random() < 0.7:
                # Names the wrong thing first, then corrects it.
                first = rng.choice([t for t in SCATTERED_MAINS if t != title])
                main = quests.create(first, "main", at, session, template.format(t=first))
                at += timedelta(seconds=30)
                fix = rng.choice(CORRECTION_PHRASES).format(t=title)
                quests.change(main, at, session, fix, title=title)
                corrections += 1
                refinements += 1
            else:
                main = quests.create(title, "main", at, session, template.format(t=title))
            made += 1
            if _sets_criteria(persona, rng):
                at += timedelta(seconds=40)
                criteria = [f"{title} is done and checked", "tell the team"]
                quests.change(
                    main, at, session, "I'll know it's done when", success_criteria=criteria
                )
                criteria_set = True
                refinements += 1
        sides = []
        for side_title in rng.sample(SIDE_QUESTS, 2 if persona != "scattered" else 3):
            at += timedelta(seconds=25)
            sides.append(
                quests.create(side_title, "side", at, session, f"I also need to {side_title}")
            )
            made += 1
        if persona == "scattered":
            for _ in range(rng.randint(1, 3)):  # more second thoughts
                at += timedelta(seconds=15)
                target = rng.choice(sides)
                fix = rng.choice(CORRECTION_PHRASES)
                new_title = rng.choice([t for t in SIDE_QUESTS if t != target["title"]])
                quests.change(target, at, session, fix.format(t=new_title), title=new_title)
                corrections += 1
                refinements += 1
        end = at + timedelta(seconds=30)
        _add_session(
            out,
            session,
            start,
            end,
            persona,
            rng,
            made,
            refinements,
            corrections,
            main is not None,
            criteria_set,
        )

        # How the day went: some quests done (at an evening review for the steady user).
        done_at = datetime.combine(day, time(18, 0), UTC)
        review = _uuid(rng) if persona == "steady" and index % 4 == 1 else session
        if review != session:
            _add_session(
                out,
                review,
                done_at,
                done_at + timedelta(minutes=3),
                persona,
                rng,
                0,
                0,
                0,
                main is not None,
                criteria_set,
            )
        for quest in ([main] if main else []) + sides:
            keep_open = last_day and (quest is main or quest is sides[0])
            if not keep_open and rng.random() < _completion(persona, quest is main):
                quests.change(quest, done_at, review, "done with that", status="completed")
            else:
                leftovers.append(quest)
        if last_day:
            out.unfinished = [q["title"] for q in leftovers]
    return out


async def write_history(conn: asyncpg.Connection | asyncpg.Pool, history: GeneratedHistory) -> None:
    """Writes a generated history (a connection or pool with ``Database``'s jsonb codec)."""
    await conn.copy_records_to_table("sessions", records=history.sessions, columns=SESSION_COLUMNS)
    await conn.copy_records_to_table(
        "conversations", records=history.conversations, columns=CONVERSATION_COLUMNS
    )
    await conn.copy_records_to_table(
        "quests",
        records=[tuple(q[c] for c in QUEST_COLUMNS) for q in history.quests],
        columns=QUEST_COLUMNS,
    )
    await conn.copy_records_to_table(
        "quest_history", records=history.history, columns=HISTORY_COLUMNS
    )


async def write_histories(
    conn: asyncpg.Connection | asyncpg.Pool,
    users: dict[str, str],
    *,
    today: date,
    days: int = 14,
    seed: int = 7,
) -> dict[str, GeneratedHistory]:
    """Makes and writes the histories of several users.

    Args:
        conn: Where to write (with ``Database``'s jsonb codec).
        users: Persona by user id.
        today: The day after the histories end.
        days: Days of history per user.
        seed: Seed of the random choices.

    Returns:
        The histories written, by user id.
    """
    histories = {
        user_id: make_history(persona, user_id, today=today, days=days, seed=seed)
        for user_id, persona in users.items()
    }
    for history in histories.values():
        await write_history(conn, history)
    return histories


def _session_time(persona: str, rng: random.Random) -> time:
    if persona == "steady":
        minutes = 8 * 60 + rng.randint(-8, 8)
    elif persona == "no_criteria":
        minutes = 9 * 60 + 30 + rng.randint(-15, 15)
    else:
        minutes = rng.randint(6 * 60, 22 * 60)
    return time(minutes // 60, minutes % 60, rng.randint(0, 59))


def _main_title(persona: str, index: int, rng: random.Random) -> str | None:
    if persona == "steady":
        return rng.choice(STEADY_MAIN) if index % 7 != 3 else rng.choice(STEADY_OTHER_MAINS)
    if persona == "scattered":
        return SCATTERED_MAINS[index % len(SCATTERED_MAINS)] if rng.random() < 0.6 else None
    return rng.choice(NO_CRITERIA_MAINS) if rng.random() < 0.85 else None


def _sets_criteria(persona: str, rng: random.Random) -> bool:
    if persona == "steady":
        return True
    if persona == "scattered":
        return rng.random() < 0.3
    return False


def _completion(persona: str, main: bool) -> float:
    return {"steady": 0.3 if main else 0.75, "scattered": 0.3, "no_criteria": 0.4}[persona]


def _add_session(
    out: GeneratedHistory,
    session: uuid.UUID,
    start: datetime,
    end: datetime,
    persona: str,
    rng: random.Random,
    made: int,
    refinements: int,
    corrections: int,
    main: bool,
    criteria: bool,
) -> None:
    out.sessions.append((session, out.user_id, f"room-{session.hex[:8]}", start, end, "user_left"))
    mood = -0.5 if persona == "no_criteria" and rng.random() < 0.5 else 0.3
    journey = [
        {"label": "calm", "valence": round(mood + rng.uniform(-0.2, 0.2), 3), "arousal": 0.4}
        for _ in range(3)
    ]
    out.conversations.append(
        (
            session,
            out.user_id,
            start,
            "user: (synthetic)",
            "kane: (synthetic)",
            made,
            refinements,
            journey,
            round(rng.uniform(2.0, 3.2), 2),
            round(rng.uniform(0.8, 0.98), 2),
            corrections,
            main,
            criteria,
            (end - start).total_seconds(),
            4 + corrections,
        )
    )


def _uuid(rng: random.Random) -> uuid.UUID:
    return uuid.UUID(int=rng.getrandbits(128), version=4)


TODAY = datetime.now(UTC).date()
USERS = {"steady": "steady", "scattered": "scattered", "nocrit": "no_criteria"}


@pytest.fixture
async def histories(database: Database) -> dict[str, GeneratedHistory]:
    """Fourteen days of the three kinds of users, up to today."""
    return await write_histories(database.pool, USERS, today=TODAY)
