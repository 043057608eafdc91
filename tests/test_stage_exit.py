from pipecat.frames.frames import Frame, TranscriptionFrame
from pipecat.processors.filters.identity_filter import IdentityFilter
from pipecat.processors.frame_processor import FrameDirection
from pipecat.tests.utils import run_test

from frames.emotion import EmotionFrame, ToneFrame
from frames.quests import QuestDraftFrame, QuestOperationFrame
from processors.stage_exit import StageExit, stage_exit
from protocol import EmotionChanged, FinalTranscript, QuestCreated, QuestDraft
from tap.pipeline import TappedPipeline
from tests.test_mic_lane import Seen
from tests.test_tap import QUEST, CollectingJournal, CollectingPhone, make_tap


def frames_of_a_turn() -> list[Frame]:
    return [
        QuestDraftFrame(draft_id="d-1", title="Ship onboarding", kind="main", confidence=0.8),
        TranscriptionFrame("My main quest is to ship onboarding", "u", "2026-12-05T10:00:00Z"),
        EmotionFrame(label="calm", scores={"calm": 0.7}, changed=True),
        ToneFrame(instructions="warm"),
        QuestOperationFrame(op="create", quest=QUEST, trigger_phrase="ship onboarding"),
    ]


async def test_frames_only_the_tap_reads_stop_at_the_stages_end_and_still_reach_the_phone():
    journal, phone = CollectingJournal(), CollectingPhone()
    tap = make_tap(journal, phone)
    below = Seen()
    down, _ = await run_test(
        TappedPipeline([IdentityFilter(), StageExit(), below], tap=tap),
        frames_to_send=frames_of_a_turn(),
    )
    tap.flush()

    # Below the stages: the words, the tone for the voice (a system frame, it may overtake)
    # and the quest's change.
    kinds = {TranscriptionFrame, ToneFrame, QuestOperationFrame}
    assert sorted(t.__name__ for t in map(type, below.frames) if t in kinds) == sorted(
        t.__name__ for t in kinds
    )
    assert not any(isinstance(f, QuestDraftFrame | EmotionFrame) for f in below.frames + down)
    # The tap had every one of them: the record, and the phone.
    journaled = [e.kind for e in journal.events]
    for kind in ("QuestDraftFrame", "TranscriptionFrame", "EmotionFrame", "QuestOperationFrame"):
        assert kind in journaled
    told = [type(m) for m in phone.sent]
    for message in (QuestDraft, FinalTranscript, EmotionChanged, QuestCreated):
        assert message in told


async def test_upstream_frames_pass_the_exit():
    frame = QuestDraftFrame(draft_id="d-1", title="Ship onboarding")
    _, up = await run_test(
        TappedPipeline([Seen(), StageExit()]),
        frames_to_send=[frame],
        frames_to_send_direction=FrameDirection.UPSTREAM,
        expected_up_frames=[QuestDraftFrame],
    )
    assert up[0] is frame


def test_no_stages_no_exit():
    assert stage_exit([]) == []
    assert [type(p) for p in stage_exit([IdentityFilter()])] == [StageExit]
