"""The rules coach as an LLM service, without a database: what it says and what it passes on.

The conversations through the real quest tools and Postgres are in
`tests/integration/test_rules_coach.py`; the rules on their own in `tests/test_coach_rules.py`.
"""

from pipecat.frames.frames import (
    ErrorFrame,
    Frame,
    FunctionCallsStartedFrame,
    LLMContextFrame,
    LLMFullResponseEndFrame,
    LLMFullResponseStartFrame,
    LLMServiceMetadataFrame,
    LLMTextFrame,
    TextFrame,
    UserStartedSpeakingFrame,
)
from pipecat.processors.aggregators.llm_context import LLMContext, LLMSpecificMessage
from pipecat.processors.frame_processor import FrameDirection
from pipecat.services.settings import LLMSettings
from pipecat.tests.utils import run_test

from quests.tools import QuestTools, quest_tools_schema
from services.rules_coach import RulesCoachLLMService
from tests.test_coach_rules import tool_exchange


def coach_with_tools() -> RulesCoachLLMService:
    """A coach with the real quest tools registered; these tests never get to call them."""
    coach = RulesCoachLLMService()
    QuestTools(None, user_id="ana", session_id=None, trigger_phrase=lambda: None).register(coach)  # type: ignore[arg-type]
    return coach


def said(frames: list[Frame]) -> str:
    return "".join(f.text for f in frames if isinstance(f, LLMTextFrame))


async def reply_to(
    messages: list, *, coach: RulesCoachLLMService | None = None, tools: bool = False
) -> list[Frame]:
    context = LLMContext(messages=messages, tools=quest_tools_schema()) if tools else None
    context = context or LLMContext(messages=messages)
    down, _ = await run_test(
        coach or RulesCoachLLMService(), frames_to_send=[LLMContextFrame(context)]
    )
    return [f for f in down if not isinstance(f, LLMServiceMetadataFrame)]


async def test_frames_it_does_not_answer_pass_through_both_ways():
    hello, speaking = TextFrame("hello"), UserStartedSpeakingFrame()
    down, _ = await run_test(RulesCoachLLMService(), frames_to_send=[hello, speaking])
    assert hello in down and speaking in down
    assert not any(isinstance(f, (LLMTextFrame, LLMFullResponseStartFrame)) for f in down)
    back = TextFrame("back up")
    _, up = await run_test(
        RulesCoachLLMService(),
        frames_to_send=[back],
        frames_to_send_direction=FrameDirection.UPSTREAM,
    )
    assert back in up


async def test_a_context_without_words_of_the_person_gets_a_greeting_and_a_question():
    for messages in ([], [{"role": "system", "content": "You are KANE."}]):
        down = await reply_to(messages)
        assert isinstance(down[0], LLMFullResponseStartFrame)
        assert isinstance(down[-1], LLMFullResponseEndFrame)
        text = said(down)
        assert "KANE" in text
        assert "make today a win?" in text
        assert not any(isinstance(f, ErrorFrame) for f in down)


async def test_the_reply_comes_a_sentence_a_frame_with_its_spaces():
    down = await reply_to([])
    texts = [f.text for f in down if isinstance(f, LLMTextFrame)]
    assert len(texts) == 2
    assert texts[1].startswith(" ") and not texts[0].startswith(" ")


async def test_asked_what_it_is_it_says_it_is_rules_not_a_language_model():
    for question in ("Who are you?", "wait, are you a real AI?", "What are you?"):
        text = said(await reply_to([{"role": "user", "content": question}]))
        assert "KANE's offline coach" in text
        assert "not a language model" in text


async def test_what_are_you_doing_is_not_about_the_coach():
    text = said(await reply_to([{"role": "user", "content": "What are you doing today?"}]))
    assert "offline coach" not in text
    assert "make today a win?" in text


async def test_it_accepts_a_system_instruction_like_any_llm_service():
    coach = RulesCoachLLMService(settings=LLMSettings(system_instruction="You are KANE."))
    assert coach.settings.system_instruction == "You are KANE."
    text = said(await reply_to([{"role": "user", "content": "Morning!"}], coach=coach))
    assert "make today a win?" in text


async def test_a_tool_error_is_owned_up_to_and_it_asks_again():
    messages = [
        {"role": "user", "content": "I also need to call the bank."},
        *tool_exchange("c1", "list_quests", {}, {"ok": True, "quests": []}),
        *tool_exchange(
            "c2",
            "create_quest",
            {"title": "Call the bank", "kind": "side"},
            {"ok": False, "error": "internal_error", "message": "The quest could not be saved."},
        ),
    ]
    down = await reply_to(messages, coach=coach_with_tools(), tools=True)
    text = said(down)
    assert "couldn't save that" in text
    assert text.endswith("?")
    assert not any(isinstance(f, FunctionCallsStartedFrame) for f in down)


async def test_odd_messages_and_tool_results_still_get_a_sensible_reply():
    messages = [
        LLMSpecificMessage(llm="google", message={"parts": ["hi"]}),
        {"role": "user", "content": [{"type": "text", "text": "Thanks!"}]},
        *tool_exchange("c1", "list_quests", {}, "IN_PROGRESS"),  # never answered
        *tool_exchange("c2", "create_quest", {}, {"ok": True, "quest": {"title": 3}}),
        *tool_exchange("c3", "list_quests", {}, {"ok": True, "quests": "none"}),
        {"role": "tool", "tool_call_id": "nobody", "content": "{not json"},
        {"role": "assistant", "tool_calls": [{"id": "c4", "function": "broken"}]},
        {"role": "user"},
    ]
    down = await reply_to(messages, coach=coach_with_tools(), tools=True)
    assert not any(isinstance(f, (ErrorFrame, FunctionCallsStartedFrame)) for f in down)
    assert said(down) == "What's the one thing that would make today a win?"


async def test_run_while_its_call_is_running_it_answers_with_an_empty_response():
    messages = [
        {"role": "user", "content": "My main quest is to write the report."},
        *tool_exchange("c1", "list_quests", {}, {"ok": True, "quests": []}),
        *tool_exchange("c2", "create_quest", {"title": "Write the report"}, "IN_PROGRESS"),
        {"role": "user", "content": "I also need to call the bank."},
    ]
    down = await reply_to(messages, coach=coach_with_tools(), tools=True)
    assert [type(f) for f in down] == [LLMFullResponseStartFrame, LLMFullResponseEndFrame]


async def test_without_quest_tools_it_says_it_cannot_keep_them():
    text = said(
        await reply_to([{"role": "user", "content": "My main quest is to write the report."}])
    )
    assert "can't keep quests" in text
    assert not text.count("?") > 1
