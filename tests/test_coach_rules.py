"""The rules coach's rules on their own: from the context's messages to a tool call or a reply.

The same rules as an LLM service are in `tests/test_rules_coach.py`, and through the real
quest tools and Postgres in `tests/integration/test_rules_coach.py`.
"""

import json
from typing import Any

import pytest

from processors.quest_cues import QuestCues
from quests.coach_rules import QUEST_TOOLS, CoachRules
from quests.tools import quest_tools_schema


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


# Quests on the list, and a turn that made the report the main quest.
REPORT = quest("r", "Write the quarterly report", "main")
BANK, DENTIST = quest("b", "Call the bank", "side"), quest("d", "Book the dentist", "side")
LAST_TURN = [
    user("My main quest is to write the quarterly report."),
    *listing(),
    *tool_exchange("c2", "create_quest", {}, {"ok": True, "quest": REPORT}),
    {"role": "assistant", "content": "Got it."},
]


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


def test_every_tool_it_calls_is_offered_by_the_quest_tools_under_that_name():
    offered = {tool.name for tool in quest_tools_schema().standard_tools}
    contexts = [
        [user("Hi, I need to walk the dog.")],
        [*LAST_TURN, user("Actually the main quest is to fix the login bug.")],
        *(
            [*listing(REPORT, BANK, DENTIST), user(words)]
            for words in (
                "I also need to walk the dog.",
                "Make the bank call my main quest.",
                "I'll know it's done when Maria has it.",
                "I finished the quarterly report.",
                "Drop the dentist thing.",
            )
        ),
    ]
    coach = rules()
    calls = [coach.decide(messages, offered).call for messages in contexts]
    assert {call[0] for call in calls if call} == offered


def test_while_a_call_runs_new_words_wait_for_its_result_and_nothing_is_called_twice():
    coach = rules()
    report = quest("q7", "Write the report", "main")
    create = {"title": "Write the report", "kind": "main", "confidence": 1.0}
    messages = [
        user("My main quest is to write the report."),
        *listing(),
        *tool_exchange("c2", "create_quest", create, "IN_PROGRESS"),
        user("I also need to call the bank."),  # said while the quest was being saved
    ]
    waiting = coach.decide(messages, set(QUEST_TOOLS))
    assert waiting.call is None
    assert waiting.lines == []
    # The result lands in the call's place, and the run it brings goes on with the new words.
    messages[4]["content"] = json.dumps({"ok": True, "quest": report})
    assert coach.decide(messages, set(QUEST_TOOLS)).call == (
        "create_quest",
        {"title": "Call the bank", "kind": "side", "confidence": 0.85},
    )
    bank = quest("b", "Call the bank", "side")
    messages += tool_exchange("c3", "create_quest", {}, {"ok": True, "quest": bank})
    decision = coach.decide(messages, set(QUEST_TOOLS))
    assert decision.lines == [
        "Got it, your main quest is to write the report.",
        "I've added a side quest: call the bank.",
        "How will you know it's done?",
    ]


@pytest.mark.parametrize("made", [True, False])
def test_a_quest_cancelled_while_it_was_saved_is_looked_up_before_it_is_made_again(made: bool):
    coach = rules()
    messages = [
        user("I also need to call the bank and book the dentist."),
        *listing(REPORT),
        *tool_exchange("c2", "create_quest", {}, {"ok": True, "quest": BANK}),
        *tool_exchange(
            "c3", "create_quest", {"title": "Book the dentist", "kind": "side"}, "CANCELLED"
        ),
        user("Oh, and walk the dog."),  # the person spoke over it
    ]
    # The write may have landed all the same: it looks before it makes the quest again.
    assert coach.decide(messages, set(QUEST_TOOLS)).call == ("list_quests", {})
    now = [REPORT, BANK, DENTIST] if made else [REPORT, BANK]
    messages += tool_exchange("c4", "list_quests", {}, {"ok": True, "quests": now})
    created = []
    while (decision := coach.decide(messages, set(QUEST_TOOLS))).call:
        name, arguments = decision.call
        assert name == "create_quest"
        created.append(arguments["title"])
        new = quest(f"q{len(created)}", arguments["title"], arguments["kind"])
        messages += tool_exchange(f"c{len(messages)}", name, {}, {"ok": True, "quest": new})
    assert created == (["Walk the dog"] if made else ["Book the dentist", "Walk the dog"])
    assert decision.lines[0] == (
        "I've added side quests: call the bank, book the dentist, and walk the dog."
    )


@pytest.mark.parametrize("made", [True, False])
@pytest.mark.parametrize(
    ("context", "as_before", "as_made", "said"),
    [
        (
            [*listing(REPORT, BANK, DENTIST), user("Make the bank call my main quest.")],
            [REPORT, BANK, DENTIST],
            [{**REPORT, "kind": "side"}, {**BANK, "kind": "main"}, DENTIST],
            "Okay, your main quest is now to call the bank.",
        ),
        (
            [*listing(REPORT, BANK), user("I'll know it's done when Maria has it.")],
            [REPORT, BANK],
            [{**REPORT, "success_criteria": ["Maria has it"]}, BANK],
            "Great, it's done when Maria has it.",
        ),
        (
            [*listing(REPORT, BANK, DENTIST), user("Drop the dentist thing.")],
            [REPORT, BANK, DENTIST],
            [REPORT, BANK],
            "Okay, I've taken book the dentist off your list.",
        ),
        (
            [*LAST_TURN, user("Actually the main quest is to fix the login bug.")],
            [REPORT],
            [{**REPORT, "title": "Fix the login bug"}],
            "Okay, your main quest is now to fix the login bug.",
        ),
    ],
    ids=["set_main", "criteria", "delete", "update"],
)
def test_a_change_that_timed_out_is_made_again_only_if_the_list_does_not_show_it(
    context: list[dict], as_before: list[dict], as_made: list[dict], said: str, made: bool
):
    coach = rules()
    call = coach.decide(context, set(QUEST_TOOLS)).call
    assert call is not None
    # Pipecat cancels a call past its time and runs the model again, with no new words.
    messages = [*context, *tool_exchange("c8", *call, "CANCELLED")]
    assert coach.decide(messages, set(QUEST_TOOLS)).call == ("list_quests", {})
    now = as_made if made else as_before
    messages += tool_exchange("c9", "list_quests", {}, {"ok": True, "quests": now})
    decision = coach.decide(messages, set(QUEST_TOOLS))
    if made:
        assert decision.call is None
        assert decision.lines[0] == said
    else:
        assert decision.call == call


def test_a_quest_checked_off_as_the_person_interrupted_is_said_done_once_the_list_shows_it():
    coach = rules()
    report = quest("r", "Write the report", "main", ["Maria has it"])
    bank = quest("b", "Call the bank", "side")
    messages = [
        user("I finished calling the bank."),
        *listing(report, bank),
        *tool_exchange("c2", "complete_quest", {"quest_id": "b"}, "CANCELLED"),
        user("So yeah."),
    ]
    assert coach.decide(messages, set(QUEST_TOOLS)).call == ("list_quests", {})
    messages += tool_exchange("c3", "list_quests", {}, {"ok": True, "quests": [report]})
    decision = coach.decide(messages, set(QUEST_TOOLS))
    assert decision.call is None
    assert decision.lines == ["Nice work! I've checked off call the bank."]


def test_a_listing_cancelled_is_made_again_not_owned_up_to_as_a_failure():
    coach = rules()
    messages = [
        user("My main quest is to write the report."),
        *tool_exchange("c1", "list_quests", {}, "CANCELLED"),
        user("It's for Maria."),
    ]
    assert coach.decide(messages, set(QUEST_TOOLS)).call == ("list_quests", {})
    messages += tool_exchange("c2", "list_quests", {}, {"ok": True, "quests": []})
    assert coach.decide(messages, set(QUEST_TOOLS)).call == (
        "create_quest",
        {"title": "Write the report", "kind": "main", "confidence": 1.0},
    )
