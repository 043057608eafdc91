"""The emotion stage: how the person sounds each turn, and a voice that answers to it."""

from __future__ import annotations

import asyncio
import time

from loguru import logger
from pipecat.frames.frames import (
    CancelFrame,
    EndFrame,
    Frame,
    InputAudioRawFrame,
    TranscriptionFrame,
    UserStartedSpeakingFrame,
    UserStoppedSpeakingFrame,
)
from pipecat.processors.aggregators.llm_context import LLMContext
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
from pydantic import BaseModel, ConfigDict, Field

from emotion.analyzer import AnalyzerFailed, EmotionAnalyzer, EmotionEstimate, TurnAudio
from emotion.delivery import context_note, tone_for
from frames.emotion import EmotionFrame
from processors.notes import note_message, without_notes
from tap.payloads import transcript_confidence

NOTE_PREFIX = "[emotion]"


class EmotionParams(BaseModel):
    """When the stage speaks up.

    Parameters:
        change_threshold: A score that moves this much counts as a change.
        within_turn_every_s: A long turn is also analysed every this many seconds.
        pre_roll_s: Audio kept from before the turn was detected (speech starts earlier).
        max_turn_s: Longest stretch of audio kept for one analysis.
        timeout_s: An analysis taking longer is abandoned (logged, nothing sent).
        after_turn_s: A turn's estimate starts this long after the turn ends. The turn's
            LLM request goes out in those milliseconds, and an estimate running beside it
            (a few ms of CPU in a thread, holding the GIL in moments) delayed it by ~1.3 ms
            at 8 sessions (measured); the estimate's tone is wanted when the answer is
            spoken, ~0.6 s later, and its note by the next turn.
    """

    model_config = ConfigDict(extra="forbid")

    change_threshold: float = Field(default=0.25, gt=0.0, le=1.0)
    within_turn_every_s: float = Field(default=10.0, gt=0.0)
    pre_roll_s: float = Field(default=0.5, ge=0.0)
    max_turn_s: float = Field(default=30.0, gt=0.0)
    timeout_s: float = Field(default=5.0, gt=0.0)
    after_turn_s: float = Field(default=0.05, ge=0.0, le=0.5)


class EmotionStage(FrameProcessor):
    """Estimates how the person feels, turn by turn, off the pipeline's path.

    The person's audio and words of a turn are collected as they pass (every frame goes on
    at once); when the turn ends the first working analyzer estimates it on a task of its
    own, so a slow or failing analyzer costs the conversation no latency. Each estimate
    becomes an `EmotionFrame`; when the feeling changes, the stage also sends a `ToneFrame`
    for the voice and refreshes a one-line note in the LLM's context. An analyzer that fails
    is dropped for the rest of the session (an error frame records why) and the next one,
    the local analyzer, takes over.
    """

    def __init__(
        self,
        *,
        analyzers: list[EmotionAnalyzer],
        context: LLMContext | None = None,
        params: EmotionParams | None = None,
        **kwargs,
    ):
        """Create the stage.

        Args:
            analyzers: In order of preference; the last should never fail (the local one).
            context: The LLM context that gets the "[emotion]" note; None for no note.
            params: Thresholds and timing.
            **kwargs: Passed on to `FrameProcessor`.
        """
        # Direct mode: frames are handled in the task that pushes them, without a queue and
        # a task switch of our own per frame; nothing here waits on the frames' path.
        kwargs.setdefault("enable_direct_mode", True)
        super().__init__(**kwargs)
        if not analyzers:
            raise ValueError("EmotionStage needs at least one analyzer")
        self._analyzers = list(analyzers)
        self._context = context
        self._params = params or EmotionParams()
        self._audio = bytearray()
        self._rate = 16000
        self._texts: list[str] = []
        self._confidences: list[float] = []
        self._in_turn = False
        self._turn_started = 0.0
        self._last_analysis = 0.0
        self._last: EmotionEstimate | None = None
        self._started = False
        self._pending: set[asyncio.Task] = set()

    @property
    def analyzer(self) -> EmotionAnalyzer:
        """The analyzer in use."""
        return self._analyzers[0]

    async def process_frame(self, frame: Frame, direction: FrameDirection):
        """Collect the turn's audio and words; analyse when it ends; pass every frame on."""
        await super().process_frame(frame, direction)
        if isinstance(frame, InputAudioRawFrame):
            self.hear(frame)  # behind a `MicLane` the audio comes by `hear` instead
        elif isinstance(frame, TranscriptionFrame):
            self._texts.append(frame.text)
            confidence = transcript_confidence(frame)
            if confidence is not None:
                self._confidences.append(confidence)
        elif isinstance(frame, UserStartedSpeakingFrame) and not self._in_turn:
            self._start_turn()
        elif isinstance(frame, UserStoppedSpeakingFrame) and self._in_turn:
            self._in_turn = False
            self._analyze(within_turn=False)
        elif isinstance(frame, EndFrame):
            # The last turn's feeling is still worth keeping: let its estimate land first.
            if self._pending:
                await asyncio.wait(list(self._pending), timeout=self._params.timeout_s)
            await self._close_analyzers()
        elif isinstance(frame, CancelFrame):
            await self._close_analyzers()
        await self.push_frame(frame, direction)

    def _start_turn(self) -> None:
        self._in_turn = True
        self._turn_started = self._last_analysis = time.monotonic()
        # Keep the pre-roll: the turn was detected after the person started speaking.
        keep = int(self._params.pre_roll_s * self._rate) * 2
        del self._audio[: max(len(self._audio) - keep, 0)]
        self._texts, self._confidences = [], []

    def hear(self, frame: InputAudioRawFrame) -> None:
        """Take a frame of the person's audio (from `process_frame`, or from a `MicLane`)."""
        if not self._started:
            self._started = True
            self.create_task(self._start_analyzers(), "emotion-start")
        self._rate = frame.sample_rate
        try:
            self.analyzer.feed(frame.audio, frame.sample_rate)
        except Exception as e:  # feed must never cost the pipeline
            logger.warning(f"{self}: {self.analyzer.name} could not take audio: {e}")
        self._audio.extend(frame.audio)
        # Between turns only the pre-roll is worth keeping. Trimming when the buffer is twice
        # what is kept moves memory once in a while, not on every 20 ms frame.
        keep_s = self._params.max_turn_s if self._in_turn else self._params.pre_roll_s
        keep = int(keep_s * self._rate) * 2
        if len(self._audio) > 2 * keep:
            del self._audio[: len(self._audio) - keep]
        if (
            self._in_turn
            and time.monotonic() - self._last_analysis >= self._params.within_turn_every_s
        ):
            self._analyze(within_turn=True)

    def _analyze(self, *, within_turn: bool) -> None:
        now = time.monotonic()
        self._last_analysis = now
        confidence = sum(self._confidences) / len(self._confidences) if self._confidences else None
        turn = TurnAudio(
            pcm=bytes(self._audio),
            sample_rate=self._rate,
            text=" ".join(self._texts).strip(),
            stt_confidence=confidence,
            started_at=self._turn_started,
            ended_at=now,
        )
        if not within_turn:
            self._audio.clear()
        task = self.create_task(self._estimate(turn, within_turn), "emotion-estimate")
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _start_analyzers(self) -> None:
        analyzer = self.analyzer
        try:
            await analyzer.start()
        except Exception as e:
            await self._drop_analyzer(analyzer, e)

    async def _estimate(self, turn: TurnAudio, within_turn: bool) -> None:
        if not within_turn and self._params.after_turn_s:
            await asyncio.sleep(self._params.after_turn_s)
        while self._analyzers:
            analyzer = self.analyzer
            try:
                estimate = await asyncio.wait_for(
                    analyzer.analyze_turn(turn), self._params.timeout_s
                )
            except TimeoutError:
                logger.warning(f"{self}: {analyzer.name} took too long; turn not estimated")
                return
            except Exception as e:  # AnalyzerFailed, or a bug in an analyzer
                if analyzer is self.analyzer and len(self._analyzers) == 1:
                    await self.push_error(f"emotion analysis failed: {e}")
                    return
                await self._drop_analyzer(analyzer, e)
                continue
            await self._announce(estimate, within_turn)
            return

    async def _drop_analyzer(self, failed: EmotionAnalyzer, error: Exception) -> None:
        if not self._analyzers or self._analyzers[0] is not failed or len(self._analyzers) == 1:
            return  # already dropped by another task, or the last one left
        self._analyzers.pop(0)
        kind = "failed" if isinstance(error, AnalyzerFailed) else "broke"
        fallback = self.analyzer.name
        # An error frame (not fatal, the stage stays usable) journals why.
        await self.push_error(
            f"emotion analyzer '{failed.name}' {kind}: {error}; using '{fallback}' from now on"
        )
        try:
            await failed.close()
        except Exception as e:
            logger.debug(f"{self}: closing {failed.name}: {e}")
        await self._start_analyzers()

    async def _announce(self, estimate: EmotionEstimate, within_turn: bool) -> None:
        changed = self._changed(estimate)
        self._last = estimate
        await self.push_frame(
            EmotionFrame(
                label=estimate.label,
                scores=dict(estimate.scores),
                valence=estimate.valence,
                arousal=estimate.arousal,
                source=estimate.source,
                features=dict(estimate.features),
                changed=changed,
                within_turn=within_turn,
            )
        )
        if changed:
            await self.push_frame(tone_for(estimate.label))
            self._refresh_note(estimate.label)

    def _changed(self, estimate: EmotionEstimate) -> bool:
        last = self._last
        if last is None:
            return True
        if estimate.label != last.label:
            return True
        return any(
            abs(score - last.scores.get(label, 0.0)) >= self._params.change_threshold
            for label, score in estimate.scores.items()
        )

    def _refresh_note(self, label: str) -> None:
        if self._context is None:
            return
        messages = without_notes(self._context.get_messages(), NOTE_PREFIX)
        note = context_note(label)
        if note is not None:
            messages.append(note_message(f"{NOTE_PREFIX} {note}"))
        self._context.set_messages(messages)

    async def _close_analyzers(self) -> None:
        for analyzer in self._analyzers:
            try:
                await analyzer.close()
            except Exception as e:
                logger.debug(f"{self}: closing {analyzer.name}: {e}")
