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
