"""The rules coach's rules on their own: from the context's messages to a tool call or a reply.

The same rules as an LLM service are in `tests/test_rules_coach.py`, and through the real
quest tools and Postgres in `tests/integration/test_rules_coach.py`.
"""

import json
from typing import Any

import pytest

from processors.quest_cues import QuestCues
from quests.coach_rules import QUEST_TOOLS, CoachRules


def rules() -> CoachRules:
    return CoachRules(QuestCues.load())


def user(words: str) -> dict[str, Any]:
    return {"role": "user", "content": words}


def quest(quest_id: str, title: str, kind: str, criteria: list[str] | None = None) -> dict:
    return {
        "id": quest_id,
        "title": title,
        "kind": kind,
        "status": "active",
        "success_criteria": criteria or [],
    }


def tool_exchange(call_id: str, name: str, arguments: dict, result: object) -> list[dict]:
    """A tool call and its result, as the assistant aggregator writes them into the context."""
    content = result if isinstance(result, str) else json.dumps(result)
    return [
        {
            "role": "assistant",
            "tool_calls": [
                {
                    "id": call_id,
                    "type": "function",
                    "function": {"name": name, "arguments": json.dumps(arguments)},
                }
            ],
        },
        {"role": "tool", "tool_call_id": call_id, "content": content},
    ]


def listing(*quests: dict) -> list[dict]:
    return tool_exchange("c1", "list_quests", {}, {"ok": True, "quests": list(quests)})


def test_it_lists_the_quests_before_it_changes_any():
    decision = rules().decide([user("I also need to call the bank.")], set(QUEST_TOOLS))
    assert decision.call == ("list_quests", {})


def test_criteria_go_to_the_quest_created_earlier_in_the_turn_by_its_new_id():
    words = "My main quest is to write the report. I'll know it's done when Maria has it."
    coach = rules()
    messages = [user(words), *listing()]
    assert coach.decide(messages, set(QUEST_TOOLS)).call == (
        "create_quest",
        {"title": "Write the report", "kind": "main", "confidence": 1.0},
    )
    report = quest("q7", "Write the report", "main")
    messages += tool_exchange("c2", "create_quest", {}, {"ok": True, "quest": report})
    assert coach.decide(messages, set(QUEST_TOOLS)).call == (
        "set_success_criteria",
        {"quest_id": "q7", "criteria": ["Maria has it"]},
    )
    done = quest("q7", "Write the report", "main", ["Maria has it"])
    messages += tool_exchange("c3", "set_success_criteria", {}, {"ok": True, "quest": done})
    decision = coach.decide(messages, set(QUEST_TOOLS))
    assert decision.call is None
    assert decision.lines == [
        "Got it, your main quest is to write the report.",
        "Great, it's done when Maria has it.",
    ]


def test_side_quests_said_in_one_breath_are_said_in_one_line():
    report = quest("r", "Write the report", "main")
    messages = [user("I also need to call the bank and book the dentist."), *listing(report)]
    bank, dentist = quest("b", "Call the bank", "side"), quest("d", "Book the dentist", "side")
    messages += tool_exchange("c2", "create_quest", {}, {"ok": True, "quest": bank})
    messages += tool_exchange("c3", "create_quest", {}, {"ok": True, "quest": dentist})
    decision = rules().decide(messages, set(QUEST_TOOLS))
    assert decision.lines == [
        "I've added side quests: call the bank and book the dentist.",
        "Your main quest is to write the report.",
        "How will you know it's done?",
    ]


def test_a_quest_two_titles_fit_as_well_is_asked_about_not_guessed():
    bank, dentist = quest("b", "Call the bank", "side"), quest("d", "Call the dentist", "side")
    coach = rules()
    vague_words = [user("Take the call off the list"), *listing(bank, dentist)]
    vague = coach.decide(vague_words, set(QUEST_TOOLS))
    assert vague.call is None
    assert vague.lines == ["I couldn't tell which quest you meant. Which one was it?"]
    named = [user("Take the bank call off the list"), *listing(bank, dentist)]
    assert coach.decide(named, set(QUEST_TOOLS)).call == ("delete_quest", {"quest_id": "b"})


@pytest.mark.parametrize(
    ("words", "criteria"),
    [
        ("I'll know it's done when the new users can sign up", ["The new users can sign up"]),
        ("Success means that, um, the report is sent to Maria.", ["The report is sent to Maria"]),
        ("It's done when I can log in, and then I need to call Bob", ["I can log in"]),
        ("Done when CI is green because it flakes", ["CI is green"]),
        ("I'll know it's done when", []),
        ("I need to call the bank", []),
    ],
)
def test_the_cues_find_how_the_person_will_know_it_is_done(words: str, criteria: list[str]):
    assert [c.text for c in QuestCues.load().find_criteria(words)] == criteria
