"""Records a session's two voices, aligned on the person's clock, into an audio store."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass

from loguru import logger
from pipecat.audio.utils import create_stream_resampler
from pipecat.frames.frames import (
    CancelFrame,
    EndFrame,
    Frame,
    InputAudioRawFrame,
    OutputAudioRawFrame,
)
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor

from storage.audio_store import AudioStore, RecordingWriter


@dataclass(frozen=True)
class Recordings:
    """Where a session's recordings are, and how long they are.

    Parameters:
        user_url: The person's track.
        bot_url: KANE's track.
        duration_s: Length of each track.
    """

    user_url: str | None
    bot_url: str | None
    duration_s: float


class AudioRecorder(FrameProcessor):
    """Writes the person's and KANE's audio as two tracks of equal length.

    Sits after the output transport. The person's microphone arrives at real-time pace, so
    its track is the session's clock. KANE's audio is handed to LiveKit ahead of playback (the
    room buffers it), so each burst is placed where the person's track stands when it
    starts, and the bot's track is only written up to the person's; at the end, whatever the
    bot had queued beyond the person's presence is dropped. Files are written in a thread, in
    batches every `write_every_s`.
    """

    def __init__(
        self,
        *,
        session_id: str,
        store: AudioStore,
        sample_rate: int = 16000,
        write_every_s: float = 0.5,
        **kwargs,
    ):
        """Prepare to record.

        Args:
            session_id: The session recorded.
            store: Where the recordings go.
            sample_rate: The rate of both tracks.
            write_every_s: Audio is written in batches this far apart (one hand-off to a
                thread per batch, not per 20 ms frame); the end writes at once.
            **kwargs: Passed on to `FrameProcessor`.
        """
        # Direct mode: frames are handled in the task that pushes them, without a queue and
        # a task switch of our own per frame; nothing here waits on the frames' path.
        kwargs.setdefault("enable_direct_mode", True)
        super().__init__(**kwargs)
        self._session_id = session_id
        self._store = store
        self._rate = sample_rate
        self._user_resampler = create_stream_resampler()
        self._bot_resampler = create_stream_resampler()
        self._user_bytes = 0  # length of the person's track so far
        self._bot_bytes = 0  # length of the bot's track, including audio not written yet
        self._bot_pending = bytearray()  # bot audio ahead of the person's track
        self._write_every_s = write_every_s
        self._writes: asyncio.Queue[tuple[str, bytes] | None] = asyncio.Queue()
        self._ending = asyncio.Event()
        self._writers: dict[str, RecordingWriter] = {}
        self._writer_task: asyncio.Task | None = None
        self._finished = False
        self._result: Recordings | None = None

    async def process_frame(self, frame: Frame, direction: FrameDirection):
        """Record audio frames and pass every frame on."""
        await super().process_frame(frame, direction)
        if isinstance(frame, InputAudioRawFrame):
            await self.add_user_audio(frame)
        elif isinstance(frame, OutputAudioRawFrame) and direction == FrameDirection.DOWNSTREAM:
            await self._add_bot(frame)
        elif isinstance(frame, EndFrame | CancelFrame):
            self._finish_tracks()
        await self.push_frame(frame, direction)

    async def add_user_audio(self, frame: InputAudioRawFrame) -> None:
        """Record the person's audio handed over by `UserAudioStop` (it does not reach here)."""
        audio = frame.audio
        if frame.sample_rate != self._rate:
            audio = await self._user_resampler.resample(audio, frame.sample_rate, self._rate)
        self._queue_write("user", audio)
        self._user_bytes += len(audio)
        self._release_bot_audio()

    async def _add_bot(self, frame: OutputAudioRawFrame) -> None:
        audio = frame.audio
        if frame.sample_rate != self._rate:
            audio = await self._bot_resampler.resample(audio, frame.sample_rate, self._rate)
        if self._bot_bytes < self._user_bytes:
            # The bot was silent until now: its audio starts where the person's track is.
            silence = self._user_bytes - self._bot_bytes
            self._bot_pending.extend(bytes(silence))
            self._bot_bytes += silence
        self._bot_pending.extend(audio)
        self._bot_bytes += len(audio)
        self._release_bot_audio()

    def _release_bot_audio(self) -> None:
        """Write the bot's audio up to where the person's track stands."""
        written = self._bot_bytes - len(self._bot_pending)
        ready = min(self._user_bytes - written, len(self._bot_pending))
        if ready > 0:
            self._queue_write("bot", bytes(self._bot_pending[:ready]))
            del self._bot_pending[:ready]

    def _finish_tracks(self) -> None:
        if self._finished:
            return
        self._finished = True
        written = self._bot_bytes - len(self._bot_pending)
        if written < self._user_bytes:
            # The bot's track ends in silence (or its queued audio) up to the person's length.
            tail = bytes(self._bot_pending[: self._user_bytes - written])
            self._queue_write("bot", tail + bytes(self._user_bytes - written - len(tail)))
        self._bot_pending.clear()
        self._bot_bytes = self._user_bytes
        self._writes.put_nowait(None)
        self._ending.set()

    def _queue_write(self, track: str, pcm: bytes) -> None:
        if not pcm:
            return
        if self._writer_task is None:
            self._writer_task = self.create_task(self._write_loop(), "recorder-writes")
        self._writes.put_nowait((track, pcm))

    async def _write_loop(self) -> None:
        chunks: dict[str, list[bytes]] = {"user": [], "bot": []}
        done = False
        while not done:
            item = await self._writes.get()
            # Let a batch gather (or the end come), then write it in one go off the event loop.
            if item is not None and not self._ending.is_set():
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self._write_every_s):
                        await self._ending.wait()
            while True:
                if item is None:
                    done = True
                else:
                    chunks[item[0]].append(item[1])
                if self._writes.empty():
                    break
                item = self._writes.get_nowait()
            batch = {track: b"".join(parts) for track, parts in chunks.items() if parts}
            chunks = {"user": [], "bot": []}
            try:
                await asyncio.to_thread(self._write, batch)
            except Exception as e:
                logger.error(f"{self}: recording of {self._session_id} failed: {e}")

    def _write(self, batch: dict[str, bytes]) -> None:
        for track, pcm in batch.items():
            if track not in self._writers:
                self._writers[track] = self._store.open(self._session_id, track, self._rate)
            self._writers[track].write(pcm)

    async def cleanup(self):
        """Let the queued writes finish before the processor's tasks are torn down."""
        self._finish_tracks()
        if self._writer_task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._writer_task), timeout=10)
            except Exception as e:
                logger.error(f"{self}: recording of {self._session_id} did not finish: {e!r}")
        await super().cleanup()

    async def close(self) -> Recordings:
        """Finish both recordings (after the pipeline has ended); returns where they are."""
        if self._result is not None:
            return self._result
        urls = {
            track: await asyncio.to_thread(writer.close) for track, writer in self._writers.items()
        }
        self._result = Recordings(
            user_url=urls.get("user"),
            bot_url=urls.get("bot"),
            duration_s=self._user_bytes / 2 / self._rate,
        )
        return self._result
