"""A TTS service that speaks through the first of several TTS services that works."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass
from typing import Any

from loguru import logger
from pipecat.frames.frames import (
    BotStartedSpeakingFrame,
    BotStoppedSpeakingFrame,
    CancelFrame,
    EndFrame,
    ErrorFrame,
    Frame,
    StartFrame,
    TTSAudioRawFrame,
)
from pipecat.processors.frame_processor import (
    FrameCallback,
    FrameDirection,
    FrameProcessorSetup,
)
from pipecat.services.settings import TTSSettings
from pipecat.services.tts_service import TTSService

from frames.emotion import ToneFrame


@dataclass
class FailoverTTSParams:
    """How the failover TTS judges and treats a failing service.

    Parameters:
        first_audio_timeout_s: A service that has not produced audio this long after it was
            asked to speak has failed, and the text goes to the next one.
        chunk_timeout_s: A service that stops producing audio for this long mid-sentence has
            failed too.
        retry_after_s: After a failure, earlier services in the list are tried again once this
            much time has passed.
        playback_wait_s: A turn's next sentence waits at most this long for the bot to start
            speaking the audio already made (see `FailoverTTSService.run_tts`).
    """

    first_audio_timeout_s: float = 3.0
    chunk_timeout_s: float = 5.0
    retry_after_s: float = 60.0
    playback_wait_s: float = 0.1


class _Failed(Exception):
    """One service could not speak one piece of text."""


class FailoverTTSService(TTSService):
    """Speaks each piece of text with the first service in a list that manages to.

    The services are ordinary Pipecat HTTP TTS services (their `run_tts` yields audio). This
    service owns the text aggregation, turn bookkeeping and frames; for each sentence it asks
    its current service for audio and, when that service errors, yields no audio, or stays
    silent past a timeout, the same sentence is spoken by the next service in the list and
    the log says so. The rest of the turn stays with the service that worked; earlier
    services are tried again after `retry_after_s`.

    A turn's later sentences are asked for once the bot has started speaking its first
    (the output transport's `BotStartedSpeakingFrame`, upstream), so a request's work on
    the event loop never stands between the turn's first audio and the transport.
    """

    def __init__(
        self,
        *,
        services: list[tuple[str, TTSService]],
        params: FailoverTTSParams | None = None,
        **kwargs,
    ):
        """Create the service.

        Args:
            services: ``(name, service)`` pairs, in failover order.
            params: Timeouts and retry policy.
            **kwargs: Passed on to `TTSService`.
        """
        if not services:
            raise ValueError("FailoverTTSService needs at least one service")
        kwargs.setdefault("settings", TTSSettings(model=None, voice=None, language=None))
        super().__init__(push_start_frame=True, push_stop_frames=True, **kwargs)
        self._params = params or FailoverTTSParams()
        self._services = services
        self._active = 0
        self._failed_at: float | None = None
        self._voiced_context: str | None = None  # the last audio context given audio
        self._bot_speaking = asyncio.Event()  # set by the output transport's news, upstream

    @property
    def active_name(self) -> str:
        """Name of the service that speaks next."""
        return self._services[self._active][0]

    def can_generate_metrics(self) -> bool:
        """Report TTFB and usage metrics like the services it holds."""
        return True

    async def setup(self, setup: FrameProcessorSetup):  # type: ignore[override]
        """Set up this service and every service it holds."""
        await super().setup(setup)
        for _, service in self._services:
            await service.setup(setup)

    async def start(self, frame: StartFrame):
        """Start this service and every service it holds."""
        await super().start(frame)
        for _, service in self._services:
            await service.start(frame)

    async def stop(self, frame: EndFrame):
        """Stop this service and every service it holds."""
        await super().stop(frame)
        for _, service in self._services:
            await service.stop(frame)

    async def cancel(self, frame: CancelFrame):
        """Cancel this service and every service it holds."""
        await super().cancel(frame)
        for _, service in self._services:
            await service.cancel(frame)

    async def cleanup(self):
        """Release this service and every service it holds."""
        await super().cleanup()
        for _, service in self._services:
            await service.cleanup()

    async def queue_frame(
        self,
        frame: Frame,
        direction: FrameDirection = FrameDirection.DOWNSTREAM,
        callback: FrameCallback | None = None,
    ):
        """Note, as it arrives, when the output transport starts and stops the bot's speech.

        The news comes upstream while this service's task may be waiting in `run_tts`, so
        it is noted here, in the output transport's task, rather than in `process_frame`.
        """
        if direction == FrameDirection.UPSTREAM:
            if isinstance(frame, BotStartedSpeakingFrame):
                self._bot_speaking.set()
            elif isinstance(frame, BotStoppedSpeakingFrame):
                self._bot_speaking.clear()
        await super().queue_frame(frame, direction, callback)

    async def process_frame(self, frame: Frame, direction: FrameDirection):
        """Take a `ToneFrame` for every voice it holds; everything else as a TTS does."""
        if isinstance(frame, ToneFrame):
            await super().process_frame(frame, direction)
            await self._apply_tone(frame)
            return
        await super().process_frame(frame, direction)

    async def _apply_tone(self, tone: ToneFrame) -> None:
        """Give each voice the tone in the terms it understands (instructions, description)."""
        for name, service in self._services:
            settings_class: type[TTSSettings] = type(service.settings)  # type: ignore[assignment]
            fields = {f.name for f in dataclasses.fields(settings_class)}
            values: dict[str, Any] = {}
            if "instructions" in fields and tone.instructions:
                values["instructions"] = tone.instructions
            if "description" in fields and tone.description:
                values["description"] = tone.description
            if "speed" in fields and tone.speed is not None:
                values["speed"] = tone.speed
            if values:
                # The voices are not in the pipeline, so no settings frame reaches them.
                await service._update_settings(settings_class(**values))
                logger.debug(f"{self}: tone of '{name}' now {sorted(values)}")

    async def run_tts(self, text: str, context_id: str) -> AsyncGenerator[Frame | None, None]:
        """Speak `text` with the first service that manages to.

        Args:
            text: The text to speak.
            context_id: The audio context the frames belong to.

        Yields:
            Audio frames at this service's sample rate, or an `ErrorFrame` when every
            service failed.
        """
        if context_id == self._voiced_context and not self._bot_speaking.is_set():
            # A later sentence of a turn whose first audio has not reached the output yet.
            # Pipecat asks for it as that audio arrives; sending a request holds the event
            # loop ~1.5 ms (the SDK and HTTP client), and the audio would wait behind it and
            # the tasks it wakes on its way to the transport (~3 ms a turn at 1 session,
            # measured). This sentence is wanted only once the first has been heard.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._params.playback_wait_s):
                    await self._bot_speaking.wait()
        self._maybe_return_to_first()
        # While services are tried one after another the turn has no audio yet; keep its audio
        # context open, or Pipecat would close the turn before the fallback speaks.
        keepalive = self.create_task(self._keep_context_alive(context_id), "tts-keepalive")
        try:
            async for frame in self._speak_first_that_works(text, context_id):
                if isinstance(frame, TTSAudioRawFrame):
                    self._voiced_context = context_id
                yield frame
        finally:
            await self.cancel_task(keepalive)

    async def _keep_context_alive(self, context_id: str) -> None:
        while True:
            self._refresh_audio_context(context_id)
            await asyncio.sleep(self._stop_frame_timeout_s / 2)

    async def _speak_first_that_works(self, text: str, context_id: str) -> AsyncIterator[Frame]:
        for index in range(self._active, len(self._services)):
            name, service = self._services[index]
            if index != self._active:
                logger.warning(f"{self}: speaking this turn with '{name}' instead")
                self._active = index
            heard_audio = False
            try:
                async for frame in self._speak_with(service, text, context_id):
                    heard_audio = True
                    yield frame
                return
            except _Failed as failure:
                self._failed_at = time.monotonic()
                partial = " after part of the sentence" if heard_audio else ""
                logger.warning(f"{self}: TTS '{name}' failed{partial}: {failure}")
        self._active = 0
        yield ErrorFrame(error=f"every TTS service failed to speak: {text[:60]!r}")

    def _maybe_return_to_first(self) -> None:
        if self._active == 0 or self._failed_at is None:
            return
        if time.monotonic() - self._failed_at >= self._params.retry_after_s:
            logger.info(f"{self}: trying '{self._services[0][0]}' again")
            self._active = 0

    async def _speak_with(
        self, service: TTSService, text: str, context_id: str
    ) -> AsyncIterator[TTSAudioRawFrame]:
        """Audio of `text` from one service, at this service's rate; raises `_Failed`."""
        generator = service.run_tts(text, context_id)
        timeout = self._params.first_audio_timeout_s
        heard_audio = False
        try:
            while True:
                try:
                    # A timeout scope, not `wait_for`: no task of its own for every chunk.
                    async with asyncio.timeout(timeout):
                        frame = await anext(generator)
                except StopAsyncIteration:
                    break
                except TimeoutError as e:
                    raise _Failed(f"no audio within {timeout:.1f} s") from e
                except Exception as e:  # a client error escaping the service
                    raise _Failed(str(e) or type(e).__name__) from e
                if isinstance(frame, ErrorFrame):
                    raise _Failed(frame.error)
                if isinstance(frame, TTSAudioRawFrame):
                    heard_audio = True
                    timeout = self._params.chunk_timeout_s
                    yield await self._at_our_rate(frame, context_id)
        finally:
            await generator.aclose()
        if not heard_audio:
            raise _Failed("it produced no audio")

    async def _at_our_rate(self, frame: TTSAudioRawFrame, context_id: str) -> TTSAudioRawFrame:
        audio = frame.audio
        if frame.sample_rate != self.sample_rate:
            audio = await self._resampler.resample(audio, frame.sample_rate, self.sample_rate)
        return TTSAudioRawFrame(audio, self.sample_rate, 1, context_id=context_id)
