"""The quest store against a real PostgreSQL: versions, history, one main quest, isolation."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from storage.database import Database
from storage.quests import QuestError, QuestStore


@pytest.fixture
async def session_id(database: Database) -> str:
    session = uuid.uuid4()
    await database.sessions.create_session(session, "ana", f"room-{session}", {})
    return str(session)


@pytest.fixture
def store(database: Database) -> QuestStore:
    return database.quests


async def test_a_created_quest_is_version_1_with_the_words_that_made_it(
    store: QuestStore, session_id: str
) -> None:
    quest = await store.create(
        "ana",
        "  Ship the onboarding flow ",
        "main",
        session_id=session_id,
        trigger_phrase="my main quest today is to ship the onboarding flow",
        confidence=0.9,
        source="llm",
    )
    assert (quest.title, quest.kind, quest.status, quest.version) == (
        "Ship the onboarding flow",
        "main",
        "active",
        1,
    )
    assert quest.success_criteria == []
    [v1] = await store.history(quest.id)
    assert v1.version == 1
    assert v1.trigger_phrase == "my main quest today is to ship the onboarding flow"
    assert v1.confidence == pytest.approx(0.9)
    assert (v1.user_id, v1.session_id, v1.source, v1.kind, v1.status) == (
        "ana",
        session_id,
        "llm",
        "main",
        "active",
    )
    assert v1.changes_from_previous is None


async def test_each_change_is_a_new_version_with_what_changed(
    store: QuestStore, session_id: str
) -> None:
    quest = await store.create("ana", "Fix login", "side", session_id=session_id)
    renamed, changes = await store.update(
        quest.id,
        "ana",
        title="Fix the login bug",
        session_id=session_id,
        trigger_phrase="actually, call it fix the login bug",
        confidence=0.7,
        source="person",
    )
    assert changes == {"title": "Fix the login bug"}
    assert (renamed.title, renamed.version) == ("Fix the login bug", 2)

    criteria = ["Login works on iOS 17", "  No crash on logout  "]
    with_criteria, changes = await store.set_success_criteria(quest.id, "ana", criteria)
    assert with_criteria.success_criteria == ["Login works on iOS 17", "No crash on logout"]
    assert changes == {"success_criteria": with_criteria.success_criteria}
    done, _ = await store.complete(quest.id, "ana")
    assert (done.status, done.version) == ("completed", 4)

    history = await store.history(quest.id, "ana")
    assert [v.version for v in history] == [1, 2, 3, 4]
    v2 = history[1]
    assert v2.title == "Fix the login bug"
    assert v2.changes_from_previous == {"title": {"from": "Fix login", "to": "Fix the login bug"}}
    assert (v2.trigger_phrase, v2.source) == ("actually, call it fix the login bug", "person")
    assert history[3].changes_from_previous == {"status": {"from": "active", "to": "completed"}}
    assert await store.get(quest.id, "ana") == done


async def test_a_change_that_changes_nothing_writes_no_version(store: QuestStore) -> None:
    quest = await store.create("ana", "Write the memo", "side")
    same, changes = await store.update(quest.id, "ana", title=" Write the memo ", kind="side")
    assert (same, changes) == (quest, {})
    assert len(await store.history(quest.id)) == 1


async def test_a_second_main_quest_is_refused_with_a_pointer_to_set_main(
    store: QuestStore,
) -> None:
    main = await store.create("ana", "Ship onboarding", "main")
    with pytest.raises(QuestError) as refused:
        await store.create("ana", "Fix the login bug", "main")
    assert refused.value.code == "second_main_quest"
    assert "set_main_quest" in refused.value.message
    assert "Ship onboarding" in refused.value.message

    side = await store.create("ana", "Fix the login bug", "side")
    with pytest.raises(QuestError) as refused:
        await store.update(side.id, "ana", kind="main")
    assert refused.value.code == "second_main_quest"
    assert [q.id for q in await store.list_active("ana")] == [main.id, side.id]


async def test_set_main_demotes_the_current_main_quest_and_versions_both(
    store: QuestStore,
) -> None:
    onboarding = await store.create("ana", "Ship onboarding", "main")
    login = await store.create("ana", "Fix the login bug", "side")

    promoted, demoted = await store.set_main(
        login.id, "ana", trigger_phrase="no wait, the login bug comes first"
    )
    assert (promoted.quest.kind, promoted.quest.version, promoted.changes) == (
        "main",
        2,
        {"kind": "main"},
    )
    assert demoted is not None
    assert (demoted.quest.id, demoted.quest.kind, demoted.quest.version) == (
        onboarding.id,
        "side",
        2,
    )
    active = await store.list_active("ana")
    assert [(q.title, q.kind) for q in active] == [
        ("Fix the login bug", "main"),
        ("Ship onboarding", "side"),
    ]
    [_, v2] = await store.history(onboarding.id)
    assert v2.trigger_phrase == "no wait, the login bug comes first"
    assert v2.changes_from_previous == {"kind": {"from": "main", "to": "side"}}

    again, nobody = await store.set_main(login.id, "ana")
    assert (again.changes, nobody, again.quest.version) == ({}, None, 2)


async def test_completing_the_main_quest_frees_the_place(store: QuestStore) -> None:
    first = await store.create("ana", "Ship onboarding", "main")
    await store.complete(first.id, "ana")
    second = await store.create("ana", "Plan the launch", "main")
    assert [q.id for q in await store.list_active("ana")] == [second.id]
    with pytest.raises(QuestError) as refused:
        await store.update(first.id, "ana", status="active")
    assert refused.value.code == "second_main_quest"
    with pytest.raises(QuestError) as refused:
        await store.set_main(first.id, "ana")
    assert refused.value.code == "quest_not_active"


async def test_two_main_quests_created_at_once_leave_one(store: QuestStore) -> None:
    results = await asyncio.gather(
        *(store.create("ana", f"Main {i}", "main") for i in range(5)), return_exceptions=True
    )
    errors = [r for r in results if isinstance(r, QuestError)]
    assert len(errors) == 4
    assert {e.code for e in errors} == {"second_main_quest"}
    assert len(await store.list_active("ana")) == 1


async def test_a_user_never_sees_or_changes_another_users_quest(store: QuestStore) -> None:
    anas = await store.create("ana", "Ship onboarding", "main")
    bens = await store.create("ben", "Run 5k", "main")  # a main quest of his own is fine

    assert await store.get(anas.id, "ben") is None
    assert await store.history(anas.id, "ben") == []
    assert [q.id for q in await store.list_active("ben")] == [bens.id]
    for change in (
        store.update(anas.id, "ben", title="Hijacked"),
        store.set_main(anas.id, "ben"),
        store.set_success_criteria(anas.id, "ben", ["x"]),
        store.complete(anas.id, "ben"),
        store.delete(anas.id, "ben"),
    ):
        with pytest.raises(QuestError) as refused:
            await change
        assert refused.value.code == "unknown_quest"
    assert await store.get(anas.id, "ana") == anas


async def test_a_deleted_quest_is_kept_in_history_but_cannot_change(store: QuestStore) -> None:
    quest = await store.create("ana", "Call mom", "side")
    deleted, changes = await store.delete(quest.id, "ana")
    assert (deleted.status, changes) == ("deleted", {"status": "deleted"})
    assert await store.list_active("ana") == []
    with pytest.raises(QuestError) as refused:
        await store.update(quest.id, "ana", title="Call dad")
    assert refused.value.code == "unknown_quest"
    assert [v.status for v in await store.history(quest.id)] == ["active", "deleted"]


@pytest.mark.parametrize(
    ("title", "kind", "code"),
    [
        ("   ", "side", "empty_title"),
        ("x" * 201, "side", "title_too_long"),
        ("Ship it", "urgent", "invalid_kind"),
    ],
)
async def test_invalid_quests_are_refused(
    store: QuestStore, title: str, kind: str, code: str
) -> None:
    with pytest.raises(QuestError) as refused:
        await store.create("ana", title, kind)
    assert refused.value.code == code
    assert await store.list_active("ana") == []


@pytest.mark.parametrize(
    ("criteria", "code"),
    [
        ([f"criterion {i}" for i in range(11)], "too_many_criteria"),
        (["fine", " "], "empty_criterion"),
        (["x" * 301], "criterion_too_long"),
    ],
)
async def test_invalid_success_criteria_are_refused(
    store: QuestStore, criteria: list[str], code: str
) -> None:
    quest = await store.create("ana", "Ship onboarding", "main")
    with pytest.raises(QuestError) as refused:
        await store.set_success_criteria(quest.id, "ana", criteria)
    assert refused.value.code == code
    assert (await store.get(quest.id, "ana")) == quest


async def test_unknown_and_malformed_ids_are_unknown_quests(store: QuestStore) -> None:
    for quest_id in (str(uuid.uuid4()), "quest-1", ""):
        with pytest.raises(QuestError) as refused:
            await store.complete(quest_id, "ana")
        assert refused.value.code == "unknown_quest"
        assert await store.get(quest_id, "ana") is None


async def test_a_change_without_a_stored_session_is_kept(store: QuestStore) -> None:
    quest = await store.create("ana", "Write the memo", "side", session_id=str(uuid.uuid4()))
    [v1] = await store.history(quest.id)
    assert v1.session_id is None
