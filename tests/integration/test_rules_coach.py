"""Conversations with the rules coach through the real quest tools and a real PostgreSQL.

The pipeline is the bot's from the user aggregator to the assistant aggregator: the coach
note, the rules coach with `QuestTools` registered, the quest board tracker. The person's
turns go in one at a time, each once the coach has answered the one before; an observer sees
what leaves the coach, as the tap does. Where the person speaks or interrupts while a quest is
being saved, another database client holds the writes to the quests until the test lets go.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import asyncpg
from pipecat.frames.frames import (
    EndFrame,
    Frame,
    FunctionCallInProgressFrame,
    FunctionCallResultFrame,
    InterruptionFrame,
    LLMContextAssistantTurnFrame,
    LLMFullResponseEndFrame,
    LLMMessagesAppendFrame,
    LLMTextFrame,
)
from pipecat.observers.base_observer import BaseObserver, FramePushed
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.worker import PipelineWorker
from pipecat.processors.aggregators.llm_context import LLMContext
from pipecat.processors.aggregators.llm_response_universal import LLMContextAggregatorPair
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
from pipecat.tests.utils import run_test
from pipecat.workers.runner import WorkerRunner

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
        """Each turn in once the one before was answered."""
        talk = Talk()
        pipeline, coach = await self.pipeline(talk, TakeTurns(talk))
        frames = [words(turn) for turn in turns]
        await run_test(pipeline, frames_to_send=frames, observers=[LeavingTheCoach(coach, talk)])
        return talk

    async def drive(self, person: Callable[[PipelineWorker, Talk], Awaitable[None]]) -> Talk:
        """The person's frames go in as `person` sends them, the coach working meanwhile."""
        talk = Talk(calls=[[]])
        pipeline, coach = await self.pipeline(talk)
        worker = PipelineWorker(
            pipeline, cancel_on_idle_timeout=False, observers=[LeavingTheCoach(coach, talk)]
        )
        started = asyncio.Event()

        @worker.event_handler("on_pipeline_started")
        async def on_pipeline_started(worker, frame):
            started.set()

        async def send() -> None:
            await asyncio.wait_for(started.wait(), REPLY_TIMEOUT_S)
            try:
                await person(worker, talk)
            finally:
                await worker.queue_frame(EndFrame())

        runner = WorkerRunner()
        await runner.add_workers(worker)
        await asyncio.gather(runner.run(), send())
        return talk

    async def pipeline(
        self, talk: Talk, *first: FrameProcessor
    ) -> tuple[Pipeline, RulesCoachLLMService]:
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
        processors = [
            *first,
            user,
            CoachTurnNote(context=self.context, board=self.board),
            coach,
            QuestBoardTracker(board=self.board),
            assistant,
            Replies(talk),
        ]
        return Pipeline(processors), coach

    def result_of(self, tool: str) -> list[object]:
        """What each call of `tool` in the context answered, as the context holds it."""
        messages = self.context.get_messages()
        ids = {
            call["id"]
            for m in messages
            if m.get("role") == "assistant"
            for call in m.get("tool_calls") or []
            if call["function"]["name"] == tool
        }
        return [m["content"] for m in messages if m.get("tool_call_id") in ids]


def words(text: str) -> LLMMessagesAppendFrame:
    """What the person said, as the user aggregator gets it."""
    return LLMMessagesAppendFrame([{"role": "user", "content": text}], run_llm=True)


async def eventually(condition: Callable[[], object], what: str) -> None:
    """Waits until `condition` holds."""
    deadline = time.perf_counter() + REPLY_TIMEOUT_S
    while not condition():
        assert time.perf_counter() < deadline, f"never: {what}"
        await asyncio.sleep(0.005)


@asynccontextmanager
async def writes_held(database_dsn: str) -> AsyncIterator[Callable[[], Awaitable[None]]]:
    """Another client holds every write to the quests until it lets go; yields the letting go."""
    other = await asyncpg.connect(database_dsn)
    lock = other.transaction()
    await lock.start()
    await other.execute("LOCK TABLE quests IN EXCLUSIVE MODE")  # reads still go through
    try:
        yield lock.rollback
    finally:
        await other.close()  # lets go, if the test did not


def responses(talk: Talk) -> int:
    """How many responses the coach finished."""
    return sum(1 for f in talk.left_the_coach if isinstance(f, LLMFullResponseEndFrame))


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


async def test_words_said_while_a_quest_is_saved_wait_for_it(
    database: Database, database_dsn: str
) -> None:
    session = Session(database, "dora")

    async def person(worker: PipelineWorker, talk: Talk) -> None:
        async with writes_held(database_dsn) as let_go:
            await worker.queue_frame(words("My main quest is to clean the garage."))
            await eventually(
                lambda: session.result_of("create_quest") == ["IN_PROGRESS"], "a quest saved"
            )
            await worker.queue_frame(words("I also need to call the bank."))
            await eventually(lambda: responses(talk) == 3, "an answer to the new words")
            # Nothing said, nothing called while the garage is being saved.
            assert not any(isinstance(f, LLMTextFrame) for f in talk.left_the_coach)
            assert [name for name, _ in talk.calls[0]] == ["list_quests", "create_quest"]
            await let_go()
        await eventually(lambda: talk.replies, "a reply")

    talk = await session.drive(person)

    assert talk.calls[0] == [
        ("list_quests", {}),
        ("create_quest", {"title": "Clean the garage", "kind": "main", "confidence": 1.0}),
        ("create_quest", {"title": "Call the bank", "kind": "side", "confidence": 0.85}),
    ]
    assert talk.replies == [
        "Got it, your main quest is to clean the garage. I've added a side quest: call the "
        "bank. How will you know it's done?"
    ]
    active = await database.quests.list_active("dora")
    assert [(q.title, q.kind) for q in active] == [
        ("Clean the garage", "main"),
        ("Call the bank", "side"),
    ]


async def test_a_quest_saved_as_the_person_interrupts_is_kept_once(
    database: Database, database_dsn: str
) -> None:
    session = Session(database, "eli")

    async def person(worker: PipelineWorker, talk: Talk) -> None:
        async with writes_held(database_dsn) as let_go:
            await worker.queue_frame(words("I need to call the bank."))
            await eventually(
                lambda: session.result_of("create_quest") == ["IN_PROGRESS"], "a quest saved"
            )
            await worker.queue_frame(InterruptionFrame())
            await eventually(
                lambda: session.result_of("create_quest") == ["CANCELLED"], "the call cancelled"
            )
            await let_go()
        # The quest tools finish a write they started: the quest is saved all the same.
        await eventually(
            lambda: any(isinstance(f, QuestOperationFrame) for f in talk.left_the_coach),
            "the quest saved",
        )
        await worker.queue_frame(words("I also need to book the dentist."))
        await eventually(lambda: talk.replies, "a reply")

    talk = await session.drive(person)

    # It looks before it makes the quest again, and finds it made.
    assert talk.calls[0] == [
        ("list_quests", {}),
        ("create_quest", {"title": "Call the bank", "kind": "side", "confidence": 0.85}),
        ("list_quests", {}),
        ("create_quest", {"title": "Book the dentist", "kind": "side", "confidence": 0.85}),
    ]
    assert talk.replies[0].startswith("I've added side quests: call the bank and book the dentist.")
    active = await database.quests.list_active("eli")
    assert [q.title for q in active] == ["Call the bank", "Book the dentist"]
