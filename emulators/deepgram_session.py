"""One emulated Deepgram live-transcription connection: energy VAD and scripted words."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import WSMsgType, web
from loguru import logger

from emulators import deepgram_messages as msgs
from emulators.behavior import Behavior, Fault
from emulators.server import RecordedRequest
from emulators.synth import rms

_CLOSE = object()


@dataclass
class ListenParams:
    """The query parameters of ``/v1/listen`` that shape the emulated answers.

    Parameters:
        sample_rate: Audio sample rate in Hz.
        channels: Interleaved channels in the audio.
        interim_results: Send interim (``is_final=false``) results.
        endpointing_ms: Silence that ends a segment with ``speech_final``; ``None``
            when endpointing is off.
        utterance_end_ms: Silence after the last word before ``UtteranceEnd``.
        vad_events: Send ``SpeechStarted``.
        punctuate: Keep punctuation and capitals in transcripts.
    """

    sample_rate: int = 16_000
    channels: int = 1
    interim_results: bool = False
    endpointing_ms: int | None = None
    utterance_end_ms: int | None = None
    vad_events: bool = False
    punctuate: bool = False

    @classmethod
    def from_query(cls, query: Any, default_endpointing_ms: int) -> ListenParams:
        """Read the parameters from a request's query, with Deepgram's defaults."""

        def flag(name: str) -> bool:
            return str(query.get(name, "false")).lower() == "true"

        endpointing = str(query.get("endpointing", default_endpointing_ms)).lower()
        utterance_end = query.get("utterance_end_ms")
        return cls(
            sample_rate=int(query.get("sample_rate", 16_000)),
            channels=int(query.get("channels", 1)),
            interim_results=flag("interim_results"),
            endpointing_ms=None if endpointing == "false" else int(float(endpointing)),
            utterance_end_ms=int(utterance_end) if utterance_end else None,
            vad_events=flag("vad_events"),
            punctuate=flag("punctuate") or flag("smart_format"),
        )


@dataclass
class _Segment:
    words: list[tuple[str, str]]
    start: float
    speech_s: float = 0.0
    last_interim: float = 0.0


class ListenSession:
    """Runs one ``/v1/listen`` WebSocket until the client or the emulator closes it.

    Audio is cut into 10 ms frames; a frame whose RMS reaches ``vad_threshold`` is
    speech. Speech opens a segment that says the next scripted text; interim
    results reveal its words as speech audio accumulates; ``endpointing_ms`` of
    silence makes it final with ``speech_final``. Answers leave through an outbox
    that holds each one ``behavior.first_latency_s`` and applies the fault.

    ``received`` lists what arrived, in order: the size of each binary (audio)
    message, and the ``type`` of each JSON message.
    """

    def __init__(
        self,
        *,
        ws: web.WebSocketResponse,
        request: web.Request,
        record: RecordedRequest,
        behavior: Behavior,
        fault: Fault,
        params: ListenParams,
        next_text: Callable[[], str],
        stall: Callable[[], Any],
        vad_threshold: float,
        interim_every_s: float,
        seconds_per_word: float,
        idle_timeout_s: float,
    ) -> None:
        """Prepare the session; ``run`` drives it."""
        self._ws = ws
        self._request = request
        self._record = record
        self._behavior = behavior
        self._fault = fault
        self._params = params
        self._next_text = next_text
        self._stall = stall
        self._vad_threshold = vad_threshold
        self._interim_every_s = interim_every_s
        self._seconds_per_word = seconds_per_word
        self._idle_timeout_s = idle_timeout_s
        self._request_id = msgs.new_request_id()
        self._frame_bytes = 2 * params.channels * params.sample_rate // 100
        self._pending = b""
        self._audio_s = 0.0
        self._segment: _Segment | None = None
        self._silence_s = 0.0
        self._last_speech_end = 0.0
        self._words_since_utterance_end = False
        self._outbox: asyncio.Queue[tuple[float, Any]] = asyncio.Queue()
        self._sent = 0
        self.received: list[int | str] = []

    @property
    def deflate(self) -> bool:
        """Whether the handshake negotiated permessage-deflate."""
        return bool(self._ws.compress)

    async def run(self) -> None:
        """Read audio and control messages, answer through the outbox, until closed."""
        sender = asyncio.create_task(self._send_loop())
        try:
            while not self._ws.closed:
                try:
                    message = await self._ws.receive(timeout=self._idle_timeout_s)
                except TimeoutError:
                    # Deepgram's NET-0001: no audio or message within the timeout window.
                    await self._ws.close(code=1011, message=b"NET-0001: no audio received")
                    break
                if message.type == WSMsgType.BINARY:
                    self._on_audio(message.data)
                elif message.type == WSMsgType.TEXT:
                    self._on_control(message.data)
                else:
                    break
        finally:
            sender.cancel()
            await asyncio.gather(sender, return_exceptions=True)

    def _on_control(self, text: str) -> None:
        try:
            data = json.loads(text)
        except json.JSONDecodeError:
            data = {"type": "<invalid json>"}
        self._record.messages.append(data)
        kind = data.get("type") if isinstance(data, dict) else None
        self.received.append(str(kind))
        if kind == "Finalize":
            self._finish_segment(speech_final=False, from_finalize=True, always=True)
        elif kind == "CloseStream":
            self._finish_segment(speech_final=False)
            audio = bytes(self._record.audio)
            self._emit(msgs.metadata(self._request_id, self._audio_s, self._params.channels, audio))
            self._outbox.put_nowait((time.monotonic() + self._behavior.first_latency_s, _CLOSE))

    def _on_audio(self, data: bytes) -> None:
        self.received.append(len(data))
        self._record.audio_bytes += len(data)
        self._record.audio.extend(data)
        self._pending += data
        frame_s = 0.01
        while len(self._pending) >= self._frame_bytes:
            frame = self._pending[: self._frame_bytes]
            self._pending = self._pending[self._frame_bytes :]
            start = self._audio_s
            self._audio_s += frame_s
            if rms(frame) >= self._vad_threshold:
                self._on_speech(start, frame_s)
            else:
                self._silence_s += frame_s
            self._after_frame()

    def _on_speech(self, start: float, frame_s: float) -> None:
        if self._segment is None:
            words = msgs.split_words(self._next_text())
            self._segment = _Segment(words=words, start=start, last_interim=start)
            if self._params.vad_events:
                self._emit(msgs.speech_started(start))
        self._segment.speech_s += frame_s
        self._silence_s = 0.0
        self._last_speech_end = self._audio_s
        self._words_since_utterance_end = True

    def _after_frame(self) -> None:
        segment = self._segment
        params = self._params
        if segment is not None:
            due = self._audio_s - segment.last_interim >= self._interim_every_s
            if params.interim_results and due and self._silence_s < self._interim_every_s:
                segment.last_interim = self._audio_s
                shown = min(len(segment.words) - 1, int(segment.speech_s / self._seconds_per_word))
                if shown > 0:
                    self._emit_results(segment, segment.words[:shown], is_final=False)
            endpoint = params.endpointing_ms
            if endpoint is not None and self._silence_s * 1000 >= endpoint:
                self._finish_segment(speech_final=True)
        end_ms = params.utterance_end_ms
        if end_ms and self._words_since_utterance_end and self._silence_s * 1000 >= end_ms:
            self._finish_segment(speech_final=False)
            self._emit(msgs.utterance_end(self._last_speech_end))
            self._words_since_utterance_end = False

    def _finish_segment(
        self, *, speech_final: bool, from_finalize: bool = False, always: bool = False
    ) -> None:
        segment, self._segment = self._segment, None
        if segment is not None:
            self._emit_results(segment, segment.words, True, speech_final, from_finalize)
        elif always:
            empty = _Segment(words=[], start=self._audio_s)
            self._emit_results(empty, [], True, speech_final, from_finalize)

    def _emit_results(
        self,
        segment: _Segment,
        words: list[tuple[str, str]],
        is_final: bool,
        speech_final: bool = False,
        from_finalize: bool = False,
    ) -> None:
        end = self._last_speech_end if words else segment.start
        message = msgs.results(
            request_id=self._request_id,
            words=words,
            start=segment.start,
            duration=max(end - segment.start, 0.0),
            is_final=is_final,
            speech_final=speech_final,
            from_finalize=from_finalize,
            punctuate=self._params.punctuate,
        )
        self._emit(message)

    def _emit(self, message: dict[str, Any]) -> None:
        self._outbox.put_nowait((time.monotonic() + self._behavior.first_latency_s, message))

    async def _send_loop(self) -> None:
        while True:
            due, message = await self._outbox.get()
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            if self._fault is not Fault.NONE and self._sent >= self._behavior.fault_after:
                if self._fault is Fault.STALL:
                    await self._stall()
                logger.debug(f"deepgram: cutting connection after {self._sent} messages")
                self._ws_cut()
                return
            if message is _CLOSE:
                await self._ws.close()
                return
            if self._ws.closed:
                return
            await self._ws.send_str(json.dumps(message))
            self._sent += 1
            self._record.sent.append(_summary(message))

    def _ws_cut(self) -> None:
        if self._request.transport is not None:
            self._request.transport.abort()


def _summary(message: dict[str, Any]) -> dict[str, Any]:
    if message.get("type") != "Results":
        return {"type": message.get("type")}
    return {
        "type": "Results",
        "transcript": message["channel"]["alternatives"][0]["transcript"],
        "is_final": message["is_final"],
        "speech_final": message["speech_final"],
        "from_finalize": message["from_finalize"],
    }
