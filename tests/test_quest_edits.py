"""The person's own quest edits from the phone, applied with a real PostgreSQL behind."""

from __future__ import annotations

import uuid

import pytest
from pipecat.frames.frames import InterruptionFrame, TextFrame, TranscriptionFrame
from pipecat.processors.aggregators.llm_context import LLMContext
from pipecat.tests.utils import run_test

from frames.quests import QuestOperationFrame
from frames.ui import QuestEditFrame
from processors.quest_edits import NOTE_PREFIX, QuestEditApplier
from storage.database import Database
from storage.quests import QuestStore


@pytest.fixture
async def session_id(database: Database) -> str:
    session = uuid.uuid4()
    await database.sessions.create_session(session, "ana", f"room-{session}", {})
    return str(session)


def notes(context: LLMContext) -> list[str]:
    return [
        str(m["content"])
        for m in context.get_messages()
        if str(m.get("content", "")).startswith(NOTE_PREFIX)
    ]


def applier(store: QuestStore, session_id: str, context: LLMContext) -> QuestEditApplier:
    return QuestEditApplier(store=store, user_id="ana", session_id=session_id, context=context)


async def test_a_rename_on_the_phone_is_stored_announced_and_told_to_the_llm(
    database: Database, session_id: str
) -> None:
    store = database.quests
    quest = await store.create("ana", "Fix login", "side", session_id=session_id)
    context = LLMContext(messages=[{"role": "user", "content": "let's plan"}])
    edit = QuestEditFrame(quest_id=quest.id, changes={"title": "Fix the login bug"})

    down, _ = await run_test(
        applier(store, session_id, context),
        frames_to_send=[TranscriptionFrame("hi", "ana", "now"), edit, TextFrame("after")],
    )

    assert [type(f) for f in down] == [TranscriptionFrame, TextFrame, QuestOperationFrame]
    operation = down[2]
    assert isinstance(operation, QuestOperationFrame)
    assert (operation.op, operation.source, operation.changes) == (
        "update",
        "person",
        {"title": "Fix the login bug"},
    )
    assert operation.quest["version"] == 2
    [note] = notes(context)
    assert "renamed quest 'Fix login' to 'Fix the login bug'" in note
    assert context.get_messages()[-1]["role"] == "developer"
    [_, v2] = await store.history(quest.id)
    assert (v2.source, v2.session_id, v2.title) == ("person", session_id, "Fix the login bug")


async def test_making_a_quest_main_on_the_phone_demotes_the_other(
    database: Database, session_id: str
) -> None:
    store = database.quests
    onboarding = await store.create("ana", "Ship onboarding", "main")
    login = await store.create("ana", "Fix the login bug", "side")
    context = LLMContext()

    down, _ = await run_test(
        applier(store, session_id, context),
        frames_to_send=[QuestEditFrame(quest_id=login.id, changes={"kind": "main"})],
    )

    operations = [f for f in down if isinstance(f, QuestOperationFrame)]
    assert [(f.op, f.quest["id"], f.quest["kind"]) for f in operations] == [
        ("update", onboarding.id, "side"),
        ("set_main", login.id, "main"),
    ]
    [note] = notes(context)
    assert "made 'Fix the login bug' the main quest" in note
    assert "'Ship onboarding' became a side quest" in note
    assert [q.kind for q in await store.list_active("ana")] == ["main", "side"]


async def test_done_and_criteria_on_the_phone(database: Database, session_id: str) -> None:
    store = database.quests
    quest = await store.create("ana", "Ship onboarding", "main")
    context = LLMContext()
    edits = [
        QuestEditFrame(quest_id=quest.id, changes={"success_criteria": ["Live in TestFlight"]}),
        QuestEditFrame(quest_id=quest.id, changes={"status": "completed"}),
    ]

    down, _ = await run_test(applier(store, session_id, context), frames_to_send=edits)

    assert [(f.op, f.quest["version"]) for f in down] == [
        ("set_success_criteria", 2),
        ("complete", 3),
    ]
    assert len(notes(context)) == 2
    assert "Live in TestFlight" in notes(context)[0]
    assert "marked 'Ship onboarding' done" in notes(context)[1]


async def test_bad_edits_push_nothing_and_the_session_goes_on(
    database: Database, session_id: str
) -> None:
    store = database.quests
    quest = await store.create("ana", "Ship onboarding", "main")
    bens = await store.create("ben", "Run 5k", "side")
    context = LLMContext()
    bad = [
        QuestEditFrame(quest_id=str(uuid.uuid4()), changes={"title": "Nope"}),
        QuestEditFrame(quest_id="not-a-uuid", changes={"title": "Nope"}),
        QuestEditFrame(quest_id=bens.id, changes={"title": "Hijacked"}),
        QuestEditFrame(quest_id=quest.id, changes={"title": "   "}),
        QuestEditFrame(quest_id=quest.id, changes={"owner": "ben"}),
        QuestEditFrame(quest_id=quest.id, changes={}),
    ]

    down, up = await run_test(
        applier(store, session_id, context), frames_to_send=[*bad, TextFrame("still here")]
    )

    assert [type(f) for f in down] == [TextFrame]
    assert up == []
    assert notes(context) == []
    assert await store.get(quest.id, "ana") == quest
    assert await store.get(bens.id, "ben") == bens


async def test_an_edit_that_changes_nothing_is_not_announced(
    database: Database, session_id: str
) -> None:
    store = database.quests
    quest = await store.create("ana", "Ship onboarding", "main")
    context = LLMContext()
    down, _ = await run_test(
        applier(store, session_id, context),
        frames_to_send=[QuestEditFrame(quest_id=quest.id, changes={"title": "Ship onboarding"})],
    )
    assert down == []
    assert notes(context) == []


async def test_an_interruption_does_not_lose_an_edit(database: Database, session_id: str) -> None:
    store = database.quests
    quest = await store.create("ana", "Fix login", "side")
    context = LLMContext()
    edit = QuestEditFrame(quest_id=quest.id, changes={"title": "Fix the login bug"})

    down, _ = await run_test(
        applier(store, session_id, context), frames_to_send=[edit, InterruptionFrame()]
    )

    assert [f.op for f in down if isinstance(f, QuestOperationFrame)] == ["update"]
    assert (await store.get(quest.id, "ana")).title == "Fix the login bug"  # type: ignore[union-attr]
