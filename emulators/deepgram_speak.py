"""Deepgram Aura text to speech over REST (``POST /v1/speak``): the request and its audio.

``DeepgramEmulator`` serves the route; this module holds what the route understands
(query parameters, JSON body) and renders the audio it streams back.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from emulators.synth import speech_like, wav_header

DEFAULT_SPEAK_MODEL = "aura-asteria-en"  # Deepgram's default when no model is given
# Raw PCM rates Deepgram offers for linear16 (its audio format combinations table).
LINEAR16_SAMPLE_RATES = (8_000, 16_000, 24_000, 32_000, 48_000)
DEFAULT_SAMPLE_RATE = 24_000
MAX_SPEAK_CHARS = 2_000  # Deepgram's limit on the text of one request
SPEED_RANGE = (0.7, 1.5)  # Aura's documented speed range


@dataclass
class SpeakParams:
    """The query parameters of one ``/v1/speak`` request, validated.

    Parameters:
        model: The Aura voice, e.g. ``aura-2-thalia-en``.
        encoding: Audio encoding; the emulator renders ``linear16`` only.
        container: ``wav`` (Deepgram's REST default) or ``none`` for raw PCM.
        sample_rate: Output sample rate in Hz.
        speed: Speaking rate multiplier.
    """

    model: str = DEFAULT_SPEAK_MODEL
    encoding: str = "linear16"
    container: str = "wav"
    sample_rate: int = DEFAULT_SAMPLE_RATE
    speed: float = 1.0

    @classmethod
    def from_query(cls, query: Mapping[str, str]) -> SpeakParams:
        """Parse and check the query string as Deepgram would.

        Args:
            query: The request's query parameters.

        Returns:
            The parameters, with Deepgram's defaults for those not given.

        Raises:
            ValueError: If a value is unknown, out of range or not rendered by the emulator.
        """
        model = query.get("model") or DEFAULT_SPEAK_MODEL
        if not model.startswith("aura"):
            raise ValueError(f"No such model/version/voice combination found: {model}")
        encoding = query.get("encoding") or "linear16"
        if encoding != "linear16":
            raise ValueError(f"emulator renders encoding=linear16 only, not {encoding!r}")
        container = query.get("container") or "wav"
        if container not in ("wav", "none"):
            raise ValueError(f"container {container!r} is not valid for linear16")
        try:
            rate = float(query.get("sample_rate") or DEFAULT_SAMPLE_RATE)
            speed = float(query.get("speed") or 1.0)
        except ValueError as e:
            raise ValueError(f"sample_rate and speed must be numbers: {e}") from e
        sample_rate = int(rate)
        if rate != sample_rate or sample_rate not in LINEAR16_SAMPLE_RATES:
            raise ValueError(
                f"sample_rate {sample_rate} is not valid for linear16; "
                f"use one of {list(LINEAR16_SAMPLE_RATES)}"
            )
        if not SPEED_RANGE[0] <= speed <= SPEED_RANGE[1]:
            raise ValueError(f"speed {speed} is outside {SPEED_RANGE[0]}..{SPEED_RANGE[1]}")
        return cls(model, encoding, container, sample_rate, speed)

    @property
    def content_type(self) -> str:
        """The ``Content-Type`` of the answer."""
        return "audio/wav" if self.container == "wav" else "application/octet-stream"


def speak_text(body: Any) -> str:
    """The text to speak from a ``/v1/speak`` JSON body (``{"text": ...}``).

    Raises:
        ValueError: If the text is missing, empty or longer than Deepgram accepts.
    """
    text = body.get("text") if isinstance(body, dict) else None
    if not isinstance(text, str) or not text.strip():
        raise ValueError("The request body must be JSON with a non-empty 'text' field.")
    if len(text) > MAX_SPEAK_CHARS:
        raise ValueError(f"Text is {len(text)} characters; the limit is {MAX_SPEAK_CHARS}.")
    return text


def speak_pieces(
    text: str, params: SpeakParams, *, chunk_ms: int, ms_per_char: float
) -> list[bytes]:
    """Render ``text`` as speech-like 16-bit mono PCM cut into streamed pieces.

    Args:
        text: What is said.
        params: The request's parameters (rate, speed, container).
        chunk_ms: Audio per piece.
        ms_per_char: Speech length per character at speed 1.0.

    Returns:
        The pieces in order; with ``container=wav`` the first starts with a WAV header.
    """
    pcm = speech_like(text, params.sample_rate, ms_per_char=ms_per_char, speed=params.speed).pcm
    step = max(2, params.sample_rate * 2 * chunk_ms // 1000)
    pieces = [pcm[i : i + step] for i in range(0, len(pcm), step)] or [b""]
    if params.container == "wav":
        pieces[0] = wav_header(len(pcm), params.sample_rate) + pieces[0]
    return pieces
