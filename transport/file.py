"""A session without a room: the person's side played from a WAV file (or text turns).

For experiments and tests. The person "joins" as soon as the pipeline is up, says what the
file holds, waits in silence until KANE has answered the last turn, and "leaves", which ends
the session the way a person leaving a LiveKit room does. Everything KANE sends on the data
channel is kept, decoded, in order, with the session clock at which it was sent.

The person's audio can be played faster than real time (``speed``). Silero VAD, Smart Turn's
silence count, the Whisper STT's interim cadence, the recorder and the emotion stage's
prosody count audio, not seconds, so they hear the same speech at any speed. Timers on the
wall clock do not scale: Smart Turn's pre-speech window (in wall seconds), the emotion
stage's within-turn analysis, the user aggregator's wait for a late transcript, and the
time STT, LLM and TTS take. At speed X they stretch X times in session time, so runs
compare fairly only at the same speed. KANE's voice is paced at the same speed, so the
person's next words land where they did against it.

The processors live in `transport.file_audio`, what a run keeps in `transport.file_records`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
from pipecat.processors.frame_processor import FrameProcessor
from pipecat.transports.base_transport import BaseTransport, TransportParams
from pydantic import Field

from transport.base import DataHandler
from transport.file_audio import FRAME_S, FileInputTransport, FileOutputTransport
from transport.file_records import SentMessage, TextTurn, UserTurn

__all__ = [
    "FRAME_S",
    "FileTransport",
    "FileTransportError",
    "FileTransportParams",
    "SentMessage",
    "TextTurn",
    "UserTurn",
]


class FileTransportError(ValueError):
    """A file the transport cannot play; the message names the file and what is wrong."""


class FileTransportParams(TransportParams):
    """How the file is played and when the person leaves.

    Parameters:
        speed: How many times faster than real time the person's side is played (and
            KANE's voice paced); 1 is real time.
        min_trailing_silence_s: Silence played after the file, at least (session seconds).
        settle_s: The person leaves once nothing has happened for this long (wall
            seconds): no turn open, KANE not speaking, no reply awaited.
        reply_wait_s: How long (wall seconds) a finished turn waits for KANE to start
            speaking before the person stops waiting for an answer.
        max_trailing_silence_s: The person leaves after this much silence (session
            seconds) whatever KANE is doing.
    """

    audio_in_enabled: bool = True
    audio_out_enabled: bool = True
    audio_out_end_silence_secs: int = 0
    speed: float = Field(default=1.0, gt=0.0, le=100.0)
    min_trailing_silence_s: float = Field(default=1.0, ge=0.0)
    settle_s: float = Field(default=2.0, ge=0.0)
    reply_wait_s: float = Field(default=15.0, gt=0.0)
    max_trailing_silence_s: float = Field(default=60.0, gt=0.0)


class FileTransport(BaseTransport):
    """A KANE transport whose person is a WAV file (or text turns) and whose phone a list.

    Events, with LiveKit's names (see `transport.base`): ``on_connected`` when the pipeline
    starts; ``on_participant_connected`` and ``on_first_participant_joined`` when it is
    ready and the file begins; ``on_participant_disconnected`` when the file, its trailing
    silence and KANE's last answer are done. ``on_message_sent(transport, message)`` follows
    each data packet KANE sends (a `SentMessage`, also kept in `messages`).

    Example:
        transport = FileTransport(user_identity="ada", audio=Path("talk.wav"))
        session = create_session(place, transport, settings, http, archive)
        await run_session(session)
        print([m.type for m in transport.messages])
    """

    def __init__(
        self,
        *,
        user_identity: str,
        audio: Path | None = None,
        text_turns: Sequence[TextTurn] | None = None,
        bot_audio_path: Path | None = None,
        params: FileTransportParams | None = None,
        name: str | None = None,
    ):
        """Open the person's side.

        Args:
            user_identity: The person, as the session knows them.
            audio: A WAV (or any file libsndfile reads), any rate, mono or stereo.
            text_turns: Instead of audio: what the person said and when, pushed as final
                transcripts (the STT hears nothing).
            bot_audio_path: Where to write KANE's voice as a WAV; None drops it.
            params: Speed and when the person leaves.
            name: Optional name of the transport.

        Raises:
            FileTransportError: Neither or both of `audio` and `text_turns`, or a file that
                cannot be read as audio.
        """
        super().__init__(name=name)
        if (audio is None) == (text_turns is None):
            raise FileTransportError("give either an audio file or text turns")
        self._params = params or FileTransportParams()
        self.user_identity = user_identity
        self.audio = _read_audio(audio) if audio is not None else None
        self.text_turns = sorted(text_turns or [], key=lambda turn: turn.at_s)
        self.bot_audio_path = bot_audio_path
        self.messages: list[SentMessage] = []
        self.turns: list[UserTurn] = []
        self.attributes: dict[str, str] = {}
        self.started_at = 0.0
        self.ticks = 0
        self._input: FileInputTransport | None = None
        self._output: FileOutputTransport | None = None
        for event in (
            "on_connected",
            "on_participant_connected",
            "on_first_participant_joined",
            "on_participant_disconnected",
        ):
            self._register_event_handler(event)
        # Never emitted: with no network to leave, the session says goodbye once it is over.
        self._register_event_handler("on_before_disconnect", sync=True)
        self._register_event_handler("on_message_sent", sync=True)

    @property
    def speed(self) -> float:
        """How many times faster than real time the session runs."""
        return self._params.speed

    @property
    def clock_s(self) -> float:
        """The session clock: seconds of the person's side played so far."""
        return self.ticks * FRAME_S

    @property
    def wall_s(self) -> float:
        """Wall seconds since the person joined (0 before)."""
        return time.monotonic() - self.started_at if self.started_at else 0.0

    @property
    def audio_s(self) -> float:
        """Length of the person's audio file (0 for text turns)."""
        if self.audio is None:
            return 0.0
        samples, rate = self.audio
        return len(samples) / rate

    def input(self) -> FrameProcessor:
        """The processor that plays the person's side."""
        if self._input is None:
            self._input = FileInputTransport(self, self._params, name=self._input_name)
        return self._input

    def output(self) -> FrameProcessor:
        """The processor that takes KANE's voice."""
        if self._output is None:
            self._output = FileOutputTransport(self, self._params, name=self._output_name)
        return self._output

    async def emit(self, event: str, *args: Any) -> None:
        """Call the handlers of one of the transport's events."""
        await self._call_event_handler(event, *args)

    def on_topic(self, topic: str, handler: DataHandler) -> None:
        """Nothing arrives on any topic: the person has no phone here."""
        return

    async def publish(self, payload: bytes, *, topic: str) -> bool:
        """Keep a data packet KANE sent, decoded, with the session clock."""
        try:
            decoded: Any = json.loads(payload)
        except ValueError:
            decoded = payload.decode("utf-8", errors="replace")
        message = SentMessage(topic=topic, payload=decoded, at_s=self.clock_s, wall_s=self.wall_s)
        self.messages.append(message)
        await self._call_event_handler("on_message_sent", message)
        return True

    async def send_text(
        self,
        text: str,
        *,
        topic: str,
        attributes: dict[str, str],
        sender_identity: str | None = None,
    ) -> None:
        """Text streams do not exist here; the same words are in the `kane` messages."""
        return

    async def set_attributes(self, attributes: dict[str, str]) -> None:
        """Keep the bot's attributes (for example ``lk.agent.state``) in `attributes`."""
        self.attributes.update(attributes)

    async def close(self) -> None:
        """Nothing to let go of: the file was read whole; KANE's WAV closes with the pipeline."""


def _read_audio(path: Path) -> tuple[np.ndarray, int]:
    """A file's audio as mono float32 samples, and their rate."""
    try:
        samples, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except (OSError, RuntimeError, sf.LibsndfileError) as e:
        raise FileTransportError(f"{path}: not an audio file this can play: {e}") from e
    if samples.shape[0] == 0:
        raise FileTransportError(f"{path}: holds no audio")
    mono = samples.mean(axis=1) if samples.shape[1] > 1 else samples[:, 0]
    return np.ascontiguousarray(mono, dtype=np.float32), int(rate)
