"""KANE's offline voice: eSpeak NG, from the ``espeakng-loader`` wheel, as a Pipecat TTS."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field
from typing import Any

from loguru import logger
from pipecat.frames.frames import ErrorFrame, Frame, TTSAudioRawFrame
from pipecat.services.settings import TTSSettings
from pipecat.services.tts_service import TTSService
from pipecat.utils.text.base_text_aggregator import TextType
from pipecat.utils.text.transforms.text_transform import TextTransform
from pipecat.utils.tracing.service_decorators import traced_tts
from pipecat.utils.types import NOT_GIVEN, NotGiven, assert_given

from speech.espeak import synthesize_at

DEFAULT_VOICE = "en-us"
"""The voice used when the settings name none."""

NORMAL_RATE_WPM = 175
"""eSpeak NG's own default rate, in words per minute: what ``speed=1.0`` means."""

_CHUNK_S = 0.04
"""Length of one audio frame: short, so playback starts at once and an interruption cuts
the sentence within a frame."""


async def drop_unspeakable(text: str, text_type: str | TextType) -> str:
    """Text transform that empties text with no letter or digit in it.

    eSpeak NG reads lone symbols aloud ("!" as "exclamation mark") and makes silence of
    "..." or "—"; neither should reach the listener. An emptied text is not spoken, so the
    turn gets no audio context and no "completed with no audio" error. Register it last in
    ``text_transforms`` of the TTS service in the pipeline.

    Args:
        text: The text about to be spoken.
        text_type: Its type (unused; every type is judged alike).

    Returns:
        ``text`` unchanged, or ``""`` when there is nothing in it to say.
    """
    return text if _has_words(text) else ""


def _has_words(text: str) -> bool:
    return any(char.isalnum() for char in text)


def _rate_wpm(speed: float) -> int:
    """Words per minute for a speed multiplier; `synthesize_at` keeps it within 80-450."""
    return round(NORMAL_RATE_WPM * speed)


@dataclass
class ESpeakTTSSettings(TTSSettings):
    """Settings for `ESpeakTTSService`.

    ``voice`` is an eSpeak NG voice or language ("en-us", "en-gb"; None means "en-us"); it
    also sets the language, so ``language`` and ``model`` stay None (and are ignored if set).

    Parameters:
        speed: Speaking speed as a multiple of eSpeak's normal 175 words per minute (1.0);
            the resulting rate is kept within eSpeak's 80-450 words per minute.
        pitch: Base pitch, 0-100 (50 is eSpeak's default).
    """

    speed: float | NotGiven = field(default_factory=lambda: NOT_GIVEN)
    pitch: int | NotGiven = field(default_factory=lambda: NOT_GIVEN)


class ESpeakTTSService(TTSService):
    """Speaks with eSpeak NG on this machine: no key, no network.

    Each sentence is synthesized whole on a worker thread (eSpeak runs hundreds of times
    faster than real time), resampled to the pipeline's output rate and yielded in 40 ms
    frames. A ``speed`` settings update, such as the tone hint `FailoverTTSService` passes
    on, applies from the next sentence.
    """

    Settings = ESpeakTTSSettings
    _settings: ESpeakTTSSettings

    def __init__(
        self,
        *,
        settings: ESpeakTTSSettings | None = None,
        text_transforms: list[tuple[TextType | str, TextTransform]] | None = None,
        **kwargs: Any,
    ):
        """Create the service.

        Args:
            settings: Voice, speed and pitch; unset fields keep their defaults ("en-us",
                1.0, 50).
            text_transforms: Transforms run on text before it is spoken; `drop_unspeakable`
                is added after them.
            **kwargs: Passed on to `TTSService` (sample_rate, ...).
        """
        default_settings = self.Settings(
            model=None, voice=DEFAULT_VOICE, language=None, speed=1.0, pitch=50
        )
        if settings is not None:
            default_settings.apply_update(settings)
        super().__init__(
            push_start_frame=True,
            push_stop_frames=True,
            settings=default_settings,
            text_transforms=[*(text_transforms or []), ("*", drop_unspeakable)],
            **kwargs,
        )

    def can_generate_metrics(self) -> bool:
        """Report TTFB and usage metrics."""
        return True

    @traced_tts
    async def run_tts(self, text: str, context_id: str) -> AsyncGenerator[Frame | None, None]:
        """Speak `text` with eSpeak NG.

        Args:
            text: The text to speak.
            context_id: The audio context the frames belong to.

        Yields:
            Audio frames at the pipeline's output rate; none when the text has nothing to
            say; an `ErrorFrame` when eSpeak NG fails.
        """
        if not _has_words(text):
            return
        voice = assert_given(self._settings.voice) or DEFAULT_VOICE
        speed = assert_given(self._settings.speed)
        pitch = assert_given(self._settings.pitch)
        await self.start_tts_usage_metrics(text)
        started = time.perf_counter()
        try:
            audio = await asyncio.to_thread(
                synthesize_at,
                text,
                self.sample_rate,
                rate_wpm=_rate_wpm(speed),
                pitch=pitch,
                voice=voice,
            )
        except Exception as e:  # a failing engine must not end the pipeline
            yield ErrorFrame(error=f"eSpeak NG could not speak: {e}", exception=e)
            return
        if not audio.any():
            return
        await self.stop_ttfb_metrics()
        logger.debug(
            f"{self}: {audio.size / self.sample_rate:.2f} s of audio "
            f"in {(time.perf_counter() - started) * 1000:.1f} ms"
        )
        pcm = audio.tobytes()
        step = 2 * round(self.sample_rate * _CHUNK_S)
        for start in range(0, len(pcm), step):
            yield TTSAudioRawFrame(
                pcm[start : start + step], self.sample_rate, 1, context_id=context_id
            )
