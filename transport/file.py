"""A session without a room: the person's side played from a WAV file (or text turns).

For experiments and tests. The person "joins" as soon as the pipeline is up, says what the
file holds, waits in silence until KANE has answered the last turn, and "leaves", which ends
the session the way a person leaving a LiveKit room does. Everything KANE sends on the data
channel is kept, decoded, in order, with the session clock at which it was sent.

The person's audio can be played faster than real time (``speed``). Silero VAD, Smart Turn's
silence count, the recorder and the emotion stage's prosody count audio, not seconds, so
they hear the same speech at any speed. Timers on the wall clock do not scale: the STT's
interim cadence and Smart Turn's pre-speech window (in wall seconds), the emotion stage's
within-turn analysis, and the time STT, LLM and TTS take. At speed X they stretch X times
in session time, so runs compare fairly only at the same speed. KANE's voice is paced at the
same speed, so the person's next words land where they did against it.
"""

from __future__ import annotations

import asyncio
import json
import time
import wave
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import soxr
from loguru import logger
from pipecat.frames.frames import (
    BotStartedSpeakingFrame,
    BotStoppedSpeakingFrame,
    CancelFrame,
    EndFrame,
    Frame,
    InputAudioRawFrame,
    InterruptionFrame,
    OutputAudioRawFrame,
    OutputTransportReadyFrame,
    StartFrame,
    TranscriptionFrame,
    UserStartedSpeakingFrame,
    UserStoppedSpeakingFrame,
)
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
from pipecat.transports.base_input import BaseInputTransport
from pipecat.transports.base_output import BaseOutputTransport
from pipecat.transports.base_transport import BaseTransport, TransportParams
from pipecat.utils.time import time_now_iso8601
from pydantic import Field

from transport.base import DataHandler

FRAME_S = 0.02
"""The person's audio goes in 20 ms frames, as a microphone sends it."""


class FileTransportError(ValueError):
    """A file the transport cannot play; the message names the file and what is wrong."""


@dataclass(frozen=True)
class TextTurn:
    """Something the person said, as text, and when.

    Parameters:
        at_s: Seconds after the person joined.
        text: What they said.
    """

    at_s: float
    text: str


@dataclass(frozen=True)
class SentMessage:
    """A data packet KANE sent, as the phone would have received it.

    Parameters:
        topic: The packet's topic (``kane`` for the phone's protocol).
        payload: The decoded JSON (an envelope, on ``kane``), or the text if it is not JSON.
        at_s: The session clock when it was sent: seconds of the person's side played.
        wall_s: Wall seconds since the person joined.
    """

    topic: str
    payload: Any
    at_s: float
    wall_s: float

    @property
    def type(self) -> str | None:
        """The envelope's ``type``, or None when the payload is not an envelope."""
        if isinstance(self.payload, dict) and isinstance(self.payload.get("type"), str):
            return self.payload["type"]
        return None

    @property
    def data(self) -> dict[str, Any]:
        """The envelope's ``data`` (empty when there is none)."""
        data = self.payload.get("data") if isinstance(self.payload, dict) else None
        return data if isinstance(data, dict) else {}


@dataclass(frozen=True)
class UserTurn:
    """A turn of the person's, on the session clock, as KANE's turn detection saw it.

    Parameters:
        started_s: When the turn started.
        stopped_s: When it ended; None if it never did.
        stopped_wall_s: When it ended, in wall seconds since the person joined.
    """

    started_s: float
    stopped_s: float | None = None
    stopped_wall_s: float | None = None


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


class FileInputTransport(BaseInputTransport):
    """Plays the person's side into the pipeline once the whole pipeline has started."""

    _params: FileTransportParams

    def __init__(self, transport: FileTransport, params: FileTransportParams, **kwargs):
        """Create the input of `transport`.

        Args:
            transport: The transport this is the input of.
            params: The transport's params.
            **kwargs: Passed on to `BaseInputTransport`.
        """
        super().__init__(params, **kwargs)
        self._transport = transport
        self._pcm = b""
        self._play_task: asyncio.Task | None = None
        # What the person waits for before leaving.
        self._user_turn = False
        self._bot_speaking = False
        self._reply_awaited_since: float | None = None
        self._last_activity = 0.0

    async def setup(self, setup):
        """Resample the file to the pipeline's input rate."""
        await super().setup(setup)
        if self._transport.audio is not None:
            samples, rate = self._transport.audio
            if rate != self.sample_rate:
                samples = soxr.resample(samples, rate, self.sample_rate, "HQ")
            pcm = np.clip(samples * 32768.0, -32768, 32767).astype(np.int16)
            self._pcm = pcm.tobytes()

    async def start(self, frame: StartFrame):
        """The bot is in: the file is open."""
        await super().start(frame)
        await self.set_transport_ready(frame)
        await self._transport.emit("on_connected")

    async def stop(self, frame: EndFrame):
        """Stop playing."""
        await self._stop_playing()
        await super().stop(frame)

    async def cancel(self, frame: CancelFrame):
        """Stop playing at once."""
        await self._stop_playing()
        await super().cancel(frame)

    async def cleanup(self):
        """Stop playing if the pipeline went away some other way."""
        await self._stop_playing()
        await super().cleanup()

    async def process_frame(self, frame: Frame, direction: FrameDirection):
        """Start playing when the output is ready; follow turns and KANE's voice."""
        await super().process_frame(frame, direction)
        if direction != FrameDirection.UPSTREAM:
            return
        if isinstance(frame, OutputTransportReadyFrame) and self._play_task is None:
            self._play_task = self.create_task(self._play(), "file-play")
        elif isinstance(frame, UserStartedSpeakingFrame):
            self._user_turn = True
            self._transport.turns.append(UserTurn(started_s=self._transport.clock_s))
        elif isinstance(frame, UserStoppedSpeakingFrame):
            self._user_turn = False
            self._reply_awaited_since = time.monotonic()
            transport = self._transport
            if transport.turns and transport.turns[-1].stopped_s is None:
                transport.turns[-1] = UserTurn(
                    transport.turns[-1].started_s, transport.clock_s, transport.wall_s
                )
        elif isinstance(frame, BotStartedSpeakingFrame):
            self._bot_speaking = True
            self._reply_awaited_since = None
        elif isinstance(frame, BotStoppedSpeakingFrame):
            self._bot_speaking = False
        else:
            return
        self._last_activity = time.monotonic()

    async def _stop_playing(self) -> None:
        if self._play_task is not None:
            await self.cancel_task(self._play_task)
            self._play_task = None

    async def _play(self) -> None:
        """The person joins, says what the file holds, waits for the answer and leaves."""
        transport = self._transport
        identity = transport.user_identity
        await transport.emit("on_participant_connected", identity)
        await transport.emit("on_first_participant_joined", identity)
        logger.debug(f"{self}: {identity} joined, playing at {self._params.speed:g}x")
        transport.started_at = time.monotonic()
        self._last_activity = transport.started_at
        try:
            await self._play_through()
        except Exception as e:
            # The person still leaves, so the session ends rather than waits forever.
            await self.push_error(f"{self}: playing stopped: {e}", exception=e)
        logger.debug(f"{self}: {identity} leaves after {transport.clock_s:.2f} s")
        await transport.emit("on_participant_disconnected", identity)

    async def _play_through(self) -> None:
        transport = self._transport
        step = 2 * round(self.sample_rate * FRAME_S)
        audio_ticks = -(-len(self._pcm) // step)
        turns = list(transport.text_turns)
        trailing = 0
        while True:
            await self._wait_for_tick(ticks_played=transport.ticks)
            while turns and turns[0].at_s <= transport.clock_s:
                await self._say(turns.pop(0).text)
            if transport.ticks >= audio_ticks and not turns:
                if self._settled(trailing * FRAME_S):
                    break
                trailing += 1
            if self._pcm:
                # Past the end of the file the slice is empty: silence.
                chunk = self._pcm[transport.ticks * step : (transport.ticks + 1) * step]
                await self._push_audio(chunk.ljust(step, b"\0"))
            transport.ticks += 1

    async def _wait_for_tick(self, *, ticks_played: int) -> None:
        due = self._transport.started_at + ticks_played * FRAME_S / self._params.speed
        # Never sleep less than zero: a pipeline that falls behind still lets others run.
        await asyncio.sleep(max(0.0, due - time.monotonic()))

    async def _push_audio(self, pcm: bytes) -> None:
        await self.push_audio_frame(
            InputAudioRawFrame(audio=pcm, sample_rate=self.sample_rate, num_channels=1)
        )

    async def _say(self, text: str) -> None:
        # A final transcript as an STT would push it; the user aggregator opens the turn on
        # it and closes it after the STT's latency budget, as for speech no VAD caught.
        await self.push_frame(
            TranscriptionFrame(
                text, self._transport.user_identity, time_now_iso8601(), finalized=True
            )
        )

    def _settled(self, trailing_s: float) -> bool:
        """Whether the person can leave: the last turn answered and all quiet."""
        params = self._params
        if trailing_s >= params.max_trailing_silence_s:
            logger.warning(f"{self}: leaving after {trailing_s:.0f} s of silence, not settled")
            return True
        if trailing_s < params.min_trailing_silence_s:
            return False
        now = time.monotonic()
        awaited = self._reply_awaited_since
        if awaited is not None and now - awaited < params.reply_wait_s:
            return False
        quiet = now - self._last_activity >= params.settle_s
        return quiet and not self._user_turn and not self._bot_speaking


class FileOutputTransport(BaseOutputTransport):
    """KANE's voice: paced like a speaker would play it, kept in a WAV file or dropped."""

    _params: FileTransportParams

    def __init__(self, transport: FileTransport, params: FileTransportParams, **kwargs):
        """Create the output of `transport`.

        Args:
            transport: The transport this is the output of.
            params: The transport's params.
            **kwargs: Passed on to `BaseOutputTransport`.
        """
        super().__init__(params, **kwargs)
        self._transport = transport
        self._wav: wave.Wave_write | None = None
        self._next_write_at = 0.0

    async def start(self, frame: StartFrame):
        """Open the bot's WAV file, if there is one."""
        await super().start(frame)
        path = self._transport.bot_audio_path
        if path is not None and self._wav is None:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._wav = wave.open(str(path), "wb")  # noqa: SIM115 - closed in _close()
            self._wav.setnchannels(self._params.audio_out_channels)
            self._wav.setsampwidth(2)
            self._wav.setframerate(self.sample_rate)
        await self.set_transport_ready(frame)

    async def stop(self, frame: EndFrame):
        """Write out what is queued, then close the file."""
        await super().stop(frame)
        self._close()

    async def cancel(self, frame: CancelFrame):
        """Close the file."""
        await super().cancel(frame)
        self._close()

    async def cleanup(self):
        """Close the file if nothing else did."""
        await super().cleanup()
        self._close()

    async def process_frame(self, frame: Frame, direction: FrameDirection):
        """An interruption drops what was queued: the pacing clock starts over."""
        await super().process_frame(frame, direction)
        if isinstance(frame, InterruptionFrame):
            self._next_write_at = 0.0

    async def write_audio_frame(self, frame: OutputAudioRawFrame) -> bool:
        """Keep (or drop) a chunk of KANE's voice, taking as long as it plays at `speed`."""
        if self._wav is not None:
            self._wav.writeframesraw(frame.audio)
        duration = len(frame.audio) / (2 * frame.num_channels * frame.sample_rate)
        # Like a speaker: a chunk is taken when the one before it has played.
        now = time.monotonic()
        starts_at = max(self._next_write_at, now)
        self._next_write_at = starts_at + duration / self._params.speed
        await asyncio.sleep(starts_at - now)
        return True

    def _close(self) -> None:
        if self._wav is not None:
            self._wav.close()
            self._wav = None


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
