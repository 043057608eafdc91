"""Records a session's two voices, aligned on the person's clock, into an audio store."""

from __future__ import annotations

import asyncio
import functools
import itertools
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
import soxr
from loguru import logger
from pipecat.frames.frames import (
    CancelFrame,
    EndFrame,
    Frame,
    InputAudioRawFrame,
    OutputAudioRawFrame,
)
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor

from storage.audio_store import AudioStore, RecordingWriter
from storage.recording_writes import RecordingWrites

_NO_AUDIO = np.empty(0, dtype=np.int16)


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


class _Piece(NamedTuple):
    """Audio handed to the writer thread, at the rate it arrived in."""

    run: int  # the run it belongs to: audio at one rate, contiguous on its track
    rate: int
    start: int  # where it starts on its track, in track samples
    end: int  # where it ends on its track, in track samples
    pcm: bytes


@dataclass
class _Run:
    """A voice's audio at one rate, contiguous on its track, as the event loop counts it.

    Lengths on the track are computed from native lengths with integers, so the loop knows
    where everything goes without resampling anything.
    """

    id: int
    rate: int
    track_rate: int
    start: int  # where the run starts on the track, in track samples
    received: int = 0  # native samples received
    sent: int = 0  # native samples handed to the writer thread
    pending: bytearray = field(default_factory=bytearray)  # received, not handed over yet

    def position(self, native: int) -> int:
        """Where the run's first `native` samples end on the track."""
        return self.start + native * self.track_rate // self.rate

    @property
    def end(self) -> int:
        """Where the audio received so far ends on the track."""
        return self.position(self.received)

    def fitting(self, position: int) -> int:
        """How many native samples received end on the track by `position`."""
        if position <= self.start:
            return 0
        return min(self.received, ((position - self.start + 1) * self.rate - 1) // self.track_rate)


class _TrackFile:
    """One track's file, fed and owned by the writer thread, which resamples for it.

    Each run at another rate than the track's goes through its own soxr stream (HQ: plenty
    for a recording). Stream output per batch is not exactly proportional to its input, so
    the file is kept to the lengths the event loop counted: audio that comes out ahead of the
    count waits, and at the end of a run its tail is trimmed or padded with silence to the
    count.
    """

    def __init__(self, open_file: Callable[[], RecordingWriter], rate: int):
        self._open_file = open_file
        self._file: RecordingWriter | None = None
        self._rate = rate
        self._written = 0  # samples in the file
        self._run = -1
        self._stream: soxr.ResampleStream | None = None
        self._end = 0  # where the current run ends so far, as the loop counted it
        self._held = bytearray()  # resampled audio beyond that count

    def write(self, pieces: list[_Piece]) -> None:
        """Write a batch, one resampling per run in it."""
        for run, group in itertools.groupby(pieces, key=lambda piece: piece.run):
            parts = list(group)
            pcm = b"".join(piece.pcm for piece in parts)
            self._write_run(run, parts[0].rate, parts[0].start, parts[-1].end, pcm)

    def finish(self, length: int) -> None:
        """End the track at exactly `length` samples."""
        self._end_run()
        self._pad_to(length)

    def _write_run(self, run: int, rate: int, start: int, end: int, pcm: bytes) -> None:
        if run != self._run:
            # Audio at the old rate (or before a silence) is written to its end first.
            self._end_run()
            self._pad_to(start)
            self._run = run
            if rate != self._rate:
                self._stream = soxr.ResampleStream(rate, self._rate, 1, "int16", "HQ")
        self._end = end
        if self._stream is None:
            self._append(pcm)
            return
        out = self._stream.resample_chunk(np.frombuffer(pcm, dtype=np.int16))
        self._held += out.tobytes()
        self._release_held()

    def _end_run(self) -> None:
        if self._stream is not None:
            self._held += self._stream.resample_chunk(_NO_AUDIO, last=True).tobytes()
            self._release_held()
            self._held.clear()  # a sample or so past the count, from rounding
            self._stream = None
        self._pad_to(self._end)

    def _release_held(self) -> None:
        room = 2 * (self._end - self._written)
        if room > 0 and self._held:
            self._append(bytes(self._held[:room]))
            del self._held[:room]

    def _pad_to(self, position: int) -> None:
        if position > self._written:
            self._append(bytes(2 * (position - self._written)))

    def _append(self, pcm: bytes) -> None:
        if not pcm:
            return
        if self._file is None:
            self._file = self._open_file()
        self._file.write(pcm)
        self._written += len(pcm) // 2


class AudioRecorder(FrameProcessor):
    """Writes the person's and KANE's audio as two tracks of equal length.

    Sits after the output transport, and takes KANE's audio out of the pipeline there (the
    person's is handed over by `UserAudioStop`). The person's microphone arrives at real-time
    pace, so its track is the session's clock. KANE's audio is handed to LiveKit ahead of
    playback (the room buffers it), so each burst is placed where the person's track stands when it
    starts, and the bot's track is only written up to the person's; at the end, whatever the
    bot had queued beyond the person's presence is dropped. Files are written in a thread, in
    batches handed over by the process's `RecordingWrites` (one hand-off for all of its
    sessions every half second).

    Audio is kept at the rate it arrives in until that thread, which resamples each batch to
    the tracks' rate with soxr streams of its own (HQ quality: plenty for a recording), so
    nothing on the event loop resamples. The loop places the audio in track samples counted
    from native lengths, and the thread keeps each track to that count, so the two tracks
    end with exactly the same number of samples. A change of rate mid-session (a fallback
    voice) starts a new stream once the audio at the old rate is written.
    """

    def __init__(
        self,
        *,
        session_id: str,
        store: AudioStore,
        writes: RecordingWrites | None = None,
        sample_rate: int = 16000,
        keep_bot_audio: bool = False,
        **kwargs,
    ):
        """Prepare to record.

        Args:
            session_id: The session recorded.
            store: Where the recordings go.
            writes: What hands the audio to the writer thread, in batches (shared by the
                process's recorders); one of its own, every 0.5 s, if None. The end writes
                at once.
            sample_rate: The rate of both tracks.
            keep_bot_audio: Pass KANE's played audio on. Off: below the recorder only the
                assistant aggregator and the pipeline's end would get it, and neither wants
                it (each 20 ms frame would cost a queue and a task switch there).
            **kwargs: Passed on to `FrameProcessor`.
        """
        # Direct mode: frames are handled in the task that pushes them, without a queue and
        # a task switch of our own per frame; nothing here waits on the frames' path.
        kwargs.setdefault("enable_direct_mode", True)
        super().__init__(**kwargs)
        self._session_id = session_id
        self._store = store
        self._rate = sample_rate
        self._run_ids = itertools.count()
        self._user_run: _Run | None = None
        self._user_len = 0  # length of the person's track so far, in samples
        self._bot_runs: deque[_Run] = deque()  # the bot's runs not all handed over; last: current
        self._bot_len = 0  # length of the bot's track, including audio not written yet
        self._final_len: int | None = None  # both tracks' length, once the session ends
        self._keep_bot_audio = keep_bot_audio
        self._writes = writes or RecordingWrites()
        self._batch: dict[str, list[_Piece]] = {"user": [], "bot": []}  # not handed over yet
        self._writers: dict[str, RecordingWriter] = {}
        self._files = {
            track: _TrackFile(self._opener(track), sample_rate) for track in ("user", "bot")
        }
        self._last_written = False
        self._result: Recordings | None = None

    async def process_frame(self, frame: Frame, direction: FrameDirection):
        """Record audio frames; pass on every frame but KANE's played audio."""
        await super().process_frame(frame, direction)
        if isinstance(frame, InputAudioRawFrame):
            self.add_user_audio(frame)
        elif isinstance(frame, OutputAudioRawFrame) and direction == FrameDirection.DOWNSTREAM:
            self._add_bot(frame)
            if self._keep_bot_audio:
                await self.push_frame(frame, direction)
            return
        elif isinstance(frame, EndFrame | CancelFrame):
            self._finish_tracks()
        await self.push_frame(frame, direction)

    def add_user_audio(self, frame: InputAudioRawFrame) -> None:
        """Record the person's audio handed over by `UserAudioStop` (it does not reach here).

        Never waits: it runs for every frame of the microphone, in the aggregator's task.
        """
        run = self._user_run
        if run is None or frame.sample_rate != run.rate:
            run = self._user_run = self._new_run(frame.sample_rate, self._user_len)
        start = self._user_len
        run.received += len(frame.audio) // 2
        self._user_len = run.end
        self._queue_write("user", _Piece(run.id, run.rate, start, self._user_len, frame.audio))
        self._release_bot_audio()

    def _add_bot(self, frame: OutputAudioRawFrame) -> None:
        run = self._bot_runs[-1] if self._bot_runs else None
        if run is None or self._bot_len < self._user_len or frame.sample_rate != run.rate:
            # After a silence, the bot's audio starts where the person's track is; after a
            # change of rate, where the audio at the old rate ends.
            run = self._new_run(frame.sample_rate, max(self._bot_len, self._user_len))
            self._bot_runs.append(run)
        run.pending.extend(frame.audio)
        run.received += len(frame.audio) // 2
        self._bot_len = run.end
        self._release_bot_audio()

    def _new_run(self, rate: int, start: int) -> _Run:
        return _Run(id=next(self._run_ids), rate=rate, track_rate=self._rate, start=start)

    def _release_bot_audio(self) -> None:
        """Hand the writer the bot's audio up to where the person's track stands."""
        while self._bot_runs:
            run = self._bot_runs[0]
            upto = run.fitting(self._user_len)
            if upto > run.sent:
                size = 2 * (upto - run.sent)
                piece = _Piece(
                    run.id,
                    run.rate,
                    run.position(run.sent),
                    run.position(upto),
                    bytes(run.pending[:size]),
                )
                del run.pending[:size]
                run.sent = upto
                self._queue_write("bot", piece)
            if run.sent < run.received or len(self._bot_runs) == 1:
                return
            self._bot_runs.popleft()

    def _finish_tracks(self) -> None:
        if self._final_len is not None:
            return
        # The writer ends both tracks at the person's length: the bot's in silence (or in the
        # audio it had queued) up to there; what it queued beyond is dropped.
        self._bot_runs.clear()
        self._bot_len = self._final_len = self._user_len

    def _queue_write(self, track: str, piece: _Piece) -> None:
        if not piece.pcm or self._final_len is not None:
            return
        batch = self._batch
        if not batch["user"] and not batch["bot"]:
            self._writes.due(self)
        batch[track].append(piece)

    def take_writes(self) -> Callable[[], None] | None:
        """The audio gathered since the last call, as one job for the writer thread."""
        if not self._batch["user"] and not self._batch["bot"]:
            return None
        return functools.partial(self._write, self._take_batch(), None)

    async def _write_last(self) -> None:
        """End both tracks and write what is left, at once (once)."""
        self._finish_tracks()
        if self._last_written:
            return
        self._last_written = True
        await self._writes.run_now(
            functools.partial(self._write, self._take_batch(), self._final_len)
        )

    def _take_batch(self) -> dict[str, list[_Piece]]:
        batch, self._batch = self._batch, {"user": [], "bot": []}
        return batch

    def _write(self, batch: dict[str, list[_Piece]], final_len: int | None) -> None:
        """Resample and write a batch (in the writer thread); at the end, close both tracks."""
        try:
            for track, pieces in batch.items():
                self._files[track].write(pieces)
                if final_len is not None:
                    self._files[track].finish(final_len)
        except Exception as e:
            logger.error(f"{self}: recording of {self._session_id} failed: {e}")

    def _opener(self, track: str) -> Callable[[], RecordingWriter]:
        def open_file() -> RecordingWriter:
            writer = self._writers[track] = self._store.open(self._session_id, track, self._rate)
            return writer

        return open_file

    async def cleanup(self):
        """Write what is left before the processor's tasks are torn down."""
        try:
            await asyncio.wait_for(self._write_last(), timeout=10)
        except Exception as e:
            logger.error(f"{self}: recording of {self._session_id} did not finish: {e!r}")
        await super().cleanup()

    async def close(self) -> Recordings:
        """Finish both recordings (after the pipeline has ended); returns where they are."""
        if self._result is not None:
            return self._result
        await self._write_last()  # written already, unless the pipeline never ran
        urls = {
            track: await self._writes.run_now(writer.close)
            for track, writer in self._writers.items()
        }
        self._result = Recordings(
            user_url=urls.get("user"),
            bot_url=urls.get("bot"),
            duration_s=self._user_len / self._rate,
        )
        return self._result
