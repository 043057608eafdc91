"""Today's drafted plan from synthetic 14-day histories in the real (embedded) PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

from protocol import messages
from quests.plan import draft_plan
from storage.database import Database
from storage.patterns import normalize_title
from tests.support.histories import STEADY_MAIN, TODAY, USERS, GeneratedHistory


async def test_steady_users_recurring_quest_is_the_main_candidate(
    database: Database, histories: dict[str, GeneratedHistory]
) -> None:
    draft = await draft_plan(database, "steady", today=TODAY)
    print(draft)

    assert draft.main is not None
    assert normalize_title(draft.main.title) == normalize_title(STEADY_MAIN[0])
    assert draft.main.confidence >= 0.8
    # It continues yesterday's open main quest rather than drafting a new one.
    assert draft.main.title == histories["steady"].unfinished[0]
    assert draft.main.quest_id is not None
    assert "onboarding" in draft.profile and "Rarely needs coaching" in draft.profile
    assert "yesterday" in draft.profile

    message = draft.to_protocol()
    assert isinstance(message, messages.PlanDraft)
    assert message.quests[0] == messages.PlannedQuest(
        title=draft.main.title, kind="main", confidence=draft.main.confidence
    )
    assert [q.kind for q in message.quests[1:]] == ["side"] * len(draft.carried_over)


async def test_yesterdays_unfinished_quests_carry_over(
    database: Database, histories: dict[str, GeneratedHistory]
) -> None:
    for user in USERS:
        draft = await draft_plan(database, user, today=TODAY)
        unfinished = histories[user].unfinished
        assert unfinished, user
        # Every quest left open yesterday is in the draft, and nothing from earlier days.
        assert sorted(q.title for q in draft.quests if q.quest_id) == sorted(unfinished), user
        assert all(0 < q.confidence <= 1 for q in draft.quests)
        assert all(q.kind == "side" for q in draft.carried_over)


async def test_leftovers_wait_for_the_next_session_day(
    database: Database, histories: dict[str, GeneratedHistory]
) -> None:
    later = TODAY + timedelta(days=3)
    draft = await draft_plan(database, "steady", today=later)
    titles = [q.title for q in draft.quests if q.quest_id]
    assert sorted(titles) == sorted(histories["steady"].unfinished)
    last_day = TODAY - timedelta(days=1)
    assert f"{last_day:%A}" in draft.profile


async def test_the_user_who_never_sets_criteria_is_coached(
    database: Database, histories: dict[str, GeneratedHistory]
) -> None:
    nocrit = await draft_plan(database, "nocrit", today=TODAY)
    steady = await draft_plan(database, "steady", today=TODAY)
    assert nocrit.needs_coaching_probability is not None
    assert steady.needs_coaching_probability is not None
    assert nocrit.needs_coaching_probability > steady.needs_coaching_probability
    assert "Tends to need coaching" in nocrit.profile and "success criteria" in nocrit.profile


async def test_a_quest_finished_since_the_analysis_is_not_carried(
    database: Database, histories: dict[str, GeneratedHistory]
) -> None:
    before = await draft_plan(database, "steady", today=TODAY)
    assert before.main is not None and before.main.quest_id is not None
    await database.quests.complete(before.main.quest_id, "steady", source="person")

    after = await draft_plan(database, "steady", today=TODAY)
    assert after.main is not None
    # Still their routine, but no longer yesterday's open quest.
    assert after.main.quest_id is None
    assert after.main.confidence < before.main.confidence
    assert before.main.quest_id not in {q.quest_id for q in after.carried_over}


async def test_a_new_user_gets_an_empty_draft(database: Database) -> None:
    draft = await draft_plan(database, "newcomer", today=TODAY)
    assert draft.main is None and draft.carried_over == []
    assert draft.to_protocol().quests == []
    assert draft.profile.startswith("New to KANE")
    assert draft.to_dict()["main"] is None
