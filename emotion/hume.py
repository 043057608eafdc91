"""Emotion from Hume's realtime Expression Measurement API, streamed while the person talks."""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import time
from collections import deque
from typing import Any

import numpy as np
import soxr
from hume_expression_measurement import (
    AsyncExpressionMeasurementClient,
    AudioConfigUpdate,
    AudioMeasurementResult,
    AudioSessionClosed,
    AudioSessionCreated,
    AudioSessionUpdate,
    AudioSessionUpdated,
    Error,
    ExpressionMeasurementClientEnvironment,
    SessionClose,
    UtteranceEnd,
    UtteranceStart,
)
from hume_expression_measurement.core.api_error import ApiError
from loguru import logger

from emotion.analyzer import LABELS, AnalyzerFailed, EmotionEstimate, Label, TurnAudio

HUME_URL = "wss://api.cloud.hume.ai"
RATE = 16_000
_BYTES_PER_MS = 2 * RATE // 1000
_FRAME_BYTES = 2 * RATE // 10  # Hume suggests ~100 ms frames.

# Hume's expression names that speak for each of our labels. The API scores up to 415 names,
# lowercase (``joy``, ``anger``, ``neutral`` ...); these are the emotion words of its earlier
# prosody model, lowercased. Names not listed here are ignored, as Hume advises for new ones.
LABEL_EXPRESSIONS: dict[Label, tuple[str, ...]] = {
    "calm": ("calmness", "contentment", "relief", "satisfaction", "serenity"),
    "excited": ("excitement", "joy", "triumph", "ecstasy", "eagerness", "enthusiasm"),
    "stressed": ("anxiety", "distress", "fear", "nervousness", "panic", "horror"),
    "tired": ("tiredness", "boredom", "exhaustion", "sleepiness"),
    "frustrated": ("anger", "annoyance", "disappointment", "frustration", "irritation"),
    "uncertain": ("confusion", "doubt", "awkwardness", "hesitation", "uncertainty"),
    "neutral": ("neutral",),
}
_LABEL_OF = {name: label for label, names in LABEL_EXPRESSIONS.items() for name in names}

# (valence -1..1, arousal 0..1) of the expressions that move the needle; others are ignored.
# fmt: off
VALENCE_AROUSAL: dict[str, tuple[float, float]] = {
    "calmness": (0.4, 0.15), "contentment": (0.6, 0.3), "relief": (0.5, 0.3),
    "satisfaction": (0.6, 0.4), "serenity": (0.5, 0.1),
    "excitement": (0.6, 0.9), "joy": (0.8, 0.7), "triumph": (0.7, 0.85), "ecstasy": (0.8, 0.9),
    "eagerness": (0.5, 0.75), "enthusiasm": (0.6, 0.8), "amusement": (0.7, 0.6),
    "interest": (0.3, 0.55),
    "anxiety": (-0.6, 0.75), "distress": (-0.7, 0.8), "fear": (-0.7, 0.85),
    "nervousness": (-0.5, 0.7), "panic": (-0.8, 0.95), "horror": (-0.8, 0.9),
    "tiredness": (-0.2, 0.05), "boredom": (-0.3, 0.1), "exhaustion": (-0.4, 0.05),
    "sleepiness": (-0.1, 0.05), "sadness": (-0.7, 0.2),
    "anger": (-0.7, 0.9), "annoyance": (-0.5, 0.6), "disappointment": (-0.5, 0.35),
    "frustration": (-0.6, 0.7), "irritation": (-0.5, 0.6),
    "confusion": (-0.2, 0.5), "doubt": (-0.2, 0.35), "awkwardness": (-0.3, 0.45),
    "hesitation": (-0.1, 0.35), "uncertainty": (-0.2, 0.4),
    "neutral": (0.0, 0.35),
}
# fmt: on


def _http_and_ws(base_url: str) -> tuple[str, str]:
    root = base_url.rstrip("/")
    scheme, _, rest = root.partition("://")
    secure = scheme in ("https", "wss")
    return f"{'https' if secure else 'http'}://{rest}", f"{'wss' if secure else 'ws'}://{rest}"


class HumeEmotionAnalyzer:
    """Streams the person's audio to Hume and reads each turn from the measurements.

    ``start`` opens a realtime session (``/v1/expression/audio/realtime``) and configures it;
    ``feed`` queues audio (resampled to 16 kHz) that a sender task streams at real-time pace;
    a receiver task keeps the ``measurement.result`` messages; ``analyze_turn`` folds the
    ones that overlap the turn into our labels. Once the session drops or ends with an
    error, ``feed`` does nothing and ``analyze_turn`` raises ``AnalyzerFailed``.
    """

    name = "hume"

    def __init__(
        self,
        api_key: str,
        *,
        base_url: str | None = None,
        measurement_timer_ms: int = 3000,
        max_queue_s: float = 5.0,
        result_wait_s: float = 0.3,
        connect_timeout_s: float = 5.0,
        burst_s: float = 0.1,
    ) -> None:
        """Create the analyzer (nothing connects until ``start``).

        Args:
            api_key: Hume API key (sent as ``X-Hume-Api-Key``; never logged).
            base_url: Root of the API, ``wss://``/``https://`` (or ``ws``/``http`` for an
                emulator); Hume's production host by default.
            measurement_timer_ms: Speech between interval measurements (3000..10000).
            max_queue_s: Audio held while the sender catches up; older audio is dropped.
            result_wait_s: How long ``analyze_turn`` waits for the turn's last results.
            connect_timeout_s: Limit on the handshake and the session set-up.
            burst_s: How far ahead of real time the sender may get.
        """
        http_url, ws_url = _http_and_ws(base_url or HUME_URL)
        environment = ExpressionMeasurementClientEnvironment(base=http_url, production=ws_url)
        self._client = AsyncExpressionMeasurementClient(api_key=api_key, environment=environment)
        self._timer_ms = measurement_timer_ms
        self._max_queue_bytes = int(max_queue_s * RATE) * 2
        self._result_wait_s = result_wait_s
        self._connect_timeout_s = connect_timeout_s
        self._burst_s = burst_s
        self._stack = contextlib.AsyncExitStack()
        self._socket: Any = None
        self._tasks: list[asyncio.Task[None]] = []
        self._queue: deque[bytes] = deque()
        self._queued_bytes = 0
        self._data = asyncio.Event()
        self._news = asyncio.Event()
        self._resampler: Any = None
        self._resampler_rate = RATE
        self._odd = b""
        # Stream position (ms of audio Hume will have received) at each feed, by time.
        self._fed_at: deque[float] = deque(maxlen=30_000)
        self._fed_end_ms: deque[float] = deque(maxlen=30_000)
        self._queued_total = 0
        self._sent_bytes = 0
        self.dropped_bytes = 0
        self.dropped_chunks = 0
        self._results: deque[AudioMeasurementResult] = deque(maxlen=1000)
        self._open_utterance: int | None = None
        self._failure: str | None = None
        self._closing = False

    def __str__(self) -> str:
        return "HumeEmotionAnalyzer"

    @property
    def failed(self) -> bool:
        """Whether the session is gone (dropped, refused or ended with an error)."""
        return self._failure is not None

    async def start(self) -> None:
        """Open the session, configure 16 kHz mono PCM, and start sending and receiving.

        Raises:
            AnalyzerFailed: If the handshake is refused or the session cannot be set up.
        """
        try:
            async with asyncio.timeout(self._connect_timeout_s):
                self._socket = await self._stack.enter_async_context(self._client.audio.connect())
                created = await self._socket.recv()
                if not isinstance(created, AudioSessionCreated):
                    raise AnalyzerFailed(f"expected session.created, got {_kind(created)}")
                audio = AudioConfigUpdate(
                    type="audio/pcm", encoding="s16le", sample_rate=RATE, channels=1
                )
                update = AudioSessionUpdate(
                    type="session.update", audio=audio, measurement_timer_ms=self._timer_ms
                )
                await self._socket.send_audio_session_update(update)
                updated = await self._socket.recv()
                if not isinstance(updated, AudioSessionUpdated):
                    raise AnalyzerFailed(f"session.update refused: {_kind(updated)}")
        except Exception as e:
            await self._fail(_reason(e))
            with contextlib.suppress(Exception):
                await self._stack.aclose()
            raise AnalyzerFailed(self._failure) from e
        logger.info(f"{self}: session {created.session_id} open")
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._send_loop()), loop.create_task(self._receive_loop())]

    def feed(self, pcm: bytes, sample_rate: int) -> None:
        """Queue the person's audio for Hume (never blocks; a no-op once the session is gone).

        Args:
            pcm: 16-bit mono little-endian samples.
            sample_rate: Their rate; other rates than 16 kHz are resampled.
        """
        if self._failure is not None or self._closing or not pcm:
            return
        data = self._odd + pcm
        cut = len(data) - len(data) % 2
        data, self._odd = data[:cut], data[cut:]
        if sample_rate != RATE:
            data = self._resample(data, sample_rate)
        if not data:
            return
        self._queue.append(data)
        self._queued_bytes += len(data)
        self._queued_total += len(data)
        while self._queued_bytes > self._max_queue_bytes and len(self._queue) > 1:
            dropped = self._queue.popleft()
            self._queued_bytes -= len(dropped)
            self.dropped_bytes += len(dropped)
            self.dropped_chunks += 1
            if self.dropped_chunks % 100 == 1:
                logger.warning(f"{self}: behind real time; dropped {self.dropped_chunks} chunks")
        self._fed_at.append(time.monotonic())
        self._fed_end_ms.append((self._queued_total - self.dropped_bytes) / _BYTES_PER_MS)
        self._data.set()

    async def analyze_turn(self, turn: TurnAudio) -> EmotionEstimate:
        """Fold the measurements that overlap the turn into an estimate.

        Raises:
            AnalyzerFailed: If the session has dropped or ended.
        """
        self._raise_if_failed()
        start_ms, end_ms = self._span(turn)
        deadline = time.monotonic() + self._result_wait_s
        while not self._settled(end_ms) and time.monotonic() < deadline:
            self._news.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._news.wait(), deadline - time.monotonic())
            self._raise_if_failed()
        self._raise_if_failed()
        return self._estimate(start_ms, end_ms)

    async def close(self) -> None:
        """End the session politely (``session.close``), then release the connection."""
        if self._closing:
            return
        self._closing = True
        sender = self._tasks[0] if self._tasks else None
        if sender is not None:
            sender.cancel()
        if self._socket is not None and self._failure is None:
            with contextlib.suppress(Exception):
                await self._socket.send_audio_session_close(SessionClose(type="session.close"))
                receiver = self._tasks[1]
                await asyncio.wait({receiver}, timeout=1.0)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        with contextlib.suppress(Exception):
            await self._stack.aclose()
        logger.debug(f"{self}: closed")

    # Sending.

    def _resample(self, data: bytes, rate: int) -> bytes:
        if self._resampler is None or self._resampler_rate != rate:
            self._resampler = soxr.ResampleStream(rate, RATE, 1, dtype="int16")
            self._resampler_rate = rate
        samples = np.frombuffer(data, dtype="<i2")
        return bytes(self._resampler.resample_chunk(samples).astype("<i2").tobytes())

    async def _send_loop(self) -> None:
        clock = time.monotonic()  # when the audio sent so far has finished "playing"
        try:
            while True:
                await self._data.wait()
                if not self._queue:
                    self._data.clear()
                    continue
                frame = self._take_frame()
                now = time.monotonic()
                clock = max(clock, now)
                ahead = clock - now - self._burst_s
                if ahead > 0:
                    await asyncio.sleep(ahead)
                await self._socket.send_audio_frame(frame)
                clock += len(frame) / 2 / RATE
                self._sent_bytes += len(frame)
        except asyncio.CancelledError:
            raise
        except Exception as e:
            await self._fail(f"sending audio failed: {_reason(e)}")

    def _take_frame(self) -> bytes:
        parts: list[bytes] = []
        size = 0
        while self._queue and size < _FRAME_BYTES:
            chunk = self._queue.popleft()
            room = _FRAME_BYTES - size
            if len(chunk) > room:
                self._queue.appendleft(chunk[room:])
                chunk = chunk[:room]
            parts.append(chunk)
            size += len(chunk)
        self._queued_bytes -= size
        return b"".join(parts)

    # Receiving.

    async def _receive_loop(self) -> None:
        try:
            async for message in self._socket:
                if isinstance(message, AudioMeasurementResult):
                    self._results.append(message)
                elif isinstance(message, UtteranceStart):
                    self._open_utterance = message.utterance_id
                elif isinstance(message, UtteranceEnd):
                    self._open_utterance = None
                elif isinstance(message, Error):
                    if not message.retryable:
                        await self._fail(f"Hume ended the session: {message.code}")
                        return
                    logger.warning(f"{self}: Hume rejected a frame: {message.code}")
                elif isinstance(message, AudioSessionClosed):
                    await self._fail(f"Hume closed the session ({message.reason})")
                    return
                self._news.set()
            await self._fail("the connection closed")
        except asyncio.CancelledError:
            raise
        except Exception as e:
            await self._fail(f"the connection dropped: {_reason(e)}")

    async def _fail(self, reason: str) -> None:
        if self._failure is None:
            self._failure = reason
            if not self._closing:
                logger.warning(f"{self}: {reason}; no more Hume estimates")
        self._queue.clear()
        self._queued_bytes = 0
        self._news.set()

    def _raise_if_failed(self) -> None:
        if self._failure is not None:
            raise AnalyzerFailed(self._failure)
        if self._closing:
            raise AnalyzerFailed("closed")

    # Turning measurements into an estimate.

    def _position_ms(self, at: float) -> float:
        """Ms of stream audio fed up to the monotonic time ``at``."""
        index = bisect.bisect_right(self._fed_at, at)
        return self._fed_end_ms[index - 1] if index else 0.0

    def _span(self, turn: TurnAudio) -> tuple[float, float]:
        fed_ms = self._fed_end_ms[-1] if self._fed_end_ms else 0.0
        turn_ms = len(turn.pcm) / 2 / max(turn.sample_rate, 1) * 1000
        if turn.ended_at <= 0:  # no timing: the turn is the latest audio fed
            return max(fed_ms - turn_ms, 0.0), fed_ms
        end_ms = self._position_ms(turn.ended_at)
        start_ms = self._position_ms(turn.started_at)
        if turn_ms:  # the turn's audio may begin before it was detected (pre-roll)
            start_ms = min(start_ms, end_ms - turn_ms)
        return max(start_ms, 0.0), end_ms

    def _settled(self, end_ms: float) -> bool:
        """Whether Hume has had the turn's audio and measured the speech in it."""
        if self._sent_bytes / _BYTES_PER_MS < end_ms:
            return False
        if self._open_utterance is None:
            return True
        # Speech goes on: Hume measures every few seconds, never more than 1 s apart at the end.
        return any(r.audio_end_ms >= end_ms - 1000 for r in self._results)

    def _estimate(self, start_ms: float, end_ms: float) -> EmotionEstimate:
        weights: dict[str, float] = {}
        total = 0.0
        measured = 0
        for result in self._results:
            overlap = min(result.audio_end_ms, end_ms) - max(result.audio_start_ms, start_ms)
            if overlap <= 0:
                continue
            measured += 1
            total += overlap
            for score in result.expressions:
                name = score.name.strip().lower()
                weights[name] = weights.get(name, 0.0) + score.probability * overlap
        expressions = {name: w / total for name, w in weights.items()} if total else {}
        scores = _label_scores(expressions)
        label: Label = max(LABELS, key=lambda lbl: scores[lbl])
        valence, arousal = _valence_arousal(expressions)
        top = sorted(expressions.items(), key=lambda item: -item[1])[:5]
        features = {f"hume.{name}": round(p, 4) for name, p in top}
        features.update(measurements=float(measured), audio_ms=round(end_ms - start_ms, 1))
        if self.dropped_bytes:
            features["dropped_audio_ms"] = self.dropped_bytes / _BYTES_PER_MS
        return EmotionEstimate(
            label=label,
            scores=scores,
            valence=valence,
            arousal=arousal,
            source=self.name,
            features=features,
        )


def _label_scores(expressions: dict[str, float]) -> dict[str, float]:
    """Each label's chance that at least one of its expressions is present (noisy-or)."""
    missing: dict[str, float] = {label: 1.0 for label in LABELS}
    for name, p in expressions.items():
        label = _LABEL_OF.get(name)
        if label is not None:
            missing[label] *= 1.0 - min(max(p, 0.0), 1.0)
    scores: dict[str, float] = {label: round(1.0 - missing[label], 4) for label in LABELS}
    # Nothing clear in the voice reads as neutral.
    strongest = max(s for label, s in scores.items() if label != "neutral")
    scores["neutral"] = round(max(scores["neutral"], 1.0 - strongest) * 0.9, 4)
    return scores


def _valence_arousal(expressions: dict[str, float]) -> tuple[float, float]:
    known = [(p, VALENCE_AROUSAL[n]) for n, p in expressions.items() if n in VALENCE_AROUSAL]
    weight = sum(p for p, _ in known)
    if weight <= 0:
        return 0.0, 0.35
    valence = sum(p * v for p, (v, _) in known) / weight
    arousal = sum(p * a for p, (_, a) in known) / weight
    return round(valence, 4), round(arousal, 4)


def _kind(message: object) -> str:
    return str(getattr(message, "type", type(message).__name__))


def _reason(error: BaseException) -> str:
    """Describe a failure without the request's headers (they carry the API key)."""
    if isinstance(error, ApiError):
        return f"Hume refused the connection (HTTP {error.status_code})"
    if isinstance(error, TimeoutError):
        return "Hume did not answer in time"
    if isinstance(error, AnalyzerFailed):
        return str(error)
    return f"{type(error).__name__}: {error}"
