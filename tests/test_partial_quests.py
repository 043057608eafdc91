"""The partial-quest detector, frame by frame through a real Pipecat pipeline."""

from pipecat.frames.frames import (
    InterimTranscriptionFrame,
    LLMTextFrame,
    TranscriptionFrame,
    UserStartedSpeakingFrame,
)
from pipecat.tests.utils import run_test

from frames.quests import QuestDraftFrame
from processors.partial_quests import PartialQuestDetector, PartialQuestParams
from processors.quest_cues import QuestCues


def interim(text: str) -> InterimTranscriptionFrame:
    return InterimTranscriptionFrame(text, "ada", "t")


def final(text: str) -> TranscriptionFrame:
    return TranscriptionFrame(text, "ada", "t")


def growing(text: str) -> list:
    words = text.split()
    return [interim(" ".join(words[:n])) for n in range(1, len(words) + 1)] + [final(text)]


async def detect(frames, params: PartialQuestParams | None = None):
    down, up = await run_test(PartialQuestDetector(params=params), frames_to_send=frames)
    return down, [f for f in down if isinstance(f, QuestDraftFrame)]


def standing(drafts: list[QuestDraftFrame]) -> list[QuestDraftFrame]:
    """The last word on each draft, for those still standing after a final."""
    last = {d.draft_id: d for d in drafts}
    return [d for d in last.values() if not d.retracted and d.from_final]


async def test_every_frame_passes_in_order_and_a_draft_follows_its_transcript():
    sent = [
        UserStartedSpeakingFrame(),
        interim("My main quest"),
        interim("My main quest is to ship the onboarding"),
        LLMTextFrame("unrelated"),
        final("My main quest is to ship the onboarding flow."),
    ]
    down, drafts = await detect(sent)
    passed = [f for f in down if not isinstance(f, QuestDraftFrame)]
    assert passed == sent
    assert [type(f).__name__ for f in down] == [
        "UserStartedSpeakingFrame",
        "InterimTranscriptionFrame",
        "InterimTranscriptionFrame",
        "QuestDraftFrame",
        "LLMTextFrame",
        "TranscriptionFrame",
        "QuestDraftFrame",
    ]
    assert drafts[0].title == "Ship the onboarding" and not drafts[0].from_final
    assert drafts[1].title == "Ship the onboarding flow" and drafts[1].from_final


async def test_a_growing_draft_keeps_its_id_and_is_not_resent_when_nothing_changed():
    _, drafts = await detect(
        [
            interim("I need to call"),
            interim("I need to call the dentist"),
            interim("I need to call the dentist,"),  # same words: nothing to send
            interim("I need to call the dentist about"),  # trailing "about" drops
            final("I need to call the dentist about my tooth."),
        ]
    )
    assert [d.title for d in drafts] == ["Call the dentist", "Call the dentist about my tooth"]
    assert len({d.draft_id for d in drafts}) == 1
    assert all(d.kind == "side" and 0.0 < d.confidence <= 1.0 for d in drafts)
    assert drafts[-1].from_final and drafts[-1].source_words.startswith("I need to")


async def test_fillers_are_left_out_of_the_title():
    _, drafts = await detect(growing("So, like, I need to, um, finish the, uh, budget review and"))
    assert standing(drafts)[0].title == "Finish the budget review"


async def test_correction_retracts_the_main_draft_and_the_replacement_takes_its_place():
    _, drafts = await detect(
        growing(
            "My main quest today is to ship the onboarding flow, actually, first fix the login bug."
        )
    )
    onboarding = [d for d in drafts if "onboarding" in d.title.lower()]
    assert onboarding[0].kind == "main" and not onboarding[0].retracted
    assert onboarding[-1].retracted
    kept = standing(drafts)
    assert [(d.title, d.kind) for d in kept] == [("Fix the login bug", "main")]


async def test_correction_in_the_next_segment_retracts_the_closed_draft():
    frames = growing("I need to order new running shoes.") + growing("Scratch that.")
    _, drafts = await detect(frames)
    shoes = [d for d in drafts if "shoes" in d.title]
    assert shoes[-1].retracted and len({d.draft_id for d in shoes}) == 1
    assert standing(drafts) == []


async def test_quests_not_for_today_are_ignored():
    for said in (
        "Tomorrow I need to pick up my sister from the airport.",
        "Last week I had to rewrite the whole billing module.",
        "Next week I want to start training for the half marathon.",
    ):
        _, drafts = await detect(growing(said))
        assert drafts == [], said


async def test_a_quest_put_off_to_tomorrow_at_its_end_is_retracted():
    _, drafts = await detect(growing("I need to call the bank tomorrow."))
    assert drafts and drafts[-1].retracted
    assert standing(drafts) == []


async def test_two_quests_in_one_breath_get_two_drafts():
    _, drafts = await detect(
        growing(
            "My main quest is to write the grant proposal, and then I need to call the dentist."
        )
    )
    kept = standing(drafts)
    assert [(d.title, d.kind) for d in kept] == [
        ("Write the grant proposal", "main"),
        ("Call the dentist", "side"),
    ]
    assert kept[0].draft_id != kept[1].draft_id


async def test_success_wording_creates_no_quest():
    # Choice: success criteria draft nothing (the LLM sets them through its quest tools);
    # they end the quest's title and only add confidence to the quest they follow.
    _, drafts = await detect(growing("I'll know it's done when the PR is merged and deployed."))
    assert drafts == []
    _, drafts = await detect(
        growing("I have to fix the flaky checkout test, and it's done when CI is green.")
    )
    assert [d.title for d in standing(drafts)] == ["Fix the flaky checkout test"]


async def test_main_quest_known_from_an_earlier_turn_makes_today_i_want_a_side_quest():
    frames = growing("My main quest is the hiring plan.") + growing(
        "Today I want to also schedule the team offsite."
    )
    _, drafts = await detect(frames)
    assert [(d.title, d.kind) for d in standing(drafts)] == [
        ("The hiring plan", "main"),
        ("Schedule the team offsite", "side"),
    ]


async def test_small_talk_drafts_nothing():
    _, drafts = await detect(growing("Good morning! I have to say, I slept pretty well."))
    assert drafts == []


async def test_low_confidence_drafts_wait_for_a_higher_threshold():
    params = PartialQuestParams(min_confidence=0.9)
    _, drafts = await detect(growing("I should call the insurance company."), params)
    assert drafts == []


def test_rules_file_compiles_and_reads_a_sentence_fast():
    import time

    cues = QuestCues.load()
    text = "Okay so today, my main quest is to finish the migration script, and then I need to"
    t0 = time.perf_counter()
    for _ in range(200):
        cues.find_quests(text)
    per_call_ms = (time.perf_counter() - t0) / 200 * 1000
    assert per_call_ms < 5, per_call_ms  # generous: the bench holds the real target
