"""The LLM's quest tools against a real PostgreSQL, called the way Pipecat calls them."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

import pytest
from pipecat.adapters.llm.services.open_ai_adapter import OpenAILLMAdapter
from pipecat.frames.frames import Frame
from pipecat.processors.aggregators.llm_context import LLMContext
from pipecat.processors.frame_processor import FrameDirection
from pipecat.services.llm_service import FunctionCallParams
from pipecat.services.openai.llm import OpenAILLMService

from frames.quests import QuestOperationFrame
from quests.tools import QuestTools, quest_tools_schema
from storage.database import Database


class FakeLLM:
    """Stands in for the LLM service: collects what a handler pushes."""

    def __init__(self) -> None:
        self.pushed: list[tuple[Frame, FrameDirection]] = []

    async def push_frame(
        self, frame: Frame, direction: FrameDirection = FrameDirection.DOWNSTREAM
    ) -> None:
        self.pushed.append((frame, direction))

    def operations(self) -> list[QuestOperationFrame]:
        frames = [f for f, _ in self.pushed]
        assert all(isinstance(f, QuestOperationFrame) for f in frames)
        return frames  # type: ignore[return-value]


class Session:
    """One session's quest tools, with what they answered and pushed."""

    def __init__(self, database: Database, user_id: str, session_id: str) -> None:
        self.words: str | None = None
        self.tools = QuestTools(
            database.quests,
            user_id=user_id,
            session_id=session_id,
            trigger_phrase=lambda: self.words,
        )
        self.llm = FakeLLM()
        self.context = LLMContext(tools=quest_tools_schema())
        self.results: list[Any] = []

    async def call(self, name: str, arguments: Mapping[str, Any] | None = None, **kw) -> Any:
        """Calls a tool as `LLMService` does and returns what it reported."""
        answered: list[Any] = []

        async def result_callback(result: Any, *, properties: Any = None) -> None:
            answered.append(result)

        params = FunctionCallParams(
            function_name=name,
            tool_call_id=f"call_{uuid.uuid4().hex[:8]}",
            arguments=arguments if arguments is not None else kw,
            llm=self.llm,  # type: ignore[arg-type]
            pipeline_worker=None,  # type: ignore[arg-type]
            context=self.context,
            result_callback=result_callback,
        )
        await self.tools.handle(params)
        assert len(answered) == 1, "a handler answers exactly once"
        return answered[0]


async def new_session(database: Database, user_id: str = "ana") -> Session:
    session_id = uuid.uuid4()
    await database.sessions.create_session(session_id, user_id, f"room-{session_id}", {})
    return Session(database, user_id, str(session_id))


def test_the_schemas_describe_every_tool_for_openai() -> None:
    tools = OpenAILLMAdapter().to_provider_tools_format(quest_tools_schema())
    by_name = {tool["function"]["name"]: tool["function"] for tool in tools}
    assert set(by_name) == {
        "create_quest",
        "update_quest",
        "set_main_quest",
        "set_success_criteria",
        "complete_quest",
        "delete_quest",
        "list_quests",
    }
    create = by_name["create_quest"]["parameters"]
    assert create["required"] == ["title", "kind"]
    assert create["properties"]["kind"]["enum"] == ["main", "side"]
    for function in by_name.values():
        assert "confidence" not in function["parameters"]["required"]


def test_register_hands_every_tool_to_the_llm_service() -> None:
    llm = OpenAILLMService(api_key="sk-test", settings=OpenAILLMService.Settings(model="gpt-4.1"))
    tools = QuestTools(None, user_id="ana", session_id=None, trigger_phrase=lambda: None)  # type: ignore[arg-type]
    tools.register(llm)
    for schema in quest_tools_schema().standard_tools:
        assert llm.has_function(schema.name)


async def test_create_answers_with_the_quest_and_announces_it(database: Database) -> None:
    session = await new_session(database)
    session.words = "my main quest today is to ship the onboarding flow"

    result = await session.call(
        "create_quest", title="Ship onboarding", kind="main", confidence=0.8
    )

    assert result["ok"] is True
    quest = result["quest"]
    assert (quest["title"], quest["kind"], quest["status"], quest["version"]) == (
        "Ship onboarding",
        "main",
        "active",
        1,
    )
    [(frame, direction)] = session.llm.pushed
    assert direction == FrameDirection.DOWNSTREAM
    assert isinstance(frame, QuestOperationFrame)
    assert (frame.op, frame.quest, frame.source) == ("create", quest, "llm")
    assert frame.trigger_phrase == "my main quest today is to ship the onboarding flow"
    assert frame.confidence == pytest.approx(0.8)
    assert frame.interruptible is False
    [v1] = await database.quests.history(quest["id"])
    assert v1.trigger_phrase == session.words


async def test_a_morning_plan_through_the_tools(database: Database) -> None:
    session = await new_session(database)
    onboarding = (await session.call("create_quest", title="Ship onboarding", kind="main"))["quest"]
    login = (await session.call("create_quest", title="Fix login", kind="side"))["quest"]

    session.words = "no wait, the login bug comes first"
    result = await session.call("set_main_quest", quest_id=login["id"], confidence=0.9)
    assert result["ok"] is True
    assert result["quest"]["kind"] == "main"
    assert result["demoted"]["id"] == onboarding["id"]
    *_, demoted, promoted = session.llm.operations()
    assert (demoted.op, demoted.quest["id"], demoted.changes) == (
        "update",
        onboarding["id"],
        {"kind": "side"},
    )
    assert (promoted.op, promoted.changes) == ("set_main", {"kind": "main"})

    result = await session.call(
        "set_success_criteria",
        quest_id=login["id"],
        criteria=["People can log in with Apple", "No crash on logout"],
    )
    assert result["quest"]["success_criteria"] == [
        "People can log in with Apple",
        "No crash on logout",
    ]
    result = await session.call("update_quest", quest_id=login["id"], title="Fix the login bug")
    assert result["quest"]["version"] == 4
    assert session.llm.operations()[-1].changes == {"title": "Fix the login bug"}

    assert (await session.call("complete_quest", quest_id=onboarding["id"]))["ok"] is True
    listed = await session.call("list_quests")
    assert listed["ok"] is True
    assert [(q["title"], q["kind"]) for q in listed["quests"]] == [("Fix the login bug", "main")]
    assert (await session.call("delete_quest", quest_id=login["id"]))["quest"]["status"] == (
        "deleted"
    )
    assert (await session.call("list_quests"))["quests"] == []
    ops = [f.op for f in session.llm.operations()]
    assert ops == [
        "create",
        "create",
        "update",
        "set_main",
        "set_success_criteria",
        "update",
        "complete",
        "delete",
    ]


async def test_a_second_main_quest_is_refused_in_words_the_llm_can_act_on(
    database: Database,
) -> None:
    session = await new_session(database)
    await session.call("create_quest", title="Ship onboarding", kind="main")
    pushed = len(session.llm.pushed)

    result = await session.call("create_quest", title="Fix the login bug", kind="main")

    assert result["ok"] is False
    assert result["error"] == "second_main_quest"
    assert "set_main_quest" in result["message"]
    assert len(session.llm.pushed) == pushed


@pytest.mark.parametrize(
    ("name", "arguments", "error"),
    [
        ("create_quest", {"title": "", "kind": "side"}, "empty_title"),
        ("create_quest", {"title": "x" * 201, "kind": "side"}, "title_too_long"),
        ("create_quest", {"title": "Ship it", "kind": "urgent"}, "invalid_kind"),
        ("create_quest", {"title": "Ship it"}, "invalid_arguments"),
        ("create_quest", {"title": 42, "kind": "side"}, "invalid_arguments"),
        (
            "create_quest",
            {"title": "Ship", "kind": "side", "confidence": "high"},
            "invalid_arguments",
        ),
        ("update_quest", {"quest_id": str(uuid.uuid4()), "title": "New"}, "unknown_quest"),
        ("update_quest", {"quest_id": "quest-1", "title": "New"}, "unknown_quest"),
        ("update_quest", {"quest_id": str(uuid.uuid4())}, "nothing_to_update"),
        ("set_main_quest", {}, "invalid_arguments"),
        ("set_success_criteria", {"quest_id": "q", "criteria": "ship it"}, "invalid_arguments"),
        ("complete_quest", {"quest_id": str(uuid.uuid4())}, "unknown_quest"),
        ("delete_quest", {"quest_id": None}, "invalid_arguments"),
        ("plan_my_life", {}, "invalid_arguments"),
    ],
)
async def test_bad_calls_are_answered_not_raised(
    database: Database, name: str, arguments: dict[str, Any], error: str
) -> None:
    session = await new_session(database)
    result = await session.call(name, arguments)
    assert result["ok"] is False
    assert result["error"] == error
    assert result["message"]
    assert session.llm.pushed == []


async def test_too_many_criteria_are_refused(database: Database) -> None:
    session = await new_session(database)
    quest = (await session.call("create_quest", title="Ship onboarding", kind="main"))["quest"]
    result = await session.call(
        "set_success_criteria", quest_id=quest["id"], criteria=[f"c{i}" for i in range(11)]
    )
    assert (result["ok"], result["error"]) == (False, "too_many_criteria")


async def test_the_tools_only_reach_their_own_users_quests(database: Database) -> None:
    ana = await new_session(database, "ana")
    ben = await new_session(database, "ben")
    quest = (await ana.call("create_quest", title="Ship onboarding", kind="main"))["quest"]

    assert (await ben.call("list_quests"))["quests"] == []
    result = await ben.call("complete_quest", quest_id=quest["id"])
    assert (result["ok"], result["error"]) == (False, "unknown_quest")
    assert ben.llm.pushed == []
    assert (await ana.call("list_quests"))["quests"] == [quest]


async def test_a_database_failure_is_answered_too(database: Database) -> None:
    session = await new_session(database)
    await database.pool.execute("DROP TABLE quest_history")

    result = await session.call("create_quest", title="Ship onboarding", kind="side")

    assert (result["ok"], result["error"]) == (False, "internal_error")
    assert session.llm.pushed == []
    assert (await session.call("list_quests"))["quests"] == []  # the insert was rolled back
