import asyncio
import gc
import inspect
import time
import weakref
from collections import Counter
from dataclasses import dataclass
from typing import Any

from pipecat.frames.frames import (
    AggregatedTextFrame,
    BotStartedSpeakingFrame,
    BotStoppedSpeakingFrame,
    DataFrame,
    Frame,
    FunctionCallInProgressFrame,
    InputAudioRawFrame,
    InterimTranscriptionFrame,
    LLMTextFrame,
    TextFrame,
    TranscriptionFrame,
    TTSTextFrame,
    UserStartedSpeakingFrame,
    UserStoppedSpeakingFrame,
)
from pipecat.observers.base_observer import BaseObserver, FramePushed
from pipecat.processors.filters.identity_filter import IdentityFilter
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
from pipecat.tests.utils import SleepFrame, run_test

from frames.emotion import EmotionFrame
from frames.quests import QuestDraftFrame, QuestOperationFrame
from protocol import (
    BotResponse,
    BotState,
    EmotionChanged,
    FinalTranscript,
    PartialTranscript,
    QuestCreated,
    QuestDraft,
    QuestUpdated,
    SuccessCriteriaSet,
    ToolCall,
)
from tap.observer import FrameTap, FrameTapParams
from tap.pipeline import TappedPipeline

SESSION = "6f1c1f5e-8d2a-4b8e-9a57-3a2f4f0c1d11"
QUEST = {
    "id": "q-1",
    "title": "Ship onboarding",
    "kind": "main",
    "status": "active",
    "success_criteria": [],
    "version": 1,
}
AUDIO = b"\x00\x00" * 160


class CollectingJournal:
    def __init__(self):
        self.events = []

    def write(self, event):
        self.events.append(event)


class CollectingPhone:
    def __init__(self):
        self.sent = []
        self.sent_at = []

    def send(self, data):
        self.sent.append(data)
        self.sent_at.append(time.monotonic())


def spoken(text: str) -> AggregatedTextFrame:
    frame = AggregatedTextFrame(text, "sentence")
    frame.will_be_spoken = True
    return frame


def audio() -> InputAudioRawFrame:
    return InputAudioRawFrame(audio=AUDIO, sample_rate=16000, num_channels=1)


def make_tap(journal=None, phone=None) -> FrameTap:
    return FrameTap(
        session_id=SESSION, journal=journal or CollectingJournal(), phone=phone or CollectingPhone()
    )


async def tap_frames(frames, *, processors=None, observers=None):
    """Runs frames through a TappedPipeline (three hops unless told otherwise)."""
    journal, phone = CollectingJournal(), CollectingPhone()
    tap = make_tap(journal, phone)
    stages = processors or [IdentityFilter(), IdentityFilter(), IdentityFilter()]
    down, _ = await run_test(
        TappedPipeline(stages, tap=tap), frames_to_send=frames, observers=observers or []
    )
    tap.flush()  # the last batch may still be a millisecond away
    return journal.events, phone.sent, tap, down


def of_kinds(events, *kinds):
    return [e for e in events if e.kind in kinds]


async def test_every_frame_but_raw_audio_is_journaled_once_in_order():
    frames = [
        audio(),
        InterimTranscriptionFrame("my main", "ada", "t"),
        audio(),
        TranscriptionFrame("my main quest is shipping", "ada", "t"),
        LLMTextFrame("Great choice."),
    ]
    events, _, tap, down = await tap_frames(frames)
    kinds = [e.kind for e in events]
    assert "InputAudioRawFrame" not in kinds
    ours = of_kinds(events, "InterimTranscriptionFrame", "TranscriptionFrame", "LLMTextFrame")
    assert [e.kind for e in ours] == [
        "InterimTranscriptionFrame",
        "TranscriptionFrame",
        "LLMTextFrame",
    ]
    assert (
        [e.seq for e in events] == list(range(1, len(events) + 1)) == list(range(1, tap.events + 1))
    )
    final = next(e for e in events if e.kind == "TranscriptionFrame")
    assert final.payload["text"] == "my main quest is shipping"
    assert final.payload["user_id"] == "ada"
    assert final.direction == "down" and final.source.endswith("::Source")
    assert all(str(e.session_id) == SESSION for e in events)
    assert [e.mono_ns for e in events] == sorted(e.mono_ns for e in events)
    # The tap only watches: every frame still reached the end of the pipeline (audio, a
    # system frame, may overtake the others).
    assert Counter(type(f) for f in down) == Counter(type(f) for f in frames)


async def test_thousands_of_frames_each_once_in_push_order():
    # More frames than the tap keeps ids of before it forgets the gone ones.
    frames = [LLMTextFrame(f"token {n}") for n in range(3000)]
    events, _, _, down = await tap_frames(frames)
    texts = [e.payload["text"] for e in of_kinds(events, "LLMTextFrame")]
    assert texts == [f"token {n}" for n in range(3000)]
    assert len(down) == 3000


async def test_the_tap_keeps_no_frame_alive_once_it_is_journaled():
    journal = CollectingJournal()
    tap = make_tap(journal)
    frames = [LLMTextFrame(f"token {n}") for n in range(20)]
    gone = [weakref.ref(f) for f in frames]
    await run_test(TappedPipeline([IdentityFilter()], tap=tap), frames_to_send=frames)
    tap.flush()
    del frames
    gc.collect()
    assert len(of_kinds(journal.events, "LLMTextFrame")) == 20
    assert [ref() for ref in gone] == [None] * 20


class PushTwice(FrameProcessor):
    """Passes every frame on twice, the same frame object each time."""

    async def process_frame(self, frame: Frame, direction: FrameDirection):
        await super().process_frame(frame, direction)
        await self.push_frame(frame, direction)
        if isinstance(frame, TextFrame):
            await self.push_frame(frame, direction)


async def test_a_frame_pushed_again_is_journaled_once():
    events, _, _, down = await tap_frames(
        [TextFrame("once")], processors=[PushTwice(), IdentityFilter()]
    )
    assert [e.payload["text"] for e in of_kinds(events, "TextFrame")] == ["once"]
    assert [f.text for f in down if isinstance(f, TextFrame)] == ["once", "once"]


class Broadcaster(FrameProcessor):
    """Answers a TextFrame by broadcasting that the bot started speaking."""

    async def process_frame(self, frame: Frame, direction: FrameDirection):
        await super().process_frame(frame, direction)
        await self.push_frame(frame, direction)
        if isinstance(frame, TextFrame):
            await self.broadcast_frame(BotStartedSpeakingFrame)


async def test_a_broadcast_pair_is_journaled_and_sent_once():
    events, sent, _, _ = await tap_frames(
        [TextFrame("go")], processors=[IdentityFilter(), Broadcaster(), IdentityFilter()]
    )
    started = of_kinds(events, "BotStartedSpeakingFrame")
    assert [(e.direction, e.source) for e in started] == [("down", started[0].source)]
    assert started[0].source.startswith("Broadcaster")
    assert sent.count(BotState(state="speaking")) == 1


class PushAndLook(FrameProcessor):
    """Pushes each TextFrame on, then asks the tap, before anything else can run."""

    def __init__(self, tap: FrameTap, journal: CollectingJournal):
        super().__init__()
        self._tap = tap
        self._journal = journal
        self.seen_right_after: list[bool] = []

    async def process_frame(self, frame: Frame, direction: FrameDirection):
        await super().process_frame(frame, direction)
        if isinstance(frame, TextFrame):
            frame = TextFrame(f"{frame.text}, passed on")
            await self.push_frame(frame, direction)
            self._tap.flush()
            texts = [e.payload.get("text") for e in self._journal.events]
            self.seen_right_after.append(frame.text in texts)
        else:
            await self.push_frame(frame, direction)


class FirstPushes(BaseObserver):
    def __init__(self):
        super().__init__(observe_every_push=False)
        self.texts: list[str] = []

    async def on_push_frame(self, data: FramePushed):
        if isinstance(data.frame, TextFrame):
            self.texts.append(data.frame.text)


async def test_the_tap_notes_a_push_as_it_happens_and_the_workers_observers_still_see_it():
    # No task between a push and the tap: if Pipecat stops reporting pushes to the
    # observer of a processor's setup, this fails.
    journal = CollectingJournal()
    tap = make_tap(journal)
    looker = PushAndLook(tap, journal)
    others = FirstPushes()
    await run_test(
        TappedPipeline([IdentityFilter(), looker, IdentityFilter()], tap=tap),
        frames_to_send=[TextFrame("one"), TextFrame("two")],
        observers=[others],
    )
    assert looker.seen_right_after == [True, True]
    assert others.texts == ["one", "two", "one, passed on", "two, passed on"]


class Reports(BaseObserver):
    """Notes which of its reports an observer was given."""

    def __init__(self):
        super().__init__()
        self.given: list[str] = []

    def __getattribute__(self, name: str):
        if name.startswith("on_"):

            async def report(*_args):
                self.given.append(name)

            return report
        return super().__getattribute__(name)


async def test_every_report_but_a_push_goes_straight_on_to_the_workers_observer():
    # Should Pipecat add a report, a TappedPipeline's processors must still reach the worker.
    worker_observer = Reports()
    inline = make_tap().inline_observer(worker_observer)
    hooks = [n for n in dir(BaseObserver) if n.startswith("on_") and n != "on_push_frame"]
    for name in hooks:
        method = getattr(inline, name)
        await method(*[None] * len(inspect.signature(method).parameters))
    assert sorted(worker_observer.given) == sorted(hooks)
    assert "on_process_frame" in hooks and "on_pipeline_started" in hooks


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
    # The tool call goes as it is pushed, the rest with their batches, in order.
    tool_calls = [m for m in sent if isinstance(m, ToolCall)]
    assert tool_calls == [
        ToolCall(call_id="call-1", name="create_quest", arguments={"title": "Ship"})
    ]
    assert [m for m in sent if not isinstance(m, ToolCall)] == [
        PartialTranscript(text="my main"),
        FinalTranscript(text="my main quest is shipping"),
        BotState(state="thinking"),
        BotResponse(text="Great choice."),
        BotState(state="speaking"),
        BotState(state="listening"),
    ]
    assert tap.conversation.transcript == "user: my main quest is shipping\nkane: Great choice."


async def test_only_quest_cards_and_tool_calls_skip_the_wait_for_their_batch():
    journal, phone = CollectingJournal(), CollectingPhone()
    params = FrameTapParams(batch_delay_s=0.02, watch_s=0.1)
    tap = FrameTap(session_id=SESSION, journal=journal, phone=phone, params=params)
    tap.see(pushed(UserStoppedSpeakingFrame()))
    tap.see(pushed(TranscriptionFrame("my main quest is shipping", "ada", "t")))
    await asyncio.sleep(0)
    assert phone.sent == []  # the state and the transcript wait for their batch
    arguments = {"title": "Ship", "kind": "main"}
    tap.see(pushed(FunctionCallInProgressFrame("create_quest", "call-1", arguments)))
    tap.see(pushed(QuestOperationFrame(op="create", quest=QUEST)))
    # Each on its push: the tool call before the change it made.
    assert [type(m) for m in phone.sent] == [ToolCall, QuestCreated]
    tap.flush()
    assert [type(m) for m in phone.sent] == [ToolCall, QuestCreated, BotState, FinalTranscript]
    assert [e.kind for e in journal.events] == [
        "UserStoppedSpeakingFrame",
        "TranscriptionFrame",
        "FunctionCallInProgressFrame",
        "QuestOperationFrame",
    ]


def pushed(frame: Frame, direction: FrameDirection = FrameDirection.DOWNSTREAM) -> FramePushed:
    return FramePushed(IdentityFilter(), IdentityFilter(), frame, direction, 0)


async def test_the_phone_hears_within_milliseconds_without_anyone_asking():
    phone = CollectingPhone()
    tap = make_tap(phone=phone)
    pushed_at = time.monotonic()
    tap.see(pushed(QuestDraftFrame(draft_id="d-1", title="Ship it", kind="main", confidence=0.7)))
    for _ in range(100):
        if phone.sent:
            break
        await asyncio.sleep(0.001)
    assert isinstance(phone.sent[0], QuestDraft)
    assert phone.sent_at[0] - pushed_at < 0.05


async def test_a_quest_card_goes_to_the_phone_as_it_is_pushed_and_its_journaling_waits():
    journal, phone = CollectingJournal(), CollectingPhone()
    # Slow timers: nothing but the card's push may tell the phone.
    params = FrameTapParams(batch_delay_s=0.02, watch_s=0.1)
    tap = FrameTap(session_id=SESSION, journal=journal, phone=phone, params=params)
    tap.see(pushed(InterimTranscriptionFrame("my main quest is", "ada", "t")))
    assert phone.sent == []
    tap.see(pushed(QuestDraftFrame(draft_id="d-1", title="Ship it", kind="main", confidence=0.7)))
    assert [type(m) for m in phone.sent] == [QuestDraft]  # on the push itself
    assert journal.events == []  # journaled with the batch, off the frames' path
    await asyncio.sleep(0.05)
    assert [e.kind for e in journal.events] == ["InterimTranscriptionFrame", "QuestDraftFrame"]
    # The batch told the phone of the transcript, and not again of the draft.
    assert [type(m) for m in phone.sent] == [QuestDraft, PartialTranscript]


async def test_a_frame_that_leaves_reaches_the_phone_within_milliseconds():
    journal, phone = CollectingJournal(), CollectingPhone()
    # A slow watch: the frame leaving the pipeline, not the watch, must bring the batch.
    params = FrameTapParams(watch_s=0.1)
    tap = FrameTap(session_id=SESSION, journal=journal, phone=phone, params=params)
    draft = QuestDraftFrame(draft_id="d-1", title="Ship it", kind="main", confidence=0.7)
    frames = [TextFrame("a"), TextFrame("b"), SleepFrame(0.003), draft, SleepFrame(0.2)]
    await run_test(
        TappedPipeline([IdentityFilter(), IdentityFilter()], tap=tap), frames_to_send=frames
    )
    assert isinstance(phone.sent[0], QuestDraft)
    noted_ns = next(e.mono_ns for e in journal.events if e.kind == "QuestDraftFrame")
    assert phone.sent_at[0] - noted_ns / 1e9 < params.batch_delay_s + 0.03


class Swallow(FrameProcessor):
    """Keeps quest drafts to itself, as a processor that consumes a frame would."""

    async def process_frame(self, frame: Frame, direction: FrameDirection):
        await super().process_frame(frame, direction)
        if not isinstance(frame, QuestDraftFrame):
            await self.push_frame(frame, direction)


async def test_a_frame_that_never_leaves_still_reaches_the_phone_soon():
    # Frames leave the pipeline (so the tap waits for one to leave to time its batch),
    # then one stays inside and nothing leaves for a while.
    journal, phone = CollectingJournal(), CollectingPhone()
    tap = make_tap(journal, phone)
    draft = QuestDraftFrame(draft_id="d-1", title="Ship it", kind="main", confidence=0.7)
    frames = [TextFrame("a"), TextFrame("b"), SleepFrame(0.003), draft, SleepFrame(0.2)]
    await run_test(TappedPipeline([IdentityFilter(), Swallow()], tap=tap), frames_to_send=frames)
    assert isinstance(phone.sent[0], QuestDraft)
    noted_ns = next(e.mono_ns for e in journal.events if e.kind == "QuestDraftFrame")
    waited_s = phone.sent_at[0] - noted_ns / 1e9
    assert waited_s < FrameTapParams().watch_s + 0.05


async def test_non_frame_events_share_the_numbering_and_come_after_the_frames_before_them():
    journal = CollectingJournal()
    tap = make_tap(journal)
    tap.record("protocol_error", {"code": "not_json"})
    tap.see(pushed(TranscriptionFrame("hello", "ada", "t")))
    tap.see(pushed(audio()))
    tap.record("session_ended", {"reason": "bye"})
    assert [(e.seq, e.kind, e.direction) for e in journal.events] == [
        (1, "protocol_error", "none"),
        (2, "TranscriptionFrame", "down"),
        (3, "session_ended", "none"),
    ]


async def test_quest_drafts_and_operations_reach_the_phone_and_the_record():
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
        QuestOperationFrame(op="create", quest=QUEST, trigger_phrase="ship onboarding"),
        QuestOperationFrame(
            op="update",
            quest={**QUEST, "title": "Ship it", "version": 2},
            changes={"title": "Ship it"},
        ),
        QuestOperationFrame(
            op="set_success_criteria",
            quest={**QUEST, "success_criteria": ["live in the app store"], "version": 3},
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


class Unprintable:
    def __repr__(self) -> str:
        raise ValueError("no words for it")


@dataclass
class OddFrame(DataFrame):
    """A frame whose payload cannot be built."""

    thing: Any = None


async def test_bad_frames_do_not_stop_the_tap_or_the_pipeline():
    journal, phone = BrokenJournal(), CollectingPhone()
    tap = make_tap(journal, phone)
    frames = [
        LLMTextFrame("this one fails to journal"),
        OddFrame(thing=Unprintable()),
        # No quest id: the phone's message cannot be made.
        QuestOperationFrame(op="complete", quest={"title": "no id"}),
        EmotionFrame(
            label="calm", scores={"calm": float("nan")}, valence=3.0, arousal=-1.0, changed=True
        ),
        TranscriptionFrame("still heard", "ada", "t"),
    ]
    down, _ = await run_test(
        TappedPipeline([IdentityFilter(), IdentityFilter()], tap=tap), frames_to_send=frames
    )
    tap.flush()
    kinds = [e.kind for e in journal.events]
    assert "TranscriptionFrame" in kinds and "QuestOperationFrame" in kinds
    assert "LLMTextFrame" not in kinds and "OddFrame" not in kinds
    emotion = next(m for m in phone.sent if isinstance(m, EmotionChanged))
    assert emotion.valence == 1.0 and emotion.arousal == 0.0 and emotion.scores["calm"] == 0.5
    assert FinalTranscript(text="still heard") in phone.sent
    assert Counter(type(f) for f in down) == Counter(type(f) for f in frames)


async def test_as_one_of_the_workers_observers_the_tap_works_the_same():
    journal, phone = CollectingJournal(), CollectingPhone()
    tap = make_tap(journal, phone)
    frames = [audio(), TranscriptionFrame("hello there", "ada", "t"), LLMTextFrame("Hi.")]
    await run_test(IdentityFilter(), frames_to_send=frames, observers=[tap])
    tap.flush()
    ours = of_kinds(journal.events, "TranscriptionFrame", "LLMTextFrame", "InputAudioRawFrame")
    assert [e.kind for e in ours] == ["TranscriptionFrame", "LLMTextFrame"]
    assert phone.sent == [FinalTranscript(text="hello there")]
