"""An in-memory transport for benchmarks: a scripted person on one side, a stopwatch on the other.

The person's microphone sends 20 ms frames in real time from the moment the pipeline starts:
silence, or the turn being spoken. `speak` plays one turn and waits for KANE's answer to be
over; it returns when the person stopped speaking, when the first frame of the bot's voice
was handed to the transport, and when the voice ended. The bot's audio is paced at real
time, as LiveKit's audio source paces it, and everything sent on the data channel is kept
with the `time.monotonic_ns()` at which it was handed over.

Times are those of the person: a turn's speech ends at the instant its last voiced sample was
captured (the microphone's schedule, not when a busy event loop got round to sending the
frame), so a worker that falls behind shows it in the latency.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from dataclasses import dataclass, field

from loguru import logger
from pipecat.frames.frames import (
    CancelFrame,
    EndFrame,
    InputAudioRawFrame,
    OutputAudioRawFrame,
    StartFrame,
    TTSAudioRawFrame,
)
from pipecat.transports.base_input import BaseInputTransport
from pipecat.transports.base_output import BaseOutputTransport
from pipecat.transports.base_transport import BaseTransport, TransportParams

from transport.base import DataHandler

FRAME_S = 0.02
"""The microphone sends 20 ms frames."""
PHASES = 8
"""Silero VAD reads 512-sample windows, 20 ms frames are 320 samples: the two line up again
every 8 frames. A turn that starts at the same frame index mod 8 meets the same windows, so
VAD ends it at the same moment; `speak(phase=...)` lets two runs compare like with like."""


@dataclass(frozen=True)
class SpokenTurn:
    """One thing the person says.

    Parameters:
        text: What the words are (what the emulated STT is scripted to hear).
        pcm: 16-bit mono PCM of the speech alone, at the transport's input rate.
        speech_end: Sample index just after the last voiced sample of `pcm`.
    """

    text: str
    pcm: bytes
    speech_end: int


@dataclass
class TurnTiming:
    """When a turn's moments happened, in `time.monotonic()` seconds.

    Parameters:
        text: What the person said.
        speech_end_s: The person stopped speaking.
        first_audio_s: The first frame of the bot's answer was handed to the transport;
            None when no answer came within the wait.
        answer_end_s: The bot's answer had stopped (its last frame was handed over).
        input_lag_max_s: The most the microphone's frames of this turn were sent late.
    """

    text: str
    speech_end_s: float
    first_audio_s: float | None = None
    answer_end_s: float | None = None
    input_lag_max_s: float = 0.0

    @property
    def voice_to_voice_s(self) -> float | None:
        """From the end of the person's speech to the first of the bot's voice."""
        if self.first_audio_s is None:
            return None
        return self.first_audio_s - self.speech_end_s


@dataclass
class _Playing:
    frames: deque[bytes]
    end_frame: int  # index of the frame that holds the last voiced sample
    end_offset_s: float  # how long before that frame's end the speech ended
    phase: int | None = None  # start on a microphone frame with this index mod PHASES
    sent: int = 0
    speech_end_s: float | None = None
    done: asyncio.Event = field(default_factory=asyncio.Event)
    lag_max_s: float = 0.0

    def starts_at(self, frame_index: int) -> bool:
        """Whether the turn may play from the microphone's frame `frame_index` on."""
        return self.sent > 0 or self.phase is None or frame_index % PHASES == self.phase


class LoopbackInput(BaseInputTransport):
    """The person's microphone: a frame every 20 ms, from the transport's start to its end."""

    def __init__(self, transport: LoopbackTransport, params: TransportParams, **kwargs):
        """Create the input of `transport`."""
        super().__init__(params, **kwargs)
        self._transport = transport
        self._mic_task: asyncio.Task | None = None

    async def start(self, frame: StartFrame):
        """Open the microphone and tell the session that the bot and the person are in."""
        await super().start(frame)
        await self.set_transport_ready(frame)
        if self._mic_task is None:
            self._mic_task = self.create_task(self._mic(), "loopback-mic")
        await self._transport.joined()

    async def stop(self, frame: EndFrame):
        """Close the microphone."""
        await self._close_mic()
        await super().stop(frame)

    async def cancel(self, frame: CancelFrame):
        """Close the microphone at once."""
        await self._close_mic()
        await super().cancel(frame)

    async def cleanup(self):
        """Close the microphone if the pipeline went away some other way."""
        await self._close_mic()
        await super().cleanup()

    async def _close_mic(self) -> None:
        if self._mic_task is not None:
            await self.cancel_task(self._mic_task)
            self._mic_task = None

    async def _mic(self) -> None:
        rate = self.sample_rate
        frame_bytes = int(rate * FRAME_S) * 2
        silence = bytes(frame_bytes)
        # Frames end on the machine's 20 ms grid, shifted by the transport's phase.
        started = (time.monotonic() // FRAME_S) * FRAME_S + self._transport.mic_phase_s % FRAME_S
        sent = 0
        while True:
            sent += 1
            due = started + sent * FRAME_S  # the end of this frame's capture
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            if self._transport.mic_closed:
                return
            playing = self._transport.playing
            audio = silence
            if playing is not None and playing.frames and playing.starts_at(sent - 1):
                audio = playing.frames.popleft()
                lag = time.monotonic() - due
                playing.lag_max_s = max(playing.lag_max_s, lag)
                if playing.sent == playing.end_frame:
                    playing.speech_end_s = due - playing.end_offset_s
                    self._transport.expect_answer()
                playing.sent += 1
                if not playing.frames:
                    playing.done.set()
            await self.push_audio_frame(
                InputAudioRawFrame(audio=audio, sample_rate=rate, num_channels=1)
            )
            self._transport.frames_in += 1
            self._transport.bytes_in += len(audio)


class LoopbackOutput(BaseOutputTransport):
    """The person's loudspeaker: takes the bot's audio at real-time pace and notes its times."""

    def __init__(self, transport: LoopbackTransport, params: TransportParams, **kwargs):
        """Create the output of `transport`."""
        super().__init__(params, **kwargs)
        self._transport = transport
        self._next_write = 0.0

    async def start(self, frame: StartFrame):
        """Ready to play."""
        await super().start(frame)
        await self.set_transport_ready(frame)

    async def stop(self, frame: EndFrame):
        """Play what is queued, then the bot leaves (as LiveKit's output does)."""
        await super().stop(frame)
        await self._transport.leaving()

    async def cancel(self, frame: CancelFrame):
        """The bot leaves at once."""
        await super().cancel(frame)
        await self._transport.leaving()

    async def write_audio_frame(self, frame: OutputAudioRawFrame) -> bool:
        """Play a chunk: note it, then take as long as it lasts (a real-time sink)."""
        now = time.monotonic()
        if isinstance(frame, TTSAudioRawFrame):
            self._transport.heard_bot(now, len(frame.audio))
        duration = len(frame.audio) / (2 * frame.sample_rate * frame.num_channels)
        if self._next_write <= now:
            self._next_write = now + duration
        else:
            await asyncio.sleep(self._next_write - now)
            self._next_write += duration
        return True


class LoopbackTransport(BaseTransport):
    """A KANE transport held in memory, driven by a benchmark (see the module's docstring).

    It satisfies `transport.base.KaneTransport`: it emits `on_connected`,
    `on_participant_connected` and `on_first_participant_joined` when its input starts,
    `on_participant_disconnected` when the person `leave`s, and `on_before_disconnect` when
    its output has played everything at the end (or is cancelled).
    """

    def __init__(
        self,
        *,
        identity: str = "person",
        params: TransportParams | None = None,
        quiet_after_s: float = 0.4,
        mic_phase_s: float = 0.0,
        name: str | None = None,
    ):
        """Create the transport.

        Args:
            identity: The person's identity (the session's user).
            params: Audio in and out are enabled whatever is given.
            quiet_after_s: The bot's answer is over when no audio has come for this long.
            mic_phase_s: Where in each 20 ms of the machine's monotonic clock (the same in
                every process) the microphone's frames are captured, whenever the input
                starts; give sessions different phases, as people's microphones have.
            name: The transport's name.
        """
        super().__init__(name=name)
        params = params or TransportParams()
        params.audio_in_enabled = True
        params.audio_out_enabled = True
        params.audio_out_end_silence_secs = 0
        self._params = params
        self._identity = identity
        self._quiet_after_s = quiet_after_s
        self.mic_phase_s = mic_phase_s
        self._input: LoopbackInput | None = None
        self._output: LoopbackOutput | None = None
        self._topics: dict[str, DataHandler] = {}
        self._ready = asyncio.Event()
        self._first_audio: float | None = None
        self._last_audio = 0.0
        self._awaiting = False
        self._answer = asyncio.Event()
        self._voice = asyncio.Event()
        self.playing: _Playing | None = None
        self.mic_closed = False
        self.frames_in = 0
        self.bytes_in = 0
        self.bot_bytes_out = 0
        self.sent: list[tuple[int, str, bytes]] = []
        self.texts_sent = 0
        self.attributes_set = 0
        for event in (
            "on_connected",
            "on_participant_connected",
            "on_first_participant_joined",
            "on_participant_disconnected",
        ):
            self._register_event_handler(event)
        # As LiveKit's: awaited just before the bot leaves, the pipeline drained up to its output.
        self._register_event_handler("on_before_disconnect", sync=True)
        self._left = False

    def input(self) -> LoopbackInput:
        """The person's microphone."""
        if self._input is None:
            self._input = LoopbackInput(self, self._params, name=self._input_name)
        return self._input

    def output(self) -> LoopbackOutput:
        """The person's loudspeaker."""
        if self._output is None:
            self._output = LoopbackOutput(self, self._params, name=self._output_name)
        return self._output

    @property
    def input_backlog(self) -> int:
        """Microphone frames waiting in Pipecat's input queue (a busy event loop's lag)."""
        queue = getattr(self._input, "_audio_in_queue", None)
        return queue.qsize() if queue is not None else 0

    # The session's side (KaneTransport).

    def on_topic(self, topic: str, handler: DataHandler) -> None:
        """Call `handler(payload, sender_identity)` for every packet the person sends on `topic`."""
        self._topics[topic] = handler

    async def publish(self, payload: bytes, *, topic: str) -> bool:
        """Take a packet for the phone, noting when it was handed over."""
        self.sent.append((time.monotonic_ns(), topic, payload))
        return True

    async def send_text(
        self,
        text: str,
        *,
        topic: str,
        attributes: dict[str, str],
        sender_identity: str | None = None,
    ) -> None:
        """Count a text stream (the phone here reads only the `kane` topic)."""
        self.texts_sent += 1

    async def set_attributes(self, attributes: dict[str, str]) -> None:
        """Count an attribute change."""
        self.attributes_set += 1

    async def close(self) -> None:
        """Nothing is held outside the pipeline."""

    # The person's side.

    async def joined(self) -> None:
        """The input started: the bot is in, and so is the person."""
        self._ready.set()
        await self._call_event_handler("on_connected")
        await self._call_event_handler("on_participant_connected", self._identity)
        await self._call_event_handler("on_first_participant_joined", self._identity)

    async def leaving(self) -> None:
        """The bot is about to leave (once): the last moment to send on the data channel."""
        if not self._left:
            self._left = True
            await self._call_event_handler("on_before_disconnect")

    async def wait_ready(self, timeout_s: float = 60.0) -> None:
        """Wait until the microphone is open."""
        await asyncio.wait_for(self._ready.wait(), timeout_s)

    async def send(self, payload: bytes, *, topic: str = "kane") -> None:
        """Send a packet from the person's phone to the session."""
        handler = self._topics.get(topic)
        if handler is not None:
            await handler(payload, self._identity)

    async def close_mic(self, settle_s: float = 0.2) -> None:
        """Stop the microphone, and give its last frames time to enter the pipeline."""
        self.mic_closed = True
        await asyncio.sleep(settle_s)

    async def leave(self) -> None:
        """The person leaves the room."""
        await self._call_event_handler("on_participant_disconnected", self._identity)

    def expect_answer(self) -> None:
        """The person stopped speaking: the next of the bot's voice answers them."""
        self._first_audio = None
        self._answer.clear()
        self._awaiting = True

    def heard_bot(self, at: float, nbytes: int) -> None:
        """Note a chunk of the bot's voice handed over at `at`."""
        self.bot_bytes_out += nbytes
        self._last_audio = at
        self._voice.set()
        if self._awaiting and self._first_audio is None:
            self._first_audio = at
            self._answer.set()

    async def speak(
        self, turn: SpokenTurn, *, phase: int | None = None, answer_timeout_s: float = 15.0
    ) -> TurnTiming:
        """Say `turn` at real-time pace, then wait until the bot's answer is over.

        Args:
            turn: What to say.
            phase: Start on a microphone frame whose index is this mod `PHASES` (at most
                140 ms later); None starts on the next frame.
            answer_timeout_s: How long after the speech to wait for the bot to start answering.

        Returns:
            The turn's times; `first_audio_s` is None when no answer came in time.
        """
        if self._input is None:
            raise RuntimeError(f"{self}: not in a pipeline")
        await self.wait_ready()
        rate = self._input.sample_rate
        step = int(rate * FRAME_S) * 2
        pcm = turn.pcm + bytes(-len(turn.pcm) % step)
        frames = deque(pcm[i : i + step] for i in range(0, len(pcm), step))
        end_byte = max(turn.speech_end, 1) * 2
        end_frame = (end_byte - 1) // step
        end_offset_s = ((end_frame + 1) * step - end_byte) / 2 / rate
        playing = _Playing(
            frames=frames, end_frame=end_frame, end_offset_s=end_offset_s, phase=phase
        )
        self._awaiting = False
        self.playing = playing
        await playing.done.wait()
        self.playing = None
        assert playing.speech_end_s is not None
        timing = TurnTiming(
            text=turn.text, speech_end_s=playing.speech_end_s, input_lag_max_s=playing.lag_max_s
        )
        try:
            await asyncio.wait_for(self._answer.wait(), answer_timeout_s)
        except TimeoutError:
            logger.warning(f"{self}: no answer to {turn.text!r} within {answer_timeout_s:g} s")
            self._awaiting = False
            return timing
        self._awaiting = False
        timing.first_audio_s = self._first_audio
        # Over when a whole `quiet_after_s` passes without a chunk of the bot's voice.
        while True:
            self._voice.clear()
            try:
                await asyncio.wait_for(self._voice.wait(), self._quiet_after_s)
            except TimeoutError:
                break
        timing.answer_end_s = self._last_audio
        return timing
