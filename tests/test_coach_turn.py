from pipecat.frames.frames import LLMContextFrame
from pipecat.processors.aggregators.llm_context import LLMContext
from pipecat.tests.utils import run_test

from frames.quests import QuestOperationFrame
from processors.coach_turn import NOTE_PREFIX, CoachTurnNote, coach_note
from processors.quest_board import QuestBoardTracker
from quests.board import QuestBoard


def quest(qid: str, title: str, kind: str, criteria=(), status="active", version=1) -> dict:
    return {
        "id": qid,
        "title": title,
        "kind": kind,
        "status": status,
        "success_criteria": list(criteria),
        "version": version,
    }


def test_no_main_quest_asks_for_it():
    assert "no main quest" in coach_note(QuestBoard())


def test_main_quest_without_criteria_asks_how_they_will_know():
    board = QuestBoard()
    board.load([quest("q1", "Ship onboarding", "main")])
    note = coach_note(board)
    assert "Ship onboarding" in note and "how they will know" in note


def test_main_quest_with_criteria_is_acknowledged():
    board = QuestBoard()
    board.load([quest("q1", "Ship onboarding", "main", ["it is live"])])
    assert "Acknowledge" in coach_note(board) and "it is live" in coach_note(board)


def test_board_follows_operations():
    board = QuestBoard()
    board.apply(QuestOperationFrame(op="create", quest=quest("q1", "Fix login", "main")))
    board.apply(QuestOperationFrame(op="set_main", quest=quest("q2", "Ship it", "main")))
    assert board.main_quest["id"] == "q2"
    assert board.quests["q1"]["kind"] == "side"
    board.apply(
        QuestOperationFrame(op="delete", quest=quest("q2", "Ship it", "main", status="deleted"))
    )
    assert board.main_quest is None and "q2" not in board.quests


async def test_one_coach_note_per_turn_from_the_tracked_board():
    board = QuestBoard()
    context = LLMContext(messages=[{"role": "user", "content": "morning"}])
    note = CoachTurnNote(context=context, board=board)
    await run_test(note, frames_to_send=[LLMContextFrame(context)])
    tracker = QuestBoardTracker(board=board)
    down, _ = await run_test(
        tracker,
        frames_to_send=[QuestOperationFrame(op="create", quest=quest("q1", "Ship", "main"))],
    )
    assert len(down) == 1
    await run_test(note, frames_to_send=[LLMContextFrame(context)])
    notes = [m for m in context.get_messages() if str(m.get("content", "")).startswith(NOTE_PREFIX)]
    assert len(notes) == 1 and '"Ship"' in notes[0]["content"]


async def test_an_early_answer_gets_the_note_in_its_own_copy_of_the_context():
    board = QuestBoard()
    board.load([quest("q1", "Ship onboarding", "main")])
    context = LLMContext(messages=[{"role": "user", "content": "morning"}])
    provisional = LLMContext(messages=[*context.get_messages(), {"role": "user", "content": "go"}])
    other = LLMContext(messages=[{"role": "user", "content": "not this session's"}])
    note = CoachTurnNote(context=context, board=board)
    down, _ = await run_test(
        note,
        frames_to_send=[LLMContextFrame(provisional, speculation=True), LLMContextFrame(other)],
    )
    assert [type(f) for f in down] == [LLMContextFrame, LLMContextFrame]
    notes = [m for m in provisional.get_messages() if m["content"].startswith(NOTE_PREFIX)]
    assert len(notes) == 1 and "Ship onboarding" in notes[0]["content"]
    assert context.get_messages() == [{"role": "user", "content": "morning"}]
    assert other.get_messages() == [{"role": "user", "content": "not this session's"}]


async def test_the_note_is_a_developer_message_that_replaces_the_last_one():
    context = LLMContext(
        messages=[
            {"role": "developer", "content": f"{NOTE_PREFIX} old"},
            {"role": "user", "content": "morning"},
        ]
    )
    await run_test(
        CoachTurnNote(context=context, board=QuestBoard()),
        frames_to_send=[LLMContextFrame(context)],
    )
    messages = context.get_messages()
    assert [m["role"] for m in messages] == ["user", "developer"]
    assert messages[1]["content"].startswith(NOTE_PREFIX)
