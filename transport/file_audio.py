"""The two processors of a file session: the person's side played in, KANE's voice taken out.

`FileInputTransport` plays the file (or text turns) on the session clock and decides when the
person leaves; `FileOutputTransport` paces KANE's voice like a speaker and keeps it in a WAV.
Both belong to a `transport.file.FileTransport`, which makes them; see it for the whole.
"""

from __future__ import annotations

import asyncio
import time
import wave
from typing import TYPE_CHECKING

import numpy as np
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
from pipecat.processors.frame_processor import FrameDirection
from pipecat.transports.base_input import BaseInputTransport
from pipecat.transports.base_output import BaseOutputTransport
from pipecat.utils.time import time_now_iso8601

from transport.file_records import UserTurn

if TYPE_CHECKING:
    from transport.file import FileTransport, FileTransportParams

FRAME_S = 0.02
"""The person's audio goes in 20 ms frames, as a microphone sends it."""


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
