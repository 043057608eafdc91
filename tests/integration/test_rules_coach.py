"""Conversations with the rules coach through the real quest tools and a real PostgreSQL.

The pipeline is the bot's from the user aggregator to the assistant aggregator: the coach
note, the rules coach with `QuestTools` registered, the quest board tracker. The person's
turns go in one at a time, each once the coach has answered the one before; an observer sees
what leaves the coach, as the tap does.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass, field

from pipecat.frames.frames import (
    EndFrame,
    Frame,
    FunctionCallInProgressFrame,
    FunctionCallResultFrame,
    LLMContextAssistantTurnFrame,
    LLMMessagesAppendFrame,
)
from pipecat.observers.base_observer import BaseObserver, FramePushed
from pipecat.pipeline.pipeline import Pipeline
from pipecat.processors.aggregators.llm_context import LLMContext
from pipecat.processors.aggregators.llm_response_universal import LLMContextAggregatorPair
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
from pipecat.tests.utils import run_test

from frames.quests import QuestOperationFrame
from processors.coach_turn import NOTE_PREFIX, CoachTurnNote
from processors.quest_board import QuestBoardTracker
from quests.board import QuestBoard
from quests.tools import QuestTools, quest_tools_schema
from quests.trigger import last_user_words
from services.rules_coach import RulesCoachLLMService
from storage.database import Database

REPLY_TIMEOUT_S = 10.0


@dataclass
class Talk:
    """What was said and done, turn by turn."""

    replies: list[str] = field(default_factory=list)
    calls: list[list[tuple[str, dict]]] = field(default_factory=list)  # per turn
    seconds: list[float] = field(default_factory=list)  # words in to reply out, per turn
    left_the_coach: list[Frame] = field(default_factory=list)
    _answered: asyncio.Condition = field(default_factory=asyncio.Condition)
    _sent_at: float = 0.0

    async def wait_for_replies(self, count: int) -> None:
        async with self._answered:
            try:
                await asyncio.wait_for(
                    self._answered.wait_for(lambda: len(self.replies) >= count), REPLY_TIMEOUT_S
                )
            except TimeoutError:
                pass  # the assertions on the replies tell what is missing
        self._sent_at = time.perf_counter()
        self.calls.append([])

    async def answered(self, text: str) -> None:
        async with self._answered:
            self.seconds.append(time.perf_counter() - self._sent_at)
            self.replies.append(text)
            self._answered.notify_all()


class TakeTurns(FrameProcessor):
    """The person: lets each turn (and the end) in only once the last turn was answered."""

    def __init__(self, talk: Talk, **kwargs):
        super().__init__(**kwargs)
        self._talk = talk
        self._sent = 0

    async def process_frame(self, frame: Frame, direction: FrameDirection):
        await super().process_frame(frame, direction)
        if direction == FrameDirection.DOWNSTREAM and isinstance(
            frame, (LLMMessagesAppendFrame, EndFrame)
        ):
            await self._talk.wait_for_replies(self._sent)
            self._sent += 1
        await self.push_frame(frame, direction)


class Replies(FrameProcessor):
    """After the assistant aggregator: each reply, once it is in the context."""

    def __init__(self, talk: Talk, **kwargs):
        super().__init__(**kwargs)
        self._talk = talk

    async def process_frame(self, frame: Frame, direction: FrameDirection):
        await super().process_frame(frame, direction)
        if direction == FrameDirection.DOWNSTREAM and isinstance(
            frame, LLMContextAssistantTurnFrame
        ):
            await self._talk.answered(frame.text)
        await self.push_frame(frame, direction)


class LeavingTheCoach(BaseObserver):
    """Sees what the coach pushes downstream, the way the tap does."""

    def __init__(self, coach: RulesCoachLLMService, talk: Talk):
        super().__init__()
        self._coach = coach
        self._talk = talk
        self._seen: set[int] = set()

    async def on_push_frame(self, data: FramePushed):
        frame = data.frame
        if data.source is not self._coach or data.direction != FrameDirection.DOWNSTREAM:
            return
        if frame.id in self._seen:
            return
        self._seen.add(frame.id)
        self._talk.left_the_coach.append(frame)
        if isinstance(frame, FunctionCallInProgressFrame) and self._talk.calls:
            self._talk.calls[-1].append((frame.function_name, dict(frame.arguments)))


@dataclass
class Session:
    """One session's context, board and coach over the test's database."""

    database: Database
    user_id: str
    context: LLMContext = field(default_factory=lambda: LLMContext(tools=quest_tools_schema()))
    board: QuestBoard = field(default_factory=QuestBoard)

    async def talk(self, turns: list[str]) -> Talk:
        session_id = uuid.uuid4()
        await self.database.sessions.create_session(session_id, self.user_id, "room", {})
        coach = RulesCoachLLMService()
        QuestTools(
            self.database.quests,
            user_id=self.user_id,
            session_id=str(session_id),
            trigger_phrase=lambda: last_user_words(self.context),
        ).register(coach)
        user, assistant = LLMContextAggregatorPair(self.context)
        talk = Talk()
        pipeline = Pipeline(
            [
                TakeTurns(talk),
                user,
                CoachTurnNote(context=self.context, board=self.board),
                coach,
                QuestBoardTracker(board=self.board),
                assistant,
                Replies(talk),
            ]
        )
        frames = [
            LLMMessagesAppendFrame([{"role": "user", "content": words}], run_llm=True)
            for words in turns
        ]
        await run_test(pipeline, frames_to_send=frames, observers=[LeavingTheCoach(coach, talk)])
        return talk


async def test_a_morning_plan_is_kept_and_coached_turn_by_turn(database: Database) -> None:
    session = Session(database, "ana")

    talk = await session.talk(
        [
            "My main quest today is to ship the onboarding flow.",
            "I'll know it's done when the new users can sign up",
            "I also need to call the bank",
            "actually the main quest is to fix the login bug",
            "who are you?",
        ]
    )
    print(f"\nseconds per turn: {[round(s, 4) for s in talk.seconds]}")

    assert len(talk.replies) == 5, talk.replies
    main_quest = next(f.quest for f in talk.left_the_coach if isinstance(f, QuestOperationFrame))
    main_id = main_quest["id"]

    # A main quest is created in the person's words; the coach asks how they will know.
    assert talk.calls[0] == [
        ("list_quests", {}),
        ("create_quest", {"title": "Ship the onboarding flow", "kind": "main", "confidence": 1.0}),
    ]
    assert "your main quest is to ship the onboarding flow" in talk.replies[0]
    assert talk.replies[0].endswith("How will you know it's done?")

    # The criteria are set on it, and acknowledged without another question.
    assert talk.calls[1] == [
        ("set_success_criteria", {"quest_id": main_id, "criteria": ["The new users can sign up"]})
    ]
    assert "done when the new users can sign up" in talk.replies[1]
    assert "?" not in talk.replies[1]

    # Another thing to do is a side quest.
    assert talk.calls[2] == [
        ("create_quest", {"title": "Call the bank", "kind": "side", "confidence": 0.85})
    ]
    assert "side quest: call the bank" in talk.replies[2]

    # A correction renames the main quest rather than adding one.
    assert talk.calls[3] == [
        ("update_quest", {"quest_id": main_id, "title": "Fix the login bug", "confidence": 1.0})
    ]
    assert "main quest is now to fix the login bug" in talk.replies[3]

    # Asked what it is, it answers honestly and touches nothing.
    assert talk.calls[4] == []
    assert "KANE's offline coach" in talk.replies[4]
    assert "not a language model" in talk.replies[4]

    # The store, the session's board and the tap all saw the same plan.
    active = await database.quests.list_active("ana")
    assert [(q.title, q.kind, q.success_criteria) for q in active] == [
        ("Fix the login bug", "main", ["The new users can sign up"]),
        ("Call the bank", "side", []),
    ]
    assert session.board.main_quest is not None
    assert session.board.main_quest["title"] == "Fix the login bug"
    operations = [f for f in talk.left_the_coach if isinstance(f, QuestOperationFrame)]
    assert [op.op for op in operations] == ["create", "set_success_criteria", "create", "update"]
    results = [f for f in talk.left_the_coach if isinstance(f, FunctionCallResultFrame)]
    assert len(results) == 5 and all(f.result["ok"] for f in results)
    history = await database.quests.history(main_id)
    assert history[-1].trigger_phrase == "actually the main quest is to fix the login bug"

    # The context holds each call, its result and every reply, as with a real model.
    messages = session.context.get_messages()
    assert sum(1 for m in messages if m.get("role") == "tool") == 5
    spoken = [m["content"] for m in messages if m.get("role") == "assistant" and m.get("content")]
    assert spoken == talk.replies
    assert sum(1 for m in messages if str(m.get("content", "")).startswith(NOTE_PREFIX)) == 1


async def test_it_works_on_the_quests_of_earlier_sessions(database: Database) -> None:
    store = database.quests
    report = await store.create("ben", "Write the quarterly report", "main")
    bank = await store.create("ben", "Call the bank", "side")
    dentist = await store.create("ben", "Book the dentist", "side")

    talk = await Session(database, "ben").talk(
        ["I finished calling the bank.", "Drop the dentist thing", "Make the report my main quest"]
    )

    assert talk.calls[0] == [("list_quests", {}), ("complete_quest", {"quest_id": bank.id})]
    assert "checked off call the bank" in talk.replies[0]
    # The report is the main quest without criteria: it asks how they will know.
    assert talk.replies[0].endswith("How will you know it's done?")
    assert talk.calls[1] == [("delete_quest", {"quest_id": dentist.id})]
    # Already the main quest: nothing to call, and it says where things stand.
    assert talk.calls[2] == []
    assert "to write the quarterly report" in talk.replies[2]
    active = await store.list_active("ben")
    assert [(q.id, q.kind) for q in active] == [(report.id, "main")]


async def test_a_quest_the_store_could_not_save_is_owned_up_to(database: Database) -> None:
    await database.pool.execute("DROP TABLE quest_history")

    session = Session(database, "cleo")
    talk = await session.talk(["My main quest is to clean the garage.", "Thanks"])

    assert [name for name, _ in talk.calls[0]] == ["list_quests", "create_quest"]
    assert "couldn't save that" in talk.replies[0]
    assert talk.replies[0].endswith("?")
    # Nothing was kept, and the next turn goes on from there.
    assert await database.quests.list_active("cleo") == []
    assert talk.replies[1] == "What's the one thing that would make today a win?"
