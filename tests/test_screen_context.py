import asyncio
import time

from pipecat.frames.frames import LLMContextFrame
from pipecat.pipeline.pipeline import Pipeline
from pipecat.processors.aggregators.llm_context import LLMContext
from pipecat.processors.frame_processor import FrameProcessor
from pipecat.tests.utils import SleepFrame, run_test

from frames.ui import UiStateFrame
from processors.screen_context import NOTE_PREFIX, ScreenContextInjector, ScreenContextParams

NOW = 1_800_000_000.0


def notes(context: LLMContext) -> list[dict]:
    return [m for m in context.get_messages() if str(m.get("content", "")).startswith(NOTE_PREFIX)]


async def titles(quest_id: str) -> str | None:
    return {"q-1": "Ship onboarding", "q-2": "Fix the login bug"}.get(quest_id)


def state(selected: str | None, *, age_s: float = 0.0, screen: str = "today") -> UiStateFrame:
    return UiStateFrame(
        current_screen=screen,
        selected_quest=selected,
        visible_quest_ids=["q-1", "q-2"],
        received_at=NOW - age_s,
    )


def injector(context: LLMContext, **params) -> ScreenContextInjector:
    return ScreenContextInjector(
        context=context,
        quest_title=titles,
        params=ScreenContextParams(**params),
        clock=lambda: NOW,
    )


async def test_the_quest_in_view_is_noted_before_the_persons_words():
    context = LLMContext(messages=[{"role": "user", "content": "make this one the main quest"}])
    down, _ = await run_test(
        injector(context), frames_to_send=[state("q-1"), SleepFrame(0.05), LLMContextFrame(context)]
    )
    assert [type(f) for f in down] == [UiStateFrame, LLMContextFrame]
    messages = context.get_messages()
    assert messages[0]["role"] == "developer"
    assert "quest 'Ship onboarding' (id q-1)" in messages[0]["content"]
    assert messages[1]["role"] == "user"


async def test_a_new_state_replaces_the_note_instead_of_piling_up():
    context = LLMContext(messages=[{"role": "user", "content": "this one"}])
    frames = [
        state("q-1"),
        SleepFrame(0.05),
        LLMContextFrame(context),
        state("q-2"),
        SleepFrame(0.05),
        LLMContextFrame(context),
    ]
    await run_test(injector(context), frames_to_send=frames)
    assert len(notes(context)) == 1
    assert "Fix the login bug" in notes(context)[0]["content"]


async def test_old_states_are_marked_stale_then_dropped():
    context = LLMContext(messages=[{"role": "user", "content": "hi"}])
    await run_test(
        injector(context, stale_after_s=60, drop_after_s=600),
        frames_to_send=[state("q-1", age_s=300), LLMContextFrame(context)],
    )
    assert "may be stale" in notes(context)[0]["content"]
    await run_test(
        injector(context, stale_after_s=60, drop_after_s=600),
        frames_to_send=[state("q-1", age_s=900), LLMContextFrame(context)],
    )
    assert notes(context) == []


async def test_without_a_screen_state_the_context_is_left_alone():
    context = LLMContext(messages=[{"role": "user", "content": "hello"}])
    await run_test(injector(context), frames_to_send=[LLMContextFrame(context)])
    assert context.get_messages() == [{"role": "user", "content": "hello"}]


async def test_an_early_answer_gets_the_note_in_its_own_copy_of_the_context():
    context = LLMContext(messages=[{"role": "user", "content": "earlier words"}])
    provisional = LLMContext(
        messages=[*context.get_messages(), {"role": "user", "content": "make this one main"}]
    )
    await run_test(
        injector(context),
        frames_to_send=[state("q-1"), LLMContextFrame(provisional, speculation=True)],
    )
    assert len(notes(provisional)) == 1
    assert provisional.get_messages()[-1] == {"role": "user", "content": "make this one main"}
    assert notes(context) == []


class Seen(FrameProcessor):
    """Notes when frames arrive, and the screen note each turn's context carried."""

    def __init__(self):
        super().__init__()
        self.at: dict[type, float] = {}
        self.notes: list[str] = []

    async def process_frame(self, frame, direction):
        await super().process_frame(frame, direction)
        self.at.setdefault(type(frame), time.monotonic())
        if isinstance(frame, LLMContextFrame):
            self.notes += [m["content"] for m in notes(frame.context)]
        await self.push_frame(frame, direction)


async def test_a_slow_database_never_holds_up_the_turn():
    async def slow_titles(quest_id: str) -> str | None:
        await asyncio.sleep(0.2)
        return "Ship onboarding"

    context = LLMContext(messages=[{"role": "user", "content": "this one"}])
    slow = ScreenContextInjector(
        context=context, quest_title=slow_titles, params=ScreenContextParams(), clock=lambda: NOW
    )
    seen = Seen()
    await run_test(
        Pipeline([slow, seen]),
        frames_to_send=[
            state("q-1"),
            LLMContextFrame(context),
            SleepFrame(0.3),
            LLMContextFrame(context),
        ],
    )
    # The turn went on at once, naming the quest by its id; the next turn has its title.
    assert seen.at[LLMContextFrame] - seen.at[UiStateFrame] < 0.1
    assert "looking at quest (id q-1)" in seen.notes[0]
    assert "looking at quest 'Ship onboarding' (id q-1)" in seen.notes[1]
