"""An open microphone track: silence, or an utterance sent at real-time pace."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import numpy as np
from livekit import rtc

from client.audio import DEFAULT_VOICE_THRESHOLD_DBFS, voiced_span


@dataclass
class SpeechTiming:
    """When an utterance was heard on the microphone track.

    Parameters:
        started_at: Monotonic time its first voiced sample was sent.
        ended_at: Monotonic time its last voiced sample was sent.
        duration_s: Length of the whole clip, silence included.
    """

    started_at: float
    ended_at: float
    duration_s: float


@dataclass
class _Utterance:
    samples: np.ndarray
    voiced_start: int
    voiced_end: int
    done: asyncio.Future[SpeechTiming]
    position: int = 0
    started_at: float | None = None
    ended_at: float | None = None


class Microphone:
    """A published mono audio track that never goes quiet, like a phone's open mic.

    It sends a frame every ``frame_ms`` on a steady clock: silence, or the next piece of the
    utterance being spoken. It notes when each utterance's voiced part is sent, counting the
    audio still queued in the source.

    Args:
        sample_rate: Track sample rate.
        frame_ms: Frame length, 10 or 20 ms.
        voice_threshold_dbfs: RMS level above which audio counts as speech.
    """

    def __init__(
        self,
        *,
        sample_rate: int = 48000,
        frame_ms: int = 20,
        voice_threshold_dbfs: float = DEFAULT_VOICE_THRESHOLD_DBFS,
    ) -> None:
        if frame_ms not in (10, 20):
            raise ValueError("frame_ms must be 10 or 20")
        self._sample_rate = sample_rate
        self._frame_samples = sample_rate * frame_ms // 1000
        self._threshold = voice_threshold_dbfs
        self._source: rtc.AudioSource | None = None
        self._task: asyncio.Task[None] | None = None
        self._utterances: asyncio.Queue[_Utterance] = asyncio.Queue()
        self._current: _Utterance | None = None

    async def publish(self, participant: rtc.LocalParticipant) -> None:
        """Publish the track as the participant's microphone and start sending."""
        self._source = rtc.AudioSource(self._sample_rate, 1, queue_size_ms=100)
        track = rtc.LocalAudioTrack.create_audio_track("microphone", self._source)
        options = rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_MICROPHONE)
        await participant.publish_track(track, options)
        self._task = asyncio.create_task(self._run(), name="reference-microphone")

    async def speak(self, samples: np.ndarray) -> SpeechTiming:
        """Send mono int16 samples (at the track's rate); return once all were sent."""
        if self._task is None:
            raise RuntimeError("publish() first")
        span = voiced_span(samples, self._sample_rate, threshold_dbfs=self._threshold)
        first, end = span if span is not None else (0, samples.size)
        done: asyncio.Future[SpeechTiming] = asyncio.get_running_loop().create_future()
        await self._utterances.put(_Utterance(samples.astype(np.int16), first, end, done))
        return await done

    async def close(self) -> None:
        """Stop sending and release the source."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        pending = [self._current] if self._current else []
        while not self._utterances.empty():
            pending.append(self._utterances.get_nowait())
        for utterance in pending:
            if utterance is not None and not utterance.done.done():
                utterance.done.cancel()
        if self._source is not None:
            await self._source.aclose()
            self._source = None

    async def _run(self) -> None:
        assert self._source is not None
        frame_s = self._frame_samples / self._sample_rate
        next_at = time.monotonic()
        while True:
            samples = self._next_frame()
            frame = rtc.AudioFrame(samples.tobytes(), self._sample_rate, 1, self._frame_samples)
            await self._source.capture_frame(frame)
            next_at += frame_s
            delay = next_at - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            elif delay < -0.2:  # the loop stalled: resync instead of bursting
                next_at = time.monotonic()

    def _next_frame(self) -> np.ndarray:
        if self._current is None and not self._utterances.empty():
            self._current = self._utterances.get_nowait()
        utterance = self._current
        if utterance is None:
            return np.zeros(self._frame_samples, dtype=np.int16)
        assert self._source is not None
        start = utterance.position
        stop = start + self._frame_samples
        chunk = utterance.samples[start:stop]
        # The frame plays once what is already queued in the source has played.
        sent_at = time.monotonic() + self._source.queued_duration
        if utterance.started_at is None and start <= utterance.voiced_start < stop:
            utterance.started_at = sent_at + (utterance.voiced_start - start) / self._sample_rate
        if utterance.ended_at is None and start < utterance.voiced_end <= stop:
            utterance.ended_at = sent_at + (utterance.voiced_end - start) / self._sample_rate
        utterance.position = stop
        if stop >= utterance.samples.size:
            self._current = None
            self._finish(utterance, sent_at + chunk.size / self._sample_rate)
        if chunk.size < self._frame_samples:
            chunk = np.concatenate([chunk, np.zeros(self._frame_samples - chunk.size, np.int16)])
        return chunk

    def _finish(self, utterance: _Utterance, end: float) -> None:
        timing = SpeechTiming(
            started_at=utterance.started_at if utterance.started_at is not None else end,
            ended_at=utterance.ended_at if utterance.ended_at is not None else end,
            duration_s=utterance.samples.size / self._sample_rate,
        )
        if not utterance.done.done():
            utterance.done.set_result(timing)
