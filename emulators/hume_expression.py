"""Loopback emulator of Hume's realtime Expression Measurement audio WebSocket.

The protocol, as the ``hume-expression-measurement`` 0.1.0 SDK and its docs
(dev.hume.ai/expression-measurement: "Audio realtime", "Sessions", "Errors", "Stream audio"
reference) describe it:

- URL: ``wss://api.cloud.hume.ai/v1/expression/audio/realtime``. The SDK builds it from
  ``ExpressionMeasurementClientEnvironment.production`` plus that path.
- Auth: on the handshake only, ``X-Hume-Api-Key: <key>`` (what the SDK sends) or
  ``Authorization: Bearer <token>``. A bad or missing credential is refused with HTTP 401,
  body ``{"message": ...}``; the SDK then raises ``ApiError`` with the status.
- Server first sends ``session.created``: ``session_id``, ``audio`` (``{"type": "audio/pcm",
  "encoding": "s16le", "sample_rate": 16000, "channels": 1}``, the only format accepted) and
  ``measurement_timer_ms`` (default 3000, range 3000..10000).
- Client may send ``session.update`` (``audio``, ``measurement_timer_ms``; omitted fields
  return to defaults) *before its first audio frame*; the server answers ``session.updated``
  with the full configuration. A bad value, or an update after audio, ends the session with
  ``config_invalid``. There is no model choice (no prosody/burst/language switches).
- Audio: binary frames of headerless 16-bit little-endian mono PCM at 16 kHz, ~100 ms each,
  no faster than 1 s of audio per second. Empty, odd-length or > 10 s frames get
  ``invalid_audio_frame`` (session continues); a message over 1 MiB ends it with
  ``message_too_large``; a frame sent too fast gets ``rate_limited`` and is not measured.
- The server detects speech: ``utterance.start`` (``utterance_id``, ``audio_start_ms``), then a
  ``measurement.result`` every ``measurement_timer_ms`` of speech (``trigger: "interval"``)
  and one when speech ends (``"speech_ended"``, unless the last one ended < 1 s before), then
  ``utterance.end`` (``audio_start_ms``, ``audio_end_ms``). A result has ``measurement_id``,
  ``utterance_id``, ``audio_start_ms``/``audio_end_ms`` (ms from the start of the session's
  accepted audio; at most the utterance's last 10 s), ``expressions`` and
  ``voice_attributes``: lists of ``{"name", "probability"}``, names lowercase (e.g. ``joy``,
  ``anger``, ``neutral``; 415 expression names), only those judged present, sorted by
  descending probability.
- ``error``: ``code`` (``invalid_audio_frame``, ``message_invalid``, ``rate_limited``,
  ``config_invalid``, ``message_too_large``, ``internal_error``), ``message``, ``retryable``
  (``false`` for every error that ends the session).
- Ending: client sends ``session.close``; the server finishes the open utterance, sends
  ``session.closed`` (``session_id``, ``reason``: ``client_request`` | ``server_shutdown`` |
  ``idle_timeout`` | ``error``, ``received`` {``audio_duration_ms``, ``frames``},
  ``produced`` {``utterances``, ``measurements``}) and closes the socket (1000).

Emulated, not measured: an energy VAD on 10 ms frames finds utterances, and the scores come
from the loudness of the window's speech frames (see ``expressions_for``): loud speech scores
high ``excitement``/``anger``, soft speech ``tiredness``/``calmness``/``boredom``. Scores can
also be scripted (``script_expressions``).
"""

from __future__ import annotations

import asyncio
import json
import math
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web
from loguru import logger

from emulators.behavior import Behavior, Fault
from emulators.server import EmulatorServer, RecordedRequest
from emulators.synth import rms

PATH = "/v1/expression/audio/realtime"
SAMPLE_RATE = 16_000
AUDIO_CONFIG = {"type": "audio/pcm", "encoding": "s16le", "sample_rate": SAMPLE_RATE, "channels": 1}
_FRAME_BYTES = 2 * SAMPLE_RATE // 100  # 10 ms
_MAX_FRAME_BYTES = 2 * SAMPLE_RATE * 10  # 10 s of audio
_MAX_MESSAGE_BYTES = 1024 * 1024
_WINDOW_MS = 10_000
_CLOSE = object()

Score = dict[str, Any]


def expressions_for(level: float) -> tuple[list[Score], list[Score]]:
    """Score a window of speech from its loudness, as a stand-in for Hume's models.

    Args:
        level: RMS of the window's speech frames, in 16-bit sample units.

    Returns:
        ``(expressions, voice_attributes)``, each only the scores judged present (above 0.1
        and 0.725 respectively), sorted by descending probability.
    """
    dbfs = 20 * math.log10(max(level, 1.0) / 32768)
    energy = min(max((dbfs + 45.0) / 35.0, 0.0), 1.0)  # -45 dBFS -> 0, -10 dBFS -> 1
    quiet = 1.0 - energy
    raw = {
        "excitement": 0.9 * energy**1.5,
        "anger": 1.6 * max(energy - 0.65, 0.0),
        "joy": 0.5 * energy,
        "interest": 0.6 * (1.0 - abs(energy - 0.5) * 2.0),
        "calmness": 0.6 * quiet * (1.0 - quiet**3),
        "tiredness": 0.9 * quiet**2,
        "boredom": 0.6 * quiet**3,
        "neutral": 0.35 * (1.0 - abs(energy - 0.5) * 2.0),
    }
    voice = {"loud": 0.6 + 0.4 * energy, "soft": 0.6 + 0.4 * quiet}
    return _present(raw, 0.1), _present(voice, 0.725)


def _present(raw: dict[str, float], cutoff: float) -> list[Score]:
    scores: list[Score] = [
        {"name": n, "probability": round(min(p, 1.0), 4)} for n, p in raw.items()
    ]
    kept = [s for s in scores if s["probability"] >= cutoff]
    return sorted(kept, key=lambda s: (-float(s["probability"]), str(s["name"])))


@dataclass
class _Utterance:
    utterance_id: int
    start_ms: int
    last_speech_ms: int
    next_interval_ms: int
    last_measured_end_ms: int = -1_000_000


@dataclass
class _SessionState:
    session_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    timer_ms: int = 3000
    audio_ms: int = 0
    frames: int = 0
    first_frame_at: float | None = None
    pending: bytes = b""
    silence_ms: int = 0
    utterance: _Utterance | None = None
    utterances: int = 0
    measurements: int = 0
    ended: bool = False


class HumeExpressionEmulator(EmulatorServer):
    """Hume's realtime audio expression measurement (``/v1/expression/audio/realtime``).

    Each result leaves ``behavior.first_latency_s`` after the audio that triggered it.
    Faults: ``HTTP_500`` refuses the handshake; ``DROP`` cuts the TCP connection (no close
    frame) when result number ``fault_after`` would be sent; ``STALL`` stops answering
    there. Endpoint name for ``set_behavior``/``recorded``: ``"audio"``.

    Example:
        async with HumeExpressionEmulator() as emu:
            env = ExpressionMeasurementClientEnvironment(base=emu.url, production=emu.base_url)
            client = AsyncExpressionMeasurementClient(api_key="k", environment=env)
    """

    name = "hume-expression"

    def __init__(
        self,
        *,
        vad_threshold: float = 150.0,
        end_silence_ms: int = 400,
        rate_slack_s: float = 0.5,
        idle_timeout_s: float = 30.0,
        **kwargs: Any,
    ) -> None:
        """Create the emulator.

        Args:
            vad_threshold: RMS (16-bit sample units) at which a 10 ms frame is speech;
                150 is about -47 dBFS.
            end_silence_ms: Silence after speech that ends an utterance.
            rate_slack_s: Audio a client may be ahead of real time before ``rate_limited``.
            idle_timeout_s: Close the session (``idle_timeout``) after this long without
                a message.
            **kwargs: ``host``, ``port``, ``api_key``, ``behavior`` (see ``EmulatorServer``).
        """
        super().__init__(**kwargs)
        self._vad_threshold = vad_threshold
        self._end_silence_ms = end_silence_ms
        self._rate_slack_s = rate_slack_s
        self._idle_timeout_s = idle_timeout_s
        self.scripted: deque[list[Score]] = deque()

    @property
    def base_url(self) -> str:
        """The SDK environment's ``production`` URL: ``ws://127.0.0.1:PORT``."""
        return self.url.replace("http://", "ws://", 1)

    def script_expressions(self, *expressions: list[Score]) -> None:
        """Queue the ``expressions`` of the next results, one list per result."""
        self.scripted.extend(expressions)

    def script(self, payload: dict[str, Any]) -> None:
        """Script from JSON: ``{"expressions": [[{"name": str, "probability": float}], ...]}``."""
        for scores in payload["expressions"]:
            self.scripted.append(
                [{"name": str(s["name"]), "probability": float(s["probability"])} for s in scores]
            )

    def reset(self) -> None:
        """Restore defaults, drop scripted scores and recordings."""
        super().reset()
        self.scripted.clear()

    def _add_routes(self, app: web.Application) -> None:
        app.router.add_get(PATH, self._handle_audio)

    def _authorized(self, request: web.Request) -> bool:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        bearer = token.strip() if scheme.lower() == "bearer" else None
        return self._key_ok(request.headers.get("X-Hume-Api-Key")) or self._key_ok(bearer)

    async def _handle_audio(self, request: web.Request) -> web.StreamResponse:
        if not self._authorized(request):
            return web.json_response({"message": "Invalid API key"}, status=401)
        record = self._record(request, "audio")
        behavior, fault = self._claim_fault("audio", record)
        if fault is Fault.HTTP_500:
            body = {"type": "error", "code": "internal_error", "message": "Internal error"}
            return web.json_response(body, status=500)
        ws = web.WebSocketResponse(max_msg_size=2 * _MAX_MESSAGE_BYTES)
        await ws.prepare(request)
        self._track(ws)
        try:
            await _AudioSession(self, ws, request, record, behavior, fault).run()
        finally:
            self._untrack(ws)
        return ws


class _AudioSession:
    """One realtime connection: reads messages, detects utterances, answers via an outbox."""

    def __init__(
        self,
        emu: HumeExpressionEmulator,
        ws: web.WebSocketResponse,
        request: web.Request,
        record: RecordedRequest,
        behavior: Behavior,
        fault: Fault,
    ) -> None:
        self._emu = emu
        self._ws = ws
        self._request = request
        self._record = record
        self._behavior = behavior
        self._fault = fault
        self._state = _SessionState()
        self._outbox: asyncio.Queue[tuple[float, Any]] = asyncio.Queue()
        self._results_sent = 0

    async def run(self) -> None:
        state = self._state
        created = {"type": "session.created", "session_id": state.session_id}
        self._emit({**created, "audio": AUDIO_CONFIG, "measurement_timer_ms": state.timer_ms}, 0)
        sender = asyncio.create_task(self._send_loop())
        try:
            while not self._ws.closed and not state.ended:
                try:
                    message = await self._ws.receive(timeout=self._emu._idle_timeout_s)
                except TimeoutError:
                    self._end("idle_timeout")
                    break
                if message.type == WSMsgType.BINARY:
                    self._on_audio(message.data)
                elif message.type == WSMsgType.TEXT:
                    self._on_text(message.data)
                else:
                    break
            if state.ended:  # let session.closed and the close frame go out
                await asyncio.wait({sender}, timeout=5.0)
        finally:
            sender.cancel()
            await asyncio.gather(sender, return_exceptions=True)

    def _on_text(self, text: str) -> None:
        if len(text.encode()) > _MAX_MESSAGE_BYTES:
            self._fail("message_too_large", "message is over 1 MiB")
            return
        try:
            data = json.loads(text)
        except json.JSONDecodeError:
            data = None
        self._record.messages.append(data)
        kind = data.get("type") if isinstance(data, dict) else None
        if kind == "session.update" and isinstance(data, dict):
            self._on_update(data)
        elif kind == "session.close":
            self._finish_utterance()
            self._end("client_request")
        else:
            self._error("message_invalid", f"unknown message type {kind!r}", retryable=True)

    def _on_update(self, data: dict[str, Any]) -> None:
        if self._state.frames:
            self._fail("config_invalid", "session.update must come before the first audio frame")
            return
        audio = data.get("audio") or {}
        wrong = [k for k, v in audio.items() if k in AUDIO_CONFIG and v != AUDIO_CONFIG[k]]
        timer = data.get("measurement_timer_ms")
        timer = 3000 if timer is None else timer
        if wrong or not isinstance(timer, int) or not 3000 <= timer <= 10_000:
            self._fail("config_invalid", f"unsupported configuration: {wrong or timer}")
            return
        self._state.timer_ms = timer
        updated = {"type": "session.updated", "audio": AUDIO_CONFIG, "measurement_timer_ms": timer}
        self._emit(updated, 0)

    def _on_audio(self, data: bytes) -> None:
        state = self._state
        if len(data) > _MAX_MESSAGE_BYTES:
            self._fail("message_too_large", "message is over 1 MiB")
            return
        if not data or len(data) % 2 or len(data) > _MAX_FRAME_BYTES:
            self._error("invalid_audio_frame", "empty, odd-length or over 10 s", retryable=True)
            return
        now = time.monotonic()
        state.first_frame_at = state.first_frame_at or now
        ahead_s = (state.audio_ms + len(data) / 32) / 1000 - (now - state.first_frame_at)
        if ahead_s > self._emu._rate_slack_s:
            self._error("rate_limited", "audio is arriving faster than real time", retryable=True)
            return
        state.frames += 1
        self._record.audio_bytes += len(data)
        self._record.audio.extend(data)
        state.pending += data
        while len(state.pending) >= _FRAME_BYTES:
            frame, state.pending = state.pending[:_FRAME_BYTES], state.pending[_FRAME_BYTES:]
            state.audio_ms += 10
            self._on_frame(rms(frame) >= self._emu._vad_threshold)

    def _on_frame(self, speech: bool) -> None:
        state = self._state
        utterance = state.utterance
        if speech:
            state.silence_ms = 0
            if utterance is None:
                start = state.audio_ms - 10
                utterance = _Utterance(state.utterances, start, state.audio_ms, start)
                utterance.next_interval_ms = start + state.timer_ms
                state.utterance = utterance
                state.utterances += 1
                start_msg = {"utterance_id": utterance.utterance_id, "audio_start_ms": start}
                self._emit({"type": "utterance.start", **start_msg})
            utterance.last_speech_ms = state.audio_ms
        elif utterance is not None:
            state.silence_ms += 10
        if utterance is None:
            return
        if speech and state.audio_ms >= utterance.next_interval_ms:
            utterance.next_interval_ms += state.timer_ms
            self._measure(utterance, state.audio_ms, "interval")
        if state.silence_ms >= self._emu._end_silence_ms:
            self._finish_utterance()

    def _finish_utterance(self) -> None:
        state = self._state
        utterance, state.utterance = state.utterance, None
        if utterance is None:
            return
        end = utterance.last_speech_ms
        if end - utterance.last_measured_end_ms >= 1000:
            self._measure(utterance, end, "speech_ended")
        ids = {"utterance_id": utterance.utterance_id, "audio_start_ms": utterance.start_ms}
        self._emit({"type": "utterance.end", **ids, "audio_end_ms": end})

    def _measure(self, utterance: _Utterance, end_ms: int, trigger: str) -> None:
        start_ms = max(utterance.start_ms, end_ms - _WINDOW_MS)
        utterance.last_measured_end_ms = end_ms
        audio = self._record.audio[start_ms * 32 : end_ms * 32]
        frames = [audio[i : i + _FRAME_BYTES] for i in range(0, len(audio), _FRAME_BYTES)]
        levels = [level for f in frames if (level := rms(bytes(f))) >= self._emu._vad_threshold]
        level = math.sqrt(sum(x * x for x in levels) / len(levels)) if levels else 0.0
        expressions, voice = expressions_for(level)
        if self._emu.scripted:
            expressions = _present(
                {s["name"]: s["probability"] for s in self._emu.scripted.popleft()}, 0.0
            )
        self._emit(
            {
                "type": "measurement.result",
                "measurement_id": self._state.measurements,
                "utterance_id": utterance.utterance_id,
                "audio_start_ms": start_ms,
                "audio_end_ms": end_ms,
                "trigger": trigger,
                "expressions": expressions,
                "voice_attributes": voice,
            }
        )
        self._state.measurements += 1

    def _error(self, code: str, message: str, *, retryable: bool) -> None:
        self._emit({"type": "error", "code": code, "message": message, "retryable": retryable})

    def _fail(self, code: str, message: str) -> None:
        self._error(code, message, retryable=False)
        self._end("error")

    def _end(self, reason: str) -> None:
        state = self._state
        if state.ended:
            return
        state.ended = True
        self._emit(
            {
                "type": "session.closed",
                "session_id": state.session_id,
                "reason": reason,
                "received": {"audio_duration_ms": state.audio_ms, "frames": state.frames},
                "produced": {"utterances": state.utterances, "measurements": state.measurements},
            }
        )
        self._emit(_CLOSE)

    def _emit(self, message: Any, latency_s: float | None = None) -> None:
        delay = self._behavior.first_latency_s if latency_s is None else latency_s
        self._outbox.put_nowait((time.monotonic() + delay, message))

    async def _send_loop(self) -> None:
        while True:
            due, message = await self._outbox.get()
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            is_result = isinstance(message, dict) and message["type"] == "measurement.result"
            if is_result and self._fault is not Fault.NONE:
                if self._results_sent >= self._behavior.fault_after:
                    if self._fault is Fault.STALL:
                        await self._emu._stall()
                    logger.debug(
                        f"{self._emu}: cutting connection after {self._results_sent} results"
                    )
                    if self._request.transport is not None:
                        self._request.transport.abort()
                    return
            if message is _CLOSE:
                await self._ws.close()
                return
            if self._ws.closed:
                return
            await self._ws.send_str(json.dumps(message))
            self._results_sent += is_result
            self._record.sent.append(_summary(message))


def _summary(message: dict[str, Any]) -> dict[str, Any]:
    summary = {"type": message["type"]}
    if message["type"] == "measurement.result":
        top = message["expressions"][:3]
        summary.update(
            span=[message["audio_start_ms"], message["audio_end_ms"]],
            trigger=message["trigger"],
            top=[f"{s['name']} {s['probability']:.2f}" for s in top],
        )
    elif message["type"] == "error":
        summary["code"] = message["code"]
    return summary
