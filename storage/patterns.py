"""What KANE learns about each user across sessions: rows of ``user_patterns``.

``PatternStore.analyze`` reads a user's recent sessions, conversations, quests and quest
history, and writes one ``user_patterns`` row: the main quests they keep coming back to,
the phrases they use before correcting or prioritising, how many quests a day they set, when
they usually plan, how many quests they finish, and how likely they are to need coaching.

Quest titles are grouped by meaning, roughly: lowercased, punctuation, stopwords and fillers
dropped, simple suffixes stemmed, and two titles are one group when their word sets overlap
enough (Dice coefficient >= ``GROUP_SIMILARITY``). So "ship onboarding" and "Ship the
onboarding flow!" count together; "ship the pricing page" does not.
"""

from __future__ import annotations

import asyncio
import re
import statistics
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
from loguru import logger

# How far back an analysis looks.
WINDOW_DAYS = 28
# Two normalised titles are one group at this Dice coefficient of their word sets or above.
GROUP_SIMILARITY = 0.75
# Most groups and triggers kept in a row.
MAX_GROUPS = 10
MAX_TRIGGERS = 10
# A leading phrase is a trigger once it came before this many corrections or priorities.
MIN_TRIGGER_COUNT = 2
MAX_TRIGGER_WORDS = 3
# A reading this unpleasant or worse counts as negative emotion.
NEGATIVE_VALENCE = -0.2
# Corrections per session at which the corrections factor is full.
CORRECTIONS_SATURATE = 3.0

# needs_coaching_probability = sum of weight * factor, every factor 0..1 (weights sum to 1).
COACHING_WEIGHTS: dict[str, float] = {
    "no_success_criteria": 0.35,  # share of sessions that ended without success criteria
    "no_main_quest": 0.25,  # share of sessions that ended without a main quest
    "corrections": 0.15,  # mean corrections per session / CORRECTIONS_SATURATE, capped at 1
    "negative_emotion": 0.15,  # mean share of a session's emotion readings that are negative
    "unfinished": 0.10,  # 1 - completion rate
}

_STOPWORDS = frozenset(
    "a an the to of for and or on in into with at by from my our your their his her its "
    "this that these those it some all be is are was".split()
)
_FILLERS = frozenset(
    "um uh erm hmm like just really actually basically maybe probably so okay ok well "
    "i i'm im we we're let's lets gotta need needs want wanna have has today main quest "
    "first finally also".split()
)
# Sounds said before a trigger phrase, not part of it.
_LEADING_FILLERS = frozenset("um uh erm hmm oh okay ok so well".split())
_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
_DOUBLED = re.compile(r"([b-df-hj-np-tv-z])\1$")


@dataclass(frozen=True)
class QuestGroup:
    """Main quests that say the same thing in different words.

    Parameters:
        title: The group's most used title (the latest of equally used ones).
        count: Main quests in the group.
        days: Distinct days on which one of them was worked on.
        last_seen: The last of those days (in the store's time zone).
        last_status: Status of the group's latest quest: "active", "completed" or
            "deleted" (dropped on a later day than it was made).
        completed: Quests of the group that were completed.
        variants: The distinct titles in the group, most used first.
    """

    title: str
    count: int
    days: int
    last_seen: date
    last_status: str
    completed: int
    variants: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """Returns the group as stored in ``user_patterns.common_main_quests``."""
        return {
            "title": self.title,
            "count": self.count,
            "days": self.days,
            "last_seen": self.last_seen.isoformat(),
            "last_status": self.last_status,
            "completed": self.completed,
            "variants": list(self.variants),
        }

    @classmethod
    def from_json(cls, value: dict[str, Any]) -> QuestGroup:
        """Reads a group as ``to_json`` wrote it."""
        return cls(
            title=value["title"],
            count=int(value["count"]),
            days=int(value["days"]),
            last_seen=date.fromisoformat(value["last_seen"]),
            last_status=value["last_status"],
            completed=int(value["completed"]),
            variants=list(value.get("variants", [])),
        )


@dataclass(frozen=True)
class SpeakingTrigger:
    """A phrase a person says before correcting a quest or naming a priority.

    Parameters:
        phrase: The leading words, normalised (e.g. "actually", "the main thing").
        count: Changes it came before.
        kind: "correction" or "priority", whichever it came before more often.
    """

    phrase: str
    count: int
    kind: str

    def to_json(self) -> dict[str, Any]:
        """Returns the trigger as stored in ``user_patterns.speaking_triggers``."""
        return {"phrase": self.phrase, "count": self.count, "kind": self.kind}


@dataclass(frozen=True)
class UserPatterns:
    """What KANE has learned about one user (a ``user_patterns`` row).

    Parameters:
        user_id: The user.
        common_main_quests: Main-quest groups, most days first.
        speaking_triggers: Leading phrases of corrections and priorities, most used first.
        average_quests_per_day: Quests set per day with a session; None without any.
        preferred_session_time: Median local start time of sessions; None without any.
        completion_rate: Share of the quests set that were completed (quests deleted on the
            day they were made are corrections and do not count); None without quests.
        needs_coaching_probability: 0..1, see ``COACHING_WEIGHTS``; None without
            conversations.
        coaching_factors: The factors behind it, each 0..1.
        session_count: Sessions analysed.
        updated_at: End of the analysed window: when the analysis ran, unless it was
            given another ``now``.
    """

    user_id: str
    common_main_quests: list[QuestGroup]
    speaking_triggers: list[SpeakingTrigger]
    average_quests_per_day: float | None
    preferred_session_time: time | None
    completion_rate: float | None
    needs_coaching_probability: float | None
    coaching_factors: dict[str, float]
    session_count: int
    updated_at: datetime


Progress = Callable[[int, int, str], None]


class PatternStore:
    """Analyses users' histories into ``user_patterns`` and reads them back.

    Days and times of day are taken in one time zone (``tz``), the same the check-in
    scheduler uses for ``preferred_session_time``.
    """

    def __init__(
        self, pool: asyncpg.Pool, *, tz: str | tzinfo = "UTC", window_days: int = WINDOW_DAYS
    ) -> None:
        """Initializes the store.

        Args:
            pool: Connection pool of a migrated database, with ``Database``'s jsonb codec.
            tz: Time zone of days and times of day (an IANA name or a tzinfo).
            window_days: Days of history an analysis looks at, up to ``now``.
        """
        self._pool = pool
        self._tz = ZoneInfo(tz) if isinstance(tz, str) else tz
        self._window = timedelta(days=window_days)

    @property
    def tz(self) -> tzinfo:
        """The time zone of days and times of day."""
        return self._tz

    async def analyze(self, user_id: str, *, now: datetime | None = None) -> UserPatterns:
        """Computes a user's patterns from their stored history and writes them.

        Args:
            user_id: The user.
            now: End of the analysed window (default: the current time).

        Returns:
            The patterns, as written to ``user_patterns``.
        """
        now = now or datetime.now(UTC)
        since = now - self._window
        async with self._pool.acquire() as conn:
            async with conn.transaction(isolation="repeatable_read", readonly=True):
                sessions = await conn.fetch(
                    "SELECT started_at FROM sessions "
                    "WHERE user_id = $1 AND started_at >= $2 AND started_at < $3",
                    user_id,
                    since,
                    now,
                )
                conversations = await conn.fetch(
                    "SELECT main_quest_identified, success_criteria_defined, correction_count, "
                    "emotional_journey FROM conversations "
                    'WHERE user_id = $1 AND "timestamp" >= $2 AND "timestamp" < $3',
                    user_id,
                    since,
                    now,
                )
                quests = await conn.fetch(
                    "SELECT id, title, kind, status, created_at, updated_at FROM quests "
                    "WHERE user_id = $1 AND updated_at >= $2 AND created_at < $3",
                    user_id,
                    since,
                    now,
                )
                history = await conn.fetch(
                    "SELECT quest_id, version, kind, status, changes_from_previous, "
                    'trigger_phrase, "timestamp" FROM quest_history '
                    'WHERE user_id = $1 AND "timestamp" >= $2 AND "timestamp" < $3',
                    user_id,
                    since,
                    now,
                )
            computed = self._compute(user_id, now, sessions, conversations, quests, history)
            # Returned as stored (``real`` columns round), so ``get`` gives back the same.
            row = await conn.fetchrow(_UPSERT, *_row(computed))
        assert row is not None  # RETURNING of an upsert
        logger.debug(f"{self}: analysed {user_id} ({computed.session_count} sessions)")
        return _patterns(row)

    async def analyze_all(
        self,
        *,
        progress: Progress | None = None,
        now: datetime | None = None,
        concurrency: int = 4,
    ) -> list[str]:
        """Analyses every user with a session or a quest.

        Args:
            progress: Called as ``progress(done, total, user_id)`` after each user.
            now: End of the analysed windows (default: the current time).
            concurrency: Users analysed at once (each holds a pool connection).

        Returns:
            The users analysed, in order of their ids.
        """
        users = [
            row["user_id"]
            for row in await self._pool.fetch(
                "SELECT user_id FROM sessions UNION SELECT user_id FROM quests ORDER BY 1"
            )
        ]
        now = now or datetime.now(UTC)
        done = 0
        gate = asyncio.Semaphore(concurrency)

        async def one(user_id: str) -> None:
            nonlocal done
            async with gate:
                await self.analyze(user_id, now=now)
            done += 1
            if progress is not None:
                progress(done, len(users), user_id)

        async with asyncio.TaskGroup() as group:
            for user_id in users:
                group.create_task(one(user_id))
        return users

    async def get(self, user_id: str) -> UserPatterns | None:
        """Returns a user's stored patterns, or None if they were never analysed."""
        row = await self._pool.fetchrow(
            f"SELECT {_COLUMNS} FROM user_patterns WHERE user_id = $1", user_id
        )
        return _patterns(row) if row is not None else None

    def local_day(self, moment: datetime) -> date:
        """Returns the day ``moment`` falls on in the store's time zone."""
        return moment.astimezone(self._tz).date()

    def __str__(self) -> str:
        return "PatternStore"

    def _compute(
        self,
        user_id: str,
        now: datetime,
        sessions: Sequence[asyncpg.Record],
        conversations: Sequence[asyncpg.Record],
        quests: Sequence[asyncpg.Record],
        history: Sequence[asyncpg.Record],
    ) -> UserPatterns:
        day = self.local_day
        starts = [row["started_at"].astimezone(self._tz) for row in sessions]
        # Quests deleted on the day they were made were corrections, not work set.
        kept = [q for q in quests if q["created_at"] >= now - self._window and not self._mistake(q)]
        active_days = {s.date() for s in starts} | {day(q["created_at"]) for q in kept}
        completed = sum(q["status"] == "completed" for q in kept)
        completion_rate = completed / len(kept) if kept else None
        factors = coaching_factors(conversations, completion_rate)
        probability = (
            round(sum(COACHING_WEIGHTS[name] * value for name, value in factors.items()), 4)
            if factors
            else None
        )
        return UserPatterns(
            user_id=user_id,
            common_main_quests=self._main_groups(quests, history),
            speaking_triggers=speaking_triggers(history, tz=self._tz),
            average_quests_per_day=len(kept) / len(active_days) if active_days else None,
            preferred_session_time=typical_time_of_day(starts),
            completion_rate=completion_rate,
            needs_coaching_probability=probability,
            coaching_factors=factors,
            session_count=len(sessions),
            updated_at=now,
        )

    def _mistake(self, quest: asyncpg.Record) -> bool:
        """Whether a quest was deleted on the day it was made: a correction, not work set."""
        made, last_changed = quest["created_at"], quest["updated_at"]
        return quest["status"] == "deleted" and self.local_day(last_changed) == self.local_day(made)

    def _main_groups(
        self, quests: Sequence[asyncpg.Record], history: Sequence[asyncpg.Record]
    ) -> list[QuestGroup]:
        """Groups the quests that ended up main by their titles.

        Quests deleted on the day they were made were mistakes and are left out; ones
        dropped later were worked on and count.
        """
        days_worked: dict[Any, set[date]] = defaultdict(set)
        for row in history:
            if row["status"] != "deleted":  # dropping a quest is not working on it
                days_worked[row["quest_id"]].add(self.local_day(row["timestamp"]))
        mains = [q for q in quests if q["kind"] == "main" and not self._mistake(q)]
        # Newest last, so the latest quest of a group decides its title on ties and its status.
        mains.sort(key=lambda q: (q["updated_at"], str(q["id"])))
        groups = group_titles(q["title"] for q in mains)
        result = []
        for members in groups:
            rows = [q for q in mains if q["title"] in members]
            days = set().union(
                *({self.local_day(q["created_at"])} | days_worked[q["id"]] for q in rows)
            )
            titles = Counter(q["title"] for q in rows)
            rank = {title: i for i, title in enumerate(q["title"] for q in rows)}
            variants = sorted(titles, key=lambda t: (-titles[t], -rank[t]))
            result.append(
                QuestGroup(
                    title=variants[0],
                    count=len(rows),
                    days=len(days),
                    last_seen=max(days),
                    last_status=rows[-1]["status"],
                    completed=sum(q["status"] == "completed" for q in rows),
                    variants=variants,
                )
            )
        result.sort(key=lambda g: (-g.days, -g.count, -g.last_seen.toordinal(), g.title))
        return result[:MAX_GROUPS]


def normalize_title(title: str) -> frozenset[str]:
    """Returns the words of a quest title that carry its meaning, roughly stemmed.

    Lowercases, drops punctuation, stopwords and fillers ("um", "actually", "today", ...),
    and strips simple suffixes ("shipping" -> "ship", "bugs" -> "bug"). A title of only
    such words keeps all its words, so it is never empty unless the title is.
    """
    words = _WORD.findall(title.lower())
    meaningful = [w for w in words if w not in _STOPWORDS and w not in _FILLERS] or words
    return frozenset(_stem(w) for w in meaningful)


def title_similarity(a: frozenset[str], b: frozenset[str]) -> float:
    """Returns the Dice coefficient of two normalised titles, 0 (nothing shared) to 1."""
    if not a or not b:
        return 0.0
    return 2 * len(a & b) / (len(a) + len(b))


def group_titles(titles: Iterable[str]) -> list[set[str]]:
    """Groups titles that say the same thing.

    The most used title starts the first group; each further title (most used first) joins
    the group whose founding title it is most similar to, if that similarity reaches
    ``GROUP_SIMILARITY``, and otherwise founds a group of its own. Comparing with the founder
    (not with any member) keeps a chain of small differences from joining unrelated quests.

    Args:
        titles: Titles as written, repeats counting as uses; on equal use, later wins.

    Returns:
        The groups, as sets of the original titles, the most used group first.
    """
    counts = Counter(titles)
    order = {title: i for i, title in enumerate(counts)}
    founders: list[frozenset[str]] = []
    groups: list[set[str]] = []
    for title in sorted(counts, key=lambda t: (-counts[t], -order[t])):
        words = normalize_title(title)
        scores = [title_similarity(words, founder) for founder in founders]
        best = max(range(len(scores)), key=scores.__getitem__, default=None)
        if best is not None and scores[best] >= GROUP_SIMILARITY:
            groups[best].add(title)
        else:
            founders.append(words)
            groups.append({title})
    return groups


def speaking_triggers(
    history: Sequence[asyncpg.Record], *, tz: tzinfo = UTC
) -> list[SpeakingTrigger]:
    """Finds the leading phrases a person uses before corrections and priorities.

    A change is a *priority* when it makes a quest the main one (created as main or changed
    to main), and a *correction* when it changes an existing quest's title or kind, or
    deletes it on the day it was made (dropping an old quest corrects nothing). The first
    one to three words of its trigger phrase (after "um", "okay", ...) are counted; a phrase
    is kept when it led ``MIN_TRIGGER_COUNT`` changes or more, is not only stopwords, came
    in at least half the phrases starting with its first word (so "actually" is kept, and
    "actually buy" is not), and is not just the start of a longer kept phrase with the same
    count ("the main" goes when "the main thing" has its count).

    Args:
        history: ``quest_history`` rows with ``quest_id``, ``version``, ``kind``,
            ``changes_from_previous``, ``trigger_phrase`` and ``timestamp``.
        tz: Time zone of days.
    """
    made: dict[Any, date] = {}
    for row in history:
        if row["version"] == 1:
            made[row["quest_id"]] = row["timestamp"].astimezone(tz).date()
    counts: Counter[str] = Counter()
    kinds: dict[str, Counter[str]] = defaultdict(Counter)
    for row in history:
        same_day = made.get(row["quest_id"]) == row["timestamp"].astimezone(tz).date()
        kind = _change_kind(row, same_day)
        if kind is None or not row["trigger_phrase"]:
            continue
        words = _WORD.findall(row["trigger_phrase"].lower())
        while words and words[0] in _LEADING_FILLERS:
            words.pop(0)
        for n in range(1, min(MAX_TRIGGER_WORDS, len(words)) + 1):
            phrase = " ".join(words[:n])
            counts[phrase] += 1
            kinds[phrase][kind] += 1
    frequent = {
        phrase: count
        for phrase, count in counts.items()
        if count >= MIN_TRIGGER_COUNT
        and not set(phrase.split()) <= _STOPWORDS
        # A longer phrase must be how its first word usually goes on, not what followed once.
        and 2 * count >= counts[phrase.split()[0]]
    }
    kept = [
        phrase
        for phrase, count in frequent.items()
        if not any(
            other.startswith(phrase + " ") and frequent[other] == count for other in frequent
        )
    ]
    kept.sort(key=lambda p: (-counts[p], -len(p.split()), p))
    return [
        SpeakingTrigger(phrase, counts[phrase], kinds[phrase].most_common(1)[0][0])
        for phrase in kept[:MAX_TRIGGERS]
    ]


def typical_time_of_day(moments: Sequence[datetime]) -> time | None:
    """Returns the median time of day of ``moments`` (local times), to the minute.

    Times of day are on a circle: the median is taken after cutting the circle at the
    widest gap between sessions, so 23:50 and 00:10 give 00:00, not noon.
    """
    if not moments:
        return None
    minutes = sorted(m.hour * 60 + m.minute + m.second / 60 for m in moments)
    day = 24 * 60
    gaps = [(b - a) % day for a, b in zip(minutes, minutes[1:] + minutes[:1], strict=True)]
    cut = minutes[(gaps.index(max(gaps)) + 1) % len(minutes)] if len(minutes) > 1 else 0.0
    median = (statistics.median((m - cut) % day for m in minutes) + cut) % day
    whole = round(median) % day
    return time(whole // 60, whole % 60)


def coaching_factors(
    conversations: Sequence[asyncpg.Record], completion_rate: float | None
) -> dict[str, float]:
    """Returns the factors of ``COACHING_WEIGHTS``, each 0..1; empty without conversations.

    Args:
        conversations: ``conversations`` rows with ``main_quest_identified``,
            ``success_criteria_defined``, ``correction_count`` and ``emotional_journey``
            (a list of readings with a ``valence``).
        completion_rate: Share of quests completed, or None (counted as half done).
    """
    if not conversations:
        return {}
    n = len(conversations)
    negative_shares = []
    for row in conversations:
        valences = [
            r["valence"]
            for r in (row["emotional_journey"] or [])
            if isinstance(r, dict) and isinstance(r.get("valence"), int | float)
        ]
        if valences:
            negative_shares.append(sum(v <= NEGATIVE_VALENCE for v in valences) / len(valences))
    mean_corrections = sum(row["correction_count"] for row in conversations) / n
    factors = {
        "no_success_criteria": sum(not r["success_criteria_defined"] for r in conversations) / n,
        "no_main_quest": sum(not r["main_quest_identified"] for r in conversations) / n,
        "corrections": min(1.0, mean_corrections / CORRECTIONS_SATURATE),
        "negative_emotion": statistics.fmean(negative_shares) if negative_shares else 0.0,
        "unfinished": 1.0 - completion_rate if completion_rate is not None else 0.5,
    }
    return {name: round(value, 4) for name, value in factors.items()}


def _change_kind(row: asyncpg.Record, same_day: bool) -> str | None:
    changes = row["changes_from_previous"] or {}
    if row["kind"] == "main" and (row["version"] == 1 or "kind" in changes):
        return "priority"
    if "title" in changes or "kind" in changes:
        return "correction"
    if same_day and changes.get("status", {}).get("to") == "deleted":
        return "correction"
    return None


def _stem(word: str) -> str:
    for suffix in ("ing", "ed"):
        if word.endswith(suffix) and len(word) > len(suffix) + 2:
            stem = word[: -len(suffix)]
            return stem[:-1] if _DOUBLED.search(stem) else stem
    if word.endswith("ies") and len(word) > 4:
        return word[:-3] + "y"
    if word.endswith("s") and not word.endswith("ss") and len(word) > 3:
        return word[:-1]
    return word


_COLUMNS = (
    "user_id, common_main_quests, speaking_triggers, average_quests_per_day, "
    "preferred_session_time, completion_rate, needs_coaching_probability, coaching_factors, "
    "session_count, updated_at"
)

_UPSERT = f"""
INSERT INTO user_patterns ({_COLUMNS})
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
ON CONFLICT (user_id) DO UPDATE SET
    common_main_quests = EXCLUDED.common_main_quests,
    speaking_triggers = EXCLUDED.speaking_triggers,
    average_quests_per_day = EXCLUDED.average_quests_per_day,
    preferred_session_time = EXCLUDED.preferred_session_time,
    completion_rate = EXCLUDED.completion_rate,
    needs_coaching_probability = EXCLUDED.needs_coaching_probability,
    coaching_factors = EXCLUDED.coaching_factors,
    session_count = EXCLUDED.session_count,
    updated_at = EXCLUDED.updated_at
RETURNING {_COLUMNS}
"""


def _patterns(row: asyncpg.Record) -> UserPatterns:
    return UserPatterns(
        user_id=row["user_id"],
        common_main_quests=[QuestGroup.from_json(g) for g in row["common_main_quests"]],
        speaking_triggers=[SpeakingTrigger(**t) for t in row["speaking_triggers"]],
        average_quests_per_day=row["average_quests_per_day"],
        preferred_session_time=row["preferred_session_time"],
        completion_rate=row["completion_rate"],
        needs_coaching_probability=row["needs_coaching_probability"],
        coaching_factors=dict(row["coaching_factors"]),
        session_count=row["session_count"],
        updated_at=row["updated_at"],
    )


def _row(p: UserPatterns) -> tuple[Any, ...]:
    return (
        p.user_id,
        [g.to_json() for g in p.common_main_quests],
        [t.to_json() for t in p.speaking_triggers],
        p.average_quests_per_day,
        p.preferred_session_time,
        p.completion_rate,
        p.needs_coaching_probability,
        p.coaching_factors,
        p.session_count,
        p.updated_at,
    )
