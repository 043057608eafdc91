"""Today's plan, drafted before the person speaks: a main quest candidate and leftovers.

The draft comes from two things: the user's patterns (``storage.patterns``: the main quests
they keep coming back to) and the quests they left unfinished on their last session day.

The main candidate is the main-quest group with the highest confidence::

    confidence = 0.5 * share + 0.3 * recency + 0.2 * open

where *share* is the group's days among all main-quest days, *recency* is
``RECENCY_DECAY ** (days since it was last worked on, counted from yesterday)``, and *open* is
1 when its latest quest is still active. A main quest that was completed or dropped is no
candidate, unless the person came back to it on ``ROUTINE_DAYS`` days or more: then it is
their routine. Yesterday's unfinished main quest is at least ``UNFINISHED_MAIN``
confident. Carried-over quests are ``CARRY_CONFIDENCE`` confident, less for each day they
have already been carried.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Protocol

import asyncpg

from protocol import messages
from storage.patterns import (
    GROUP_SIMILARITY,
    PatternStore,
    QuestGroup,
    UserPatterns,
    normalize_title,
    title_similarity,
)

RECENCY_DECAY = 0.8
ROUTINE_DAYS = 3
UNFINISHED_MAIN = 0.6
CARRY_CONFIDENCE = 0.8
CARRY_DECAY = 0.85
MIN_CONFIDENCE = 0.2
# Coaching probability from which the profile says the person tends to need coaching.
COACHING_HIGH = 0.5
COACHING_SOME = 0.25
# Carried-over quests named in the profile.
PROFILE_QUESTS = 4

_FACTOR_WORDS = {
    "no_success_criteria": "success criteria",
    "no_main_quest": "a clear main quest",
    "corrections": "fewer corrections",
    "negative_emotion": "encouragement",
    "unfinished": "finishing quests",
}


class PlanSources(Protocol):
    """What the planner reads: a pool and a pattern store (``storage.Database`` is one)."""

    @property
    def pool(self) -> asyncpg.Pool:
        """The connection pool."""
        ...

    @property
    def patterns(self) -> PatternStore:
        """The pattern store."""
        ...


@dataclass(frozen=True)
class DraftQuest:
    """A quest drafted for today.

    Parameters:
        title: What the quest is.
        kind: "main" or "side".
        confidence: How sure the planner is, 0 to 1.
        quest_id: The existing, still active quest it continues, if any.
    """

    title: str
    kind: str
    confidence: float
    quest_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Returns the quest as JSON-ready values."""
        return {
            "title": self.title,
            "kind": self.kind,
            "confidence": self.confidence,
            "quest_id": self.quest_id,
        }


@dataclass(frozen=True)
class PlanDraft:
    """Today's drafted plan for a user.

    Parameters:
        user_id: The user.
        day: The day the plan is for.
        main: The main quest candidate, or None if nothing stands out.
        carried_over: Quests left unfinished on the last session day, as side quests.
        profile: Two or three sentences about the person for the system prompt.
        needs_coaching_probability: From the patterns, 0 to 1, or None if unknown.
    """

    user_id: str
    day: date
    main: DraftQuest | None
    carried_over: list[DraftQuest]
    profile: str
    needs_coaching_probability: float | None

    @property
    def quests(self) -> list[DraftQuest]:
        """The drafted quests, the main candidate first."""
        return ([self.main] if self.main else []) + self.carried_over

    def to_protocol(self) -> messages.PlanDraft:
        """Returns the ``plan_draft`` message for the phone."""
        return messages.PlanDraft(
            quests=[
                messages.PlannedQuest(title=q.title, kind=q.kind, confidence=q.confidence)
                for q in self.quests
            ]
        )

    def to_dict(self) -> dict[str, Any]:
        """Returns the draft as JSON-ready values (for the API and check-ins)."""
        return {
            "user_id": self.user_id,
            "day": self.day.isoformat(),
            "main": self.main.to_dict() if self.main else None,
            "carried_over": [q.to_dict() for q in self.carried_over],
            "profile": self.profile,
            "needs_coaching_probability": self.needs_coaching_probability,
        }


async def draft_plan(
    sources: PlanSources, user_id: str, *, today: date, now: datetime | None = None
) -> PlanDraft:
    """Drafts a user's plan for ``today``.

    Uses the stored patterns when they are newer than the user's last quest change and
    session; otherwise analyses again (and stores the result) first.

    Args:
        sources: Where to read from, e.g. the ``Database``.
        user_id: The user.
        today: The day to plan, in the pattern store's time zone.
        now: The current time (default: the clock, but no later than the end of ``today``).

    Returns:
        The draft; for a user without history, one with no quests.
    """
    store = sources.patterns
    start = datetime.combine(today, time(0), store.tz)
    now = now or min(datetime.now(UTC), start + timedelta(days=1))
    patterns = await _fresh_patterns(sources.pool, store, user_id, now)
    leftovers, last_day = await _leftovers(sources.pool, store, user_id, start)

    main = _main_candidate(patterns.common_main_quests, leftovers, today)
    carried = [
        DraftQuest(
            title=row["title"],
            kind="side",
            confidence=_carry_confidence(store.local_day(row["created_at"]), last_day),
            quest_id=str(row["id"]),
        )
        for row in leftovers
        if main is None or not _same_quest(row, main)
    ]
    return PlanDraft(
        user_id=user_id,
        day=today,
        main=main,
        carried_over=carried,
        profile=_profile(patterns, carried, main, last_day, today),
        needs_coaching_probability=patterns.needs_coaching_probability,
    )


async def _fresh_patterns(
    pool: asyncpg.Pool, store: PatternStore, user_id: str, now: datetime
) -> UserPatterns:
    patterns = await store.get(user_id)
    latest = await pool.fetchval(
        "SELECT max(t) FROM ("
        "SELECT max(updated_at) AS t FROM quests WHERE user_id = $1 AND updated_at < $2 "
        "UNION ALL SELECT max(started_at) FROM sessions WHERE user_id = $1 AND started_at < $2"
        ") AS changes",
        user_id,
        now,
    )
    if patterns is None or (latest is not None and patterns.updated_at < latest):
        patterns = await store.analyze(user_id, now=now)
    return patterns


async def _leftovers(
    pool: asyncpg.Pool, store: PatternStore, user_id: str, start: datetime
) -> tuple[list[asyncpg.Record], date | None]:
    """Returns the active quests touched on the last session day before ``start``, and it."""
    rows = await pool.fetch(
        "SELECT id, title, kind, created_at, updated_at FROM quests "
        "WHERE user_id = $1 AND status = 'active' AND created_at < $2 "
        "ORDER BY kind = 'main' DESC, created_at, id",
        user_id,
        start,
    )
    last_start = await pool.fetchval(
        "SELECT max(started_at) FROM sessions WHERE user_id = $1 AND started_at < $2",
        user_id,
        start,
    )
    days = [store.local_day(r["updated_at"]) for r in rows if r["updated_at"] < start]
    if last_start is not None:
        last_day: date | None = store.local_day(last_start)
    else:
        last_day = max(days, default=None)
    if last_day is None:
        return [], None
    # Quests nobody touched on the last session day are stale, not leftovers.
    return [r for r in rows if store.local_day(r["updated_at"]) >= last_day], last_day


def _main_candidate(
    groups: list[QuestGroup], leftovers: list[asyncpg.Record], today: date
) -> DraftQuest | None:
    total_days = sum(g.days for g in groups) or 1
    unfinished_main = next((r for r in leftovers if r["kind"] == "main"), None)
    best: DraftQuest | None = None
    for group in groups:
        if group.last_status != "active" and group.days < ROUTINE_DAYS:
            continue  # done or dropped, and no routine
        idle = max(0, (today - group.last_seen).days - 1)
        open_ = 1.0 if group.last_status == "active" else 0.0
        confidence = 0.5 * group.days / total_days + 0.3 * RECENCY_DECAY**idle + 0.2 * open_
        title, quest_id = group.title, None
        if unfinished_main is not None and _in_group(unfinished_main["title"], group):
            # Continue the very quest the person left open.
            title, quest_id = unfinished_main["title"], str(unfinished_main["id"])
            confidence = max(confidence, UNFINISHED_MAIN)
        if best is None or confidence > best.confidence:
            best = DraftQuest(title, "main", round(confidence, 2), quest_id)
    if unfinished_main is not None and (best is None or best.confidence < UNFINISHED_MAIN):
        best = DraftQuest(
            unfinished_main["title"], "main", UNFINISHED_MAIN, str(unfinished_main["id"])
        )
    return best


def _in_group(title: str, group: QuestGroup) -> bool:
    words = normalize_title(title)
    return title in group.variants or any(
        title_similarity(words, normalize_title(v)) >= GROUP_SIMILARITY for v in group.variants
    )


def _same_quest(row: asyncpg.Record, main: DraftQuest) -> bool:
    if main.quest_id is not None and str(row["id"]) == main.quest_id:
        return True
    similarity = title_similarity(normalize_title(row["title"]), normalize_title(main.title))
    return similarity >= GROUP_SIMILARITY


def _carry_confidence(created: date, last_day: date | None) -> float:
    carried_days = max(0, (last_day - created).days) if last_day else 0
    return round(max(MIN_CONFIDENCE, CARRY_CONFIDENCE * CARRY_DECAY**carried_days), 2)


def _profile(
    patterns: UserPatterns,
    carried: list[DraftQuest],
    main: DraftQuest | None,
    last_day: date | None,
    today: date,
) -> str:
    """Two or three sentences: usual work, unfinished quests, need for coaching."""
    if patterns.session_count == 0 and not patterns.common_main_quests:
        return "New to KANE: no earlier sessions, so nothing is known about their work yet."
    sentences = [_usual_work(patterns)]
    unfinished = [q.title for q in carried]
    if main is not None and main.quest_id is not None:
        unfinished.insert(0, main.title)
    if unfinished and last_day is not None:
        when = "yesterday" if last_day == today - timedelta(days=1) else f"{last_day:%A %d %B}"
        named = ", ".join(f'"{t}"' for t in unfinished[:PROFILE_QUESTS])
        more = len(unfinished) - PROFILE_QUESTS
        sentences.append(
            f"Left unfinished {when}: {named}{f' and {more} more' if more > 0 else ''}."
        )
    else:
        sentences.append("Nothing was left unfinished at the last session.")
    coaching = _coaching(patterns)
    if coaching:
        sentences.append(coaching)
    return " ".join(sentences)


def _usual_work(patterns: UserPatterns) -> str:
    groups = patterns.common_main_quests
    habits = []
    if patterns.preferred_session_time is not None:
        habits.append(f"usually plans around {patterns.preferred_session_time:%H:%M}")
    if patterns.average_quests_per_day is not None:
        habits.append(f"sets about {patterns.average_quests_per_day:.0f} quests a day")
    tail = f"; {' and '.join(habits)}" if habits else ""
    if not groups:
        return f"Has no recurring main quest yet{tail}."
    usual = f'Usually works on "{groups[0].title}" (main quest on {groups[0].days} recent days)'
    if len(groups) > 1 and groups[1].days > 1:
        usual += f', sometimes "{groups[1].title}"'
    return usual + tail + "."


def _coaching(patterns: UserPatterns) -> str | None:
    p = patterns.needs_coaching_probability
    if p is None:
        return None
    factors = sorted(patterns.coaching_factors.items(), key=lambda item: -item[1])
    wants = [_FACTOR_WORDS[name] for name, value in factors if value >= 0.5][:2]
    help_with = f", mostly with {' and '.join(wants)}" if wants else ""
    if p >= COACHING_HIGH:
        return f"Tends to need coaching ({p:.2f}){help_with}: guide them firmly."
    if p >= COACHING_SOME:
        return f"Sometimes needs coaching ({p:.2f}){help_with}."
    return f"Rarely needs coaching ({p:.2f}): usually sets a main quest and success criteria."
