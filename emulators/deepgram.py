"""Loopback emulator of Deepgram's live speech to text and Aura REST text to speech."""

from __future__ import annotations

import uuid
from collections import deque
from typing import Any

from aiohttp import web

from emulators.behavior import Fault
from emulators.deepgram_session import ListenParams, ListenSession
from emulators.deepgram_speak import SpeakParams, speak_pieces, speak_text
from emulators.server import EmulatorServer

DEFAULT_TEXT = "My main quest today is to ship the onboarding flow."


class DeepgramEmulator(EmulatorServer):
    """Deepgram live transcription that says scripted words, and Aura REST speech.

    Listen (``GET /v1/listen``, WebSocket): each speech segment (energy above
    ``vad_threshold`` until ``endpointing`` ms of silence) transcribes to the next text
    in ``utterances``, or ``default_text`` when the queue is empty. See
    ``ListenSession`` for the message flow.

    Speak (``POST /v1/speak?model=&encoding=linear16&sample_rate=&container=`` with
    ``{"text": ...}``): streams speech-like tone bursts (~60 ms a character, scaled by
    ``speed``) as 16-bit mono PCM at the requested rate, raw (``container=none``) or in
    a WAV (the default). See ``SpeakParams`` for what is accepted.

    One server answers both, as one ``DEEPGRAM_BASE_URL`` does in production: STT
    clients take ``base_url`` (``ws://``), REST clients ``url`` (``http://``).

    Endpoint names for ``set_behavior``/``recorded``: ``"listen"``, ``"speak"``. The
    shared behavior governs both unless one is given its own. ``listen_sessions``
    holds every ``ListenSession``, for what arrived on each socket and how.

    Example:
        async with DeepgramEmulator() as emu:
            emu.script_utterance("Fix the login bug first.")
            stt = DeepgramSTTService(api_key="k", base_url=emu.base_url)
            tts = DeepgramHttpTTSService(api_key="k", base_url=emu.url, aiohttp_session=s)
    """

    name = "deepgram"

    def __init__(
        self,
        *,
        default_text: str = DEFAULT_TEXT,
        default_endpointing_ms: int = 300,
        vad_threshold: float = 500.0,
        interim_every_s: float = 0.25,
        seconds_per_word: float = 0.25,
        idle_timeout_s: float = 10.0,
        speak_chunk_ms: int = 100,
        speak_ms_per_char: float = 60.0,
        **kwargs: Any,
    ) -> None:
        """Create the emulator.

        Args:
            default_text: What a segment says when no utterance is scripted.
            default_endpointing_ms: Endpointing when the client sends none. Deepgram's
                own default is 10 ms, which suits its speech model but would split
                an energy VAD's segments at every pause between words.
            vad_threshold: RMS (16-bit sample units) at which a 10 ms frame is speech;
                500 is about -36 dBFS.
            interim_every_s: Audio between interim results.
            seconds_per_word: Speech audio per word revealed in interim results.
            idle_timeout_s: Close the socket (Deepgram's NET-0001) after this long
                without audio or messages.
            speak_chunk_ms: Audio per streamed ``/v1/speak`` chunk.
            speak_ms_per_char: ``/v1/speak`` speech length per character at speed 1.0.
            **kwargs: ``host``, ``port``, ``api_key``, ``behavior`` (see ``EmulatorServer``).
        """
        super().__init__(**kwargs)
        self.default_text = default_text
        self.utterances: deque[str] = deque()
        self.listen_sessions: list[ListenSession] = []
        self._default_endpointing_ms = default_endpointing_ms
        self._vad_threshold = vad_threshold
        self._interim_every_s = interim_every_s
        self._seconds_per_word = seconds_per_word
        self._idle_timeout_s = idle_timeout_s
        self._speak_chunk_ms = speak_chunk_ms
        self._speak_ms_per_char = speak_ms_per_char

    @property
    def base_url(self) -> str:
        """What ``DeepgramSTTService(base_url=...)`` takes: ``ws://127.0.0.1:PORT``."""
        return self.url.replace("http://", "ws://", 1)

    def script_utterance(self, *texts: str) -> None:
        """Queue what the next speech segments say, one text per segment."""
        self.utterances.extend(texts)

    def script(self, payload: dict[str, Any]) -> None:
        """Script from JSON: ``{"utterances": [str, ...], "default_text": str}``."""
        self.utterances.extend(str(t) for t in payload.get("utterances", []))
        if "default_text" in payload:
            self.default_text = str(payload["default_text"])

    def reset(self) -> None:
        """Restore defaults, drop scripted utterances and recordings."""
        super().reset()
        self.utterances.clear()
        self.listen_sessions.clear()
        self.default_text = DEFAULT_TEXT

    def _next_text(self) -> str:
        return self.utterances.popleft() if self.utterances else self.default_text

    def _add_routes(self, app: web.Application) -> None:
        app.router.add_get("/v1/listen", self._handle_listen)
        app.router.add_post("/v1/speak", self._handle_speak)

    def _authorized(self, request: web.Request) -> bool:
        scheme, _, key = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() in ("token", "bearer") and self._key_ok(key.strip()):
            return True
        # Browsers can't set headers; Deepgram takes ``Sec-WebSocket-Protocol: token, KEY``.
        protocols = [
            p.strip() for p in request.headers.get("Sec-WebSocket-Protocol", "").split(",")
        ]
        return (
            len(protocols) == 2
            and protocols[0] in ("token", "bearer")
            and self._key_ok(protocols[1])
        )

    async def _handle_listen(self, request: web.Request) -> web.StreamResponse:
        if not self._authorized(request):
            body = {"err_code": "INVALID_AUTH", "err_msg": "Invalid credentials.", "request_id": ""}
            return web.json_response(body, status=401)
        record = self._record(request, "listen")
        try:
            params = ListenParams.from_query(request.query, self._default_endpointing_ms)
        except ValueError as e:
            return web.json_response({"err_code": "Bad Request", "err_msg": str(e)}, status=400)
        behavior, fault = self._claim_fault("listen", record)
        if fault is Fault.HTTP_500:
            return web.json_response(
                {"err_code": "INTERNAL", "err_msg": "Internal error"}, status=500
            )
        ws = web.WebSocketResponse(protocols=("token", "bearer"), max_msg_size=16 * 1024 * 1024)
        await ws.prepare(request)
        self._track(ws)
        session = ListenSession(
            ws=ws,
            request=request,
            record=record,
            behavior=behavior,
            fault=fault,
            params=params,
            next_text=self._next_text,
            stall=self._stall,
            vad_threshold=self._vad_threshold,
            interim_every_s=self._interim_every_s,
            seconds_per_word=self._seconds_per_word,
            idle_timeout_s=self._idle_timeout_s,
        )
        self.listen_sessions.append(session)
        try:
            await session.run()
        finally:
            self._untrack(ws)
        return ws

    async def _handle_speak(self, request: web.Request) -> web.StreamResponse:
        if not self._authorized(request):
            return _error(401, "INVALID_AUTH", "Invalid credentials.")
        try:
            body = await request.json()
        except ValueError:  # not JSON, or not UTF-8
            body = None
        record = self._record(request, "speak", body)
        try:
            params = SpeakParams.from_query(request.query)
            text = speak_text(body)
        except ValueError as e:
            return _error(400, "Bad Request", str(e))
        behavior, fault = self._claim_fault("speak", record)
        if fault is Fault.HTTP_500:
            return _error(500, "INTERNAL", "Internal error")
        pieces = speak_pieces(
            text, params, chunk_ms=self._speak_chunk_ms, ms_per_char=self._speak_ms_per_char
        )
        record.sent.append({"audio_bytes": sum(map(len, pieces)), "model": params.model})
        return await self._stream(request, behavior, fault, pieces, params.content_type, b"")


def _error(status: int, code: str, message: str) -> web.Response:
    body = {"err_code": code, "err_msg": message, "request_id": str(uuid.uuid4())}
    return web.json_response(body, status=status)
