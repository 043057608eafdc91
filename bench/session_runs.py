"""The sessions the session benchmark runs: KANE's whole pipeline, or a bare Pipecat one.

Both hear the same person through a `LoopbackTransport` and talk to the same emulated
services with the same VAD and turn settings. KANE's session is `bot.create_session` run
by `bot.run_session`, with its stages, tap, phone link, recorder and stores. The bare one
is what `bot.create_session` builds with KANE taken out: transport in, Silero VAD, STT,
user aggregator, LLM, the one TTS service itself (not KANE's failover wrapper), transport
out, assistant aggregator, on a worker with the same options (`bot.worker_options()`), the
same services (KANE's factory: its Deepgram STT, its shared HTTP client and models). *Stock*
is bare built from Pipecat's own services and defaults: `DeepgramSTTService`,
`OpenAILLMService`, `SileroVADAnalyzer()`, Smart Turn v3 loaded per session, a worker with
its default observers; what KANE's choices of services and worker options save shows there.

A `Stopwatch` hooks the STT, the partial-quest detector and the TTS of either kind (a
plain call in their `push_frame`, nothing queued) to note when transcripts leave the STT,
which transcript each quest draft followed, and how much audio the TTS produced.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from pipecat.audio.vad.silero import SileroVADAnalyzer
from pipecat.frames.frames import (
    Frame,
    InterimTranscriptionFrame,
    LLMContextFrame,
    LLMTextFrame,
    TranscriptionFrame,
    TTSAudioRawFrame,
    UserStoppedSpeakingFrame,
    VADUserStoppedSpeakingFrame,
)
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.worker import (
    PipelineParams,
    PipelineWorker,
    ProcessorUnusablePolicy,
)
from pipecat.processors.aggregators.llm_context import LLMContext
from pipecat.processors.aggregators.llm_response_universal import (
    LLMContextAggregatorPair,
    LLMUserAggregator,
    LLMUserAggregatorParams,
)
from pipecat.processors.audio.vad_processor import VADProcessor
from pipecat.processors.frame_processor import FrameProcessor
from pipecat.services.deepgram.stt import DeepgramSTTService
from pipecat.services.llm_service import LLMService
from pipecat.services.openai.llm import OpenAILLMService
from pipecat.services.openai.tts import OpenAITTSService
from pipecat.services.stt_service import STTService
from pipecat.services.tts_service import TTSService
from pipecat.workers.runner import WorkerRunner

import bot
import prompts
from bench.loopback_transport import FRAME_S, PHASES, LoopbackTransport, SpokenTurn, TurnTiming
from frames.quests import QuestDraftFrame
from processors.partial_quests import PartialQuestDetector
from services.factory import build_llm, build_stt
from services.shared_clients import openai_http_client
from services.shared_models import build_vad_analyzer
from services.turns import user_turn_params
from session.archive import Archive
from settings import Settings

KINDS = (
    "bare",
    "kane",
    "kane_preemptive",
    "bare_preemptive",
    "stock",
    "kane_no_emotion",
    "bare_again",
)
"""stock: bare from Pipecat's own services and worker defaults (see the module's docstring);
kane_no_emotion: KANE with the pipeline file `pipelines/no_emotion.toml`; bare_again: bare
itself, under another name (what two kinds that are the same differ by: the noise floor)."""
NO_EMOTION = Path(__file__).resolve().parent.parent / "pipelines" / "no_emotion.toml"
STAGES = (
    "vad_stop",
    "stt_final",
    "turn_end",
    "context_out",
    "llm_in",
    "llm_first_text",
    "tts_first_audio",
)
"""Moments of a turn the stopwatch notes, in the order they happen."""


def is_kane(kind: str) -> bool:
    """Whether sessions of `kind` run KANE's pipeline."""
    return kind.startswith("kane")


def is_preemptive(kind: str) -> bool:
    """Whether sessions of `kind` answer before the turn is confirmed."""
    return kind.endswith("_preemptive")


def mixed(*kinds: str) -> str:
    """The kind of a round whose slots take `kinds` in turn: `mixed("bare", "kane")` gives
    slot 0 bare, slot 1 KANE, slot 2 bare, ... (see `slot_kind`)."""
    return "+".join(kinds)


def slot_kind(kind: str, slot: int) -> str:
    """The kind of the session in `slot` of a round of `kind` (one of `KINDS`, or `mixed`)."""
    kinds = kind.split("+")
    return kinds[slot % len(kinds)]


@dataclass
class Stopwatch:
    """What the hooks noted in one session (times are `time.monotonic_ns()`).

    Parameters:
        transcripts: When each transcript frame (by id) left the STT.
        interims: The interim transcripts the STT pushed, in order: text and time.
        drafts: The quest drafts the detector pushed, in order: draft id and the id of the
            transcript frame it followed.
        tts_bytes: Audio bytes the TTS pushed.
    """

    transcripts: dict[int, int] = field(default_factory=dict)
    interims: list[tuple[str, int]] = field(default_factory=list)
    drafts: list[tuple[str, int | None]] = field(default_factory=list)
    tts_bytes: int = 0
    stages: dict[str, list[int]] = field(default_factory=lambda: {s: [] for s in STAGES})
    _last_transcript: int | None = None
    _llm_answering = False
    _tts_speaking = False

    def watch(self, worker: PipelineWorker) -> None:
        """Hook the STT, the detector (if any), the aggregator, the LLM and the TTS."""
        for processor in _processors(worker.pipeline):
            if isinstance(processor, VADProcessor):
                processor.add_event_handler("on_before_push_frame", self._vad_pushed)
            elif isinstance(processor, STTService):
                processor.add_event_handler("on_before_push_frame", self._stt_pushed)
            elif isinstance(processor, PartialQuestDetector):
                processor.add_event_handler("on_before_push_frame", self._detector_pushed)
            elif isinstance(processor, LLMUserAggregator):
                processor.add_event_handler("on_before_push_frame", self._aggregator_pushed)
            elif isinstance(processor, LLMService):
                processor.add_event_handler("on_before_process_frame", self._llm_took)
                processor.add_event_handler("on_before_push_frame", self._llm_pushed)
            elif isinstance(processor, TTSService):
                processor.add_event_handler("on_before_push_frame", self._tts_pushed)

    def _vad_pushed(self, processor: FrameProcessor, frame: Frame) -> None:
        if isinstance(frame, VADUserStoppedSpeakingFrame):
            self.stages["vad_stop"].append(time.monotonic_ns())

    def _stt_pushed(self, processor: FrameProcessor, frame: Frame) -> None:
        if isinstance(frame, InterimTranscriptionFrame | TranscriptionFrame):
            now = time.monotonic_ns()
            self.transcripts[frame.id] = now
            if isinstance(frame, InterimTranscriptionFrame):
                self.interims.append((frame.text, now))
            else:
                self.stages["stt_final"].append(now)

    def _aggregator_pushed(self, processor: FrameProcessor, frame: Frame) -> None:
        if isinstance(frame, UserStoppedSpeakingFrame):
            self.stages["turn_end"].append(time.monotonic_ns())
        elif isinstance(frame, LLMContextFrame):
            self.stages["context_out"].append(time.monotonic_ns())

    def _llm_took(self, processor: FrameProcessor, frame: Frame) -> None:
        if isinstance(frame, LLMContextFrame):
            self.stages["llm_in"].append(time.monotonic_ns())
            self._llm_answering = True

    def _llm_pushed(self, processor: FrameProcessor, frame: Frame) -> None:
        if self._llm_answering and isinstance(frame, LLMTextFrame):
            self._llm_answering = False
            self.stages["llm_first_text"].append(time.monotonic_ns())
            self._tts_speaking = True

    def _detector_pushed(self, processor: FrameProcessor, frame: Frame) -> None:
        if isinstance(frame, InterimTranscriptionFrame | TranscriptionFrame):
            self._last_transcript = frame.id
        elif isinstance(frame, QuestDraftFrame):
            self.drafts.append((frame.draft_id, self._last_transcript))

    def _tts_pushed(self, processor: FrameProcessor, frame: Frame) -> None:
        if isinstance(frame, TTSAudioRawFrame):
            self.tts_bytes += len(frame.audio)
            if self._tts_speaking:
                self._tts_speaking = False
                self.stages["tts_first_audio"].append(time.monotonic_ns())


def _processors(processor: Any) -> Iterator[FrameProcessor]:
    for child in getattr(processor, "processors", []) or []:
        yield child
        yield from _processors(child)


@dataclass
class SessionOutcome:
    """What one benchmark session did.

    Parameters:
        kind: bare, kane, kane_preemptive or bare_preemptive.
        slot: Its place in the round (and its STT emulator).
        session_id: The session.
        turns: Each turn's times.
        stopwatch: What the hooks noted.
        sent: Packets handed to the transport: time, topic, payload.
        bytes_in: Audio bytes of the person's microphone.
        bot_bytes_out: Audio bytes of the bot's voice handed to the transport.
        journaled: Events the session's tap wrote (KANE only).
        recorded_user_bytes: Length of the person's recording (KANE only).
        speculations: Early answers started (preemptive kinds only).
        confirmed: Early answers kept.
    """

    kind: str
    slot: int
    session_id: str
    turns: list[TurnTiming]
    stopwatch: Stopwatch
    sent: list[tuple[int, str, bytes]]
    bytes_in: int
    bot_bytes_out: int
    journaled: int | None = None
    recorded_user_bytes: int | None = None
    speculations: int = 0
    confirmed: int = 0


@dataclass
class Services:
    """Where the emulated services are, and the stated latencies they run with."""

    deepgram_urls: list[str]
    openai_url: str


def bench_settings(services: Services, slot: int, kind: str) -> Settings:
    """The settings a session of `kind` in `slot` runs with: the emulated cloud's."""
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        deepgram_api_key="bench-deepgram-key",
        deepgram_base_url=services.deepgram_urls[slot],
        openai_api_key="bench-openai-key",
        openai_base_url=services.openai_url,
        kane_tts=["openai"],
        kane_greeting="",
        kane_preemptive=is_preemptive(kind),
        hume_api_key=None,
    )
    if kind == "kane_no_emotion":
        settings.kane_pipeline = NO_EMOTION
    return settings


def mic_phase_s(slot: int) -> float:
    """Where in the 20 ms frame the microphone of `slot` captures, the same for every kind.

    People's microphones tick independently. Left to when each pipeline starts, the phases
    would depend on the kind: bare's sessions start within a millisecond of each other and
    their microphones would tick together, a few wake-ups of the event loop serving every
    session, while KANE's start over tens of milliseconds. The golden ratio's sequence spreads
    any run of consecutive slots (a shard's share of a round) evenly over the frame.
    """
    return (slot * 0.6180339887498949) % 1.0 * FRAME_S


class BenchSession:
    """One session of the benchmark: build it, start it, let the person talk, end it."""

    def __init__(
        self,
        *,
        kind: str,
        slot: int,
        services: Services,
        http: aiohttp.ClientSession,
        archive: Archive | None,
    ):
        """Build the session's pipeline (nothing runs until `start`).

        Args:
            kind: One of `KINDS`.
            slot: Its place in the round; picks its STT emulator.
            services: The emulated services.
            http: The shared HTTP session.
            archive: The worker's stores (KANE kinds only).
        """
        self.kind = kind
        self.slot = slot
        self.session_id = str(uuid.uuid4())
        self.user_id = f"bench-{slot}"
        self.transport = LoopbackTransport(identity=self.user_id, mic_phase_s=mic_phase_s(slot))
        self.stopwatch = Stopwatch()
        self._settings = bench_settings(services, slot, kind)
        self._task: asyncio.Task | None = None
        self._kane: bot.BotSession | None = None
        self._turn_strategy: Any = None
        if is_kane(kind):
            if archive is None:
                raise ValueError("KANE's sessions need the worker's stores")
            place = bot.SessionPlace(session_id=self.session_id, user_id=self.user_id, room="bench")
            self._kane = bot.create_session(place, self.transport, self._settings, http, archive)
            self.worker = self._kane.worker
        else:
            self.worker = self._bare_worker(http)
        self.stopwatch.watch(self.worker)
        self._turn_strategy = _stop_strategy(self.worker)

    def _bare_worker(self, http: aiohttp.ClientSession) -> PipelineWorker:
        settings = self._settings
        system = prompts.render("system", today=datetime.date.today().isoformat())
        assert settings.openai_api_key is not None
        key = settings.openai_api_key.get_secret_value()
        tts_settings = OpenAITTSService.Settings(
            model=settings.openai_tts_model, voice=settings.openai_tts_voice
        )
        if self.kind == "stock":
            assert settings.deepgram_api_key is not None
            stt: STTService = DeepgramSTTService(
                api_key=settings.deepgram_api_key.get_secret_value(),
                base_url=settings.deepgram_base_url,
                settings=DeepgramSTTService.Settings(
                    model=settings.deepgram_model, interim_results=True, punctuate=True
                ),
            )
            llm: LLMService[Any] = OpenAILLMService(
                api_key=key,
                base_url=settings.openai_base_url,
                settings=OpenAILLMService.Settings(
                    model=settings.openai_model, system_instruction=system
                ),
            )
            tts = OpenAITTSService(
                api_key=key, base_url=settings.openai_base_url, settings=tts_settings
            )
            vad: SileroVADAnalyzer = SileroVADAnalyzer()
            user_params = LLMUserAggregatorParams()  # Pipecat's default turn strategies
        else:
            stt = build_stt(settings)
            llm = build_llm(settings, system_instruction=system)
            tts = OpenAITTSService(
                api_key=key,
                base_url=settings.openai_base_url,
                settings=tts_settings,
                http_client=openai_http_client(),
            )
            vad = build_vad_analyzer()
            user_params = user_turn_params(is_preemptive(self.kind))
        user_aggregator, assistant_aggregator = LLMContextAggregatorPair(
            LLMContext(), user_params=user_params
        )
        pipeline = Pipeline(
            [
                self.transport.input(),
                VADProcessor(vad_analyzer=vad),
                stt,
                user_aggregator,
                llm,
                tts,
                self.transport.output(),
                assistant_aggregator,
            ]
        )
        if self.kind != "stock":
            return PipelineWorker(pipeline, conversation_id=self.session_id, **bot.worker_options())
        return PipelineWorker(
            pipeline,
            params=PipelineParams(enable_metrics=True, enable_usage_metrics=True),
            conversation_id=self.session_id,
            enable_rtvi=False,
            processor_unusable_policy=ProcessorUnusablePolicy.END,
            cancel_on_idle_timeout=False,
        )

    def start(self) -> None:
        """Start the session's pipeline (and, for KANE, its records and lifecycle)."""
        self._task = asyncio.create_task(self._run(), name=f"bench-{self.kind}-{self.slot}")

    async def _run(self) -> None:
        if self._kane is not None:
            await bot.run_session(self._kane)
            return
        runner = WorkerRunner(handle_sigint=False)
        await runner.add_workers(self.worker)
        await runner.run()

    async def ready(self, timeout_s: float = 120.0) -> None:
        """Wait until the person's microphone is open."""
        await self.transport.wait_ready(timeout_s)

    async def converse(
        self, turns: list[SpokenTurn], *, first_after_s: float, gaps_s: list[float]
    ) -> None:
        """Say each turn and wait for its answer; pause `gaps_s[i]` before turn i + 1.

        Args:
            turns: What the person says, in order.
            first_after_s: Silence before the first turn.
            gaps_s: Silence after each answer.
        """
        if self._kane is not None:
            # The phone says where it is, as the app does when it connects.
            await self.transport.send(_ui_state(self.session_id))
        await asyncio.sleep(first_after_s)
        self.timings: list[TurnTiming] = []
        for index, (turn, gap) in enumerate(zip(turns, gaps_s, strict=True)):
            # Each turn meets VAD's windows at its own phase, the same in every kind of session.
            phase = (3 * self.slot + 5 * index) % PHASES
            self.timings.append(await self.transport.speak(turn, phase=phase))
            await asyncio.sleep(gap)

    async def end(self, timeout_s: float = 60.0) -> SessionOutcome:
        """End the session as the person leaving does, wait for it, and say what it did."""
        # The microphone stops first, so every frame it sent is in the pipeline when the
        # session ends; the end drains the pipeline rather than cancelling it.
        await self.transport.close_mic()
        if self._kane is not None:
            await self._kane.lifecycle.end("bench: the person is done")
        else:
            await self.worker.end(reason="bench: the person is done")
        assert self._task is not None
        await asyncio.wait_for(self._task, timeout_s)
        outcome = SessionOutcome(
            kind=self.kind,
            slot=self.slot,
            session_id=self.session_id,
            turns=getattr(self, "timings", []),
            stopwatch=self.stopwatch,
            sent=self.transport.sent,
            bytes_in=self.transport.bytes_in,
            bot_bytes_out=self.transport.bot_bytes_out,
        )
        if self._kane is not None and self._kane.archive is not None:
            kept = self._kane.archive
            outcome.journaled = kept.tap.events
            recordings = await kept.recorder.close()
            outcome.recorded_user_bytes = round(recordings.duration_s * 16000) * 2
        strategy = self._turn_strategy
        if strategy is not None:
            outcome.speculations = strategy.speculations
            outcome.confirmed = strategy.confirmed
        return outcome


def _stop_strategy(worker: PipelineWorker) -> Any:
    """The preemptive stop strategy of the session's user aggregator, if it has one."""
    for processor in _processors(worker.pipeline):
        params = getattr(processor, "_params", None)
        strategies = getattr(params, "user_turn_strategies", None)
        for strategy in getattr(strategies, "stop", None) or []:
            if hasattr(strategy, "speculations"):
                return strategy
    return None


def _ui_state(session_id: str) -> bytes:
    envelope = {
        "v": 1,
        "type": "ui_state",
        "session_id": session_id,
        "seq": 1,
        "ts": int(time.time() * 1000),
        "data": {"current_screen": "today", "selected_quest": None, "visible_quest_ids": []},
    }
    return json.dumps(envelope).encode()
