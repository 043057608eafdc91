from pipecat.frames.frames import (
    AggregatedTextFrame,
    BotStartedSpeakingFrame,
    BotStoppedSpeakingFrame,
    FunctionCallInProgressFrame,
    InputAudioRawFrame,
    InterimTranscriptionFrame,
    LLMTextFrame,
    TranscriptionFrame,
    TTSTextFrame,
    UserStartedSpeakingFrame,
    UserStoppedSpeakingFrame,
)
from pipecat.processors.filters.identity_filter import IdentityFilter
from pipecat.tests.utils import run_test

from protocol import BotResponse, BotState, FinalTranscript, PartialTranscript, ToolCall
from tap.observer import FrameTap

SESSION = "6f1c1f5e-8d2a-4b8e-9a57-3a2f4f0c1d11"


class CollectingJournal:
    def __init__(self):
        self.events = []

    def write(self, event):
        self.events.append(event)


class CollectingPhone:
    def __init__(self):
        self.sent = []

    def send(self, data):
        self.sent.append(data)


def spoken(text: str) -> AggregatedTextFrame:
    frame = AggregatedTextFrame(text, "sentence")
    frame.will_be_spoken = True
    return frame


async def tap_frames(frames):
    journal, phone = CollectingJournal(), CollectingPhone()
    tap = FrameTap(session_id=SESSION, journal=journal, phone=phone)
    down, _ = await run_test(IdentityFilter(), frames_to_send=frames, observers=[tap])
    return journal.events, phone.sent, tap, down


async def test_every_frame_but_raw_audio_is_journaled_once_in_order():
    frames = [
        InputAudioRawFrame(audio=b"\x00\x00" * 160, sample_rate=16000, num_channels=1),
        InterimTranscriptionFrame("my main", "ada", "t"),
        TranscriptionFrame("my main quest is shipping", "ada", "t"),
        LLMTextFrame("Great choice."),
    ]
    events, _, tap, down = await tap_frames(frames)
    kinds = [e.kind for e in events]
    assert "InputAudioRawFrame" not in kinds
    ours = [
        k for k in kinds if k in {"InterimTranscriptionFrame", "TranscriptionFrame", "LLMTextFrame"}
    ]
    assert ours == ["InterimTranscriptionFrame", "TranscriptionFrame", "LLMTextFrame"]
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert len({e.seq for e in events}) == len(events)
    final = next(e for e in events if e.kind == "TranscriptionFrame")
    assert final.payload["text"] == "my main quest is shipping"
    assert final.payload["user_id"] == "ada"
    assert all(str(e.session_id) == SESSION for e in events)
    # The tap only watches: every frame still reached the end of the pipeline.
    assert [type(f) for f in down] == [type(f) for f in frames]


async def test_the_phone_hears_transcripts_responses_tool_calls_and_state_changes():
    frames = [
        UserStartedSpeakingFrame(),
        InterimTranscriptionFrame("my main", "ada", "t"),
        TranscriptionFrame("my main quest is shipping", "ada", "t"),
        UserStoppedSpeakingFrame(),
        FunctionCallInProgressFrame(
            function_name="create_quest", tool_call_id="call-1", arguments={"title": "Ship"}
        ),
        spoken("Great choice."),
        BotStartedSpeakingFrame(),
        TTSTextFrame("Great choice.", "sentence"),
        BotStoppedSpeakingFrame(),
    ]
    _, sent, tap, _ = await tap_frames(frames)
    assert sent == [
        PartialTranscript(text="my main"),
        FinalTranscript(text="my main quest is shipping"),
        BotState(state="thinking"),
        ToolCall(call_id="call-1", name="create_quest", arguments={"title": "Ship"}),
        BotResponse(text="Great choice."),
        BotState(state="speaking"),
        BotState(state="listening"),
    ]
    assert tap.conversation.transcript == "user: my main quest is shipping\nkane: Great choice."


async def test_non_frame_events_share_the_numbering():
    journal, phone = CollectingJournal(), CollectingPhone()
    tap = FrameTap(session_id=SESSION, journal=journal, phone=phone)
    tap.record("protocol_error", {"code": "not_json"})
    tap.record("session_ended", {"reason": "bye"})
    assert [(e.seq, e.kind, e.direction) for e in journal.events] == [
        (1, "protocol_error", "none"),
        (2, "session_ended", "none"),
    ]


async def test_quest_drafts_and_operations_reach_the_phone_and_the_record():
    from frames.quests import QuestDraftFrame, QuestOperationFrame
    from protocol import QuestCreated, QuestDraft, QuestUpdated, SuccessCriteriaSet

    quest = {
        "id": "q-1",
        "title": "Ship onboarding",
        "kind": "main",
        "status": "active",
        "success_criteria": [],
        "version": 1,
    }
    frames = [
        QuestDraftFrame(
            draft_id="d-1",
            title="Ship onboarding",
            kind="main",
            confidence=0.8,
            source_words="my main quest is to ship onboarding",
        ),
        QuestDraftFrame(
            draft_id="d-1",
            title="Ship onboarding",
            kind="main",
            confidence=0.8,
            source_words="scratch that",
            retracted=True,
        ),
        QuestOperationFrame(op="create", quest=quest, trigger_phrase="ship onboarding"),
        QuestOperationFrame(
            op="update",
            quest={**quest, "title": "Ship it", "version": 2},
            changes={"title": "Ship it"},
        ),
        QuestOperationFrame(
            op="set_success_criteria",
            quest={**quest, "success_criteria": ["live in the app store"], "version": 3},
            changes={"success_criteria": ["live in the app store"]},
        ),
    ]
    _, sent, tap, _ = await tap_frames(frames)
    assert isinstance(sent[0], QuestDraft) and sent[0].confidence == 0.8
    assert sent[1].retracted is True
    assert isinstance(sent[2], QuestCreated) and sent[2].quest.title == "Ship onboarding"
    assert sent[3] == QuestUpdated(quest_id="q-1", changes={"title": "Ship it"}, version=2)
    assert sent[4] == SuccessCriteriaSet(quest_id="q-1", criteria=["live in the app store"])
    log = tap.conversation
    assert (log.quests_created, log.quest_refinements, log.correction_count) == (1, 2, 1)
    assert log.main_quest_identified and log.success_criteria_defined


class BrokenJournal(CollectingJournal):
    def write(self, event):
        if event.kind == "LLMTextFrame":
            raise RuntimeError("journal closed")
        super().write(event)


async def test_one_bad_frame_does_not_stop_the_tap():
    from frames.emotion import EmotionFrame
    from protocol import EmotionChanged

    journal, phone = BrokenJournal(), CollectingPhone()
    tap = FrameTap(session_id=SESSION, journal=journal, phone=phone)
    frames = [
        LLMTextFrame("this one fails to journal"),
        EmotionFrame(
            label="calm", scores={"calm": float("nan")}, valence=3.0, arousal=-1.0, changed=True
        ),
        TranscriptionFrame("still heard", "ada", "t"),
    ]
    await run_test(IdentityFilter(), frames_to_send=frames, observers=[tap])
    assert "TranscriptionFrame" in [e.kind for e in journal.events]
    emotion = next(m for m in phone.sent if isinstance(m, EmotionChanged))
    assert emotion.valence == 1.0 and emotion.arousal == 0.0 and emotion.scores["calm"] == 0.5
    assert FinalTranscript(text="still heard") in phone.sent
