"""Loopback emulator of OpenAI's chat completions, speech and models endpoints."""

from __future__ import annotations

import asyncio
import base64
import json
from collections import deque
from collections.abc import Callable
from typing import Any

from aiohttp import web

from emulators.behavior import Behavior, Fault
from emulators.openai_chat import (
    DEFAULT_REPLY,
    Completion,
    Reply,
    ToolCall,
    last_user_text,
)
from emulators.server import EmulatorServer, RecordedRequest
from emulators.synth import speech_like, wav_header

OPENAI_TTS_SAMPLE_RATE = 24_000
MODELS = ("gpt-4o", "gpt-4o-mini", "gpt-4.1-mini", "gpt-4o-mini-tts", "tts-1")


def _error(status: int, message: str, kind: str, code: str | None = None) -> web.Response:
    body = {"error": {"message": message, "type": kind, "param": None, "code": code}}
    return web.json_response(body, status=status)


class OpenAIEmulator(EmulatorServer):
    """OpenAI ``/v1/chat/completions``, ``/v1/audio/speech`` and ``/v1/models``.

    Chat answers come from a queue of scripted ``Reply`` objects; when it is empty,
    from ``default_reply`` (a template where ``{user}`` is the last user message,
    or a callable taking that text). Speech is speech-like tone bursts, ~60 ms per
    character, 24 kHz 16-bit mono PCM (``pcm``), the same in a WAV (``wav``), or
    base64 deltas (``stream_format="sse"``).

    Endpoint names for ``set_behavior``/``recorded``: ``"chat"``, ``"speech"``, ``"models"``.

    Example:
        async with OpenAIEmulator() as emu:
            emu.script_reply("Main quest: ship onboarding.")
            client = AsyncOpenAI(api_key="k", base_url=emu.base_url)
    """

    name = "openai"

    def __init__(
        self,
        *,
        default_reply: str | Callable[[str], str] = DEFAULT_REPLY,
        speech_chunk_ms: int = 100,
        ms_per_char: float = 60.0,
        **kwargs: Any,
    ) -> None:
        """Create the emulator.

        Args:
            default_reply: Template (``{user}`` placeholder) or callable for unscripted turns.
            speech_chunk_ms: Audio per streamed speech chunk.
            ms_per_char: Speech length per character of input.
            **kwargs: ``host``, ``port``, ``api_key``, ``behavior`` (see ``EmulatorServer``).
        """
        super().__init__(**kwargs)
        self.default_reply = default_reply
        self.replies: deque[Reply] = deque()
        self._speech_chunk_ms = speech_chunk_ms
        self._ms_per_char = ms_per_char

    @property
    def base_url(self) -> str:
        """What ``AsyncOpenAI(base_url=...)`` and pipecat's OpenAI services take."""
        return f"{self.url}/v1"

    def script_reply(self, text: str) -> None:
        """Queue a text reply for the next chat completion."""
        self.replies.append(Reply(text=text))

    def script_tool_calls(self, *calls: ToolCall, text: str = "") -> None:
        """Queue a reply that calls tools (``finish_reason="tool_calls"``)."""
        self.replies.append(Reply(text=text, tool_calls=list(calls)))

    def script(self, payload: dict[str, Any]) -> None:
        """Script from JSON: ``{"replies": [str | {text, tool_calls}], "default_reply": str}``."""
        for item in payload.get("replies", []):
            self.replies.append(Reply.from_json(item))
        if "default_reply" in payload:
            self.default_reply = str(payload["default_reply"])

    def reset(self) -> None:
        """Restore defaults, drop scripted replies and recordings."""
        super().reset()
        self.replies.clear()
        self.default_reply = DEFAULT_REPLY

    def chat_requests(self) -> list[dict[str, Any]]:
        """Bodies of every chat completion request received, in order."""
        return [r.body for r in self.recorded("chat")]

    def _add_routes(self, app: web.Application) -> None:
        app.router.add_post("/v1/chat/completions", self._handle_chat)
        app.router.add_post("/v1/audio/speech", self._handle_speech)
        app.router.add_get("/v1/models", self._handle_models)

    def _unauthorized(self, request: web.Request) -> web.Response | None:
        scheme, _, key = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() == "bearer" and self._key_ok(key.strip()):
            return None
        return _error(
            401, "Incorrect API key provided.", "invalid_request_error", "invalid_api_key"
        )

    async def _begin(
        self, request: web.Request, endpoint: str
    ) -> tuple[RecordedRequest, Behavior, Fault, dict[str, Any]] | web.Response:
        """Authenticate, parse, record and claim a fault; or return the early answer."""
        if denied := self._unauthorized(request):
            return denied
        try:
            body = await request.json() if request.can_read_body else {}
        except json.JSONDecodeError:
            return _error(400, "We could not parse the JSON body.", "invalid_request_error")
        record = self._record(request, endpoint, body)
        behavior, fault = self._claim_fault(endpoint, record)
        if fault is Fault.HTTP_500:
            return _error(500, "The server had an error processing your request.", "server_error")
        return record, behavior, fault, body

    async def _handle_models(self, request: web.Request) -> web.Response:
        begun = await self._begin(request, "models")
        if isinstance(begun, web.Response):
            return begun
        if begun[2] is not Fault.NONE:
            return await self._refuse(request, begun[2])
        data = [
            {"id": m, "object": "model", "created": 1_700_000_000, "owned_by": "system"}
            for m in MODELS
        ]
        return web.json_response({"object": "list", "data": data})

    async def _handle_chat(self, request: web.Request) -> web.StreamResponse:
        begun = await self._begin(request, "chat")
        if isinstance(begun, web.Response):
            return begun
        record, behavior, fault, body = begun
        if not isinstance(body.get("messages"), list) or not body.get("model"):
            return _error(400, "'model' and 'messages' are required.", "invalid_request_error")
        completion = Completion(self._next_reply(body), body)
        record.sent.append({"text": completion.reply.text, "tool_calls": len(completion.calls)})
        if not body.get("stream"):
            if fault is not Fault.NONE:
                return await self._refuse(request, fault)
            await asyncio.sleep(behavior.first_latency_s)
            return web.json_response(completion.whole())
        events = (f"data: {json.dumps(c)}\n\n".encode() for c in completion.chunks())
        return await self._stream(
            request, behavior, fault, events, "text/event-stream", b"data: [DONE]\n\n"
        )

    async def _handle_speech(self, request: web.Request) -> web.StreamResponse:
        begun = await self._begin(request, "speech")
        if isinstance(begun, web.Response):
            return begun
        record, behavior, fault, body = begun
        text = body.get("input")
        if not isinstance(text, str) or not text or not body.get("voice") or not body.get("model"):
            return _error(
                400, "'model', 'voice' and 'input' are required.", "invalid_request_error"
            )
        fmt = body.get("response_format", "mp3")
        sse = body.get("stream_format") == "sse"
        if fmt not in ("pcm", "wav"):
            return _error(
                400, f"Emulator only renders pcm or wav, not {fmt!r}.", "invalid_request_error"
            )
        speed = float(body.get("speed") or 1.0)
        audio = speech_like(
            text, OPENAI_TTS_SAMPLE_RATE, ms_per_char=self._ms_per_char, speed=speed
        ).pcm
        record.sent.append({"audio_bytes": len(audio), "format": fmt})
        step = OPENAI_TTS_SAMPLE_RATE * 2 * self._speech_chunk_ms // 1000
        pieces = [audio[i : i + step] for i in range(0, len(audio), step)]
        if fmt == "wav":
            pieces[0] = wav_header(len(audio), OPENAI_TTS_SAMPLE_RATE) + pieces[0]
        if sse:
            events = [
                _sse({"type": "speech.audio.delta", "audio": base64.b64encode(p).decode()})
                for p in pieces
            ]
            usage = {"input_tokens": len(text) // 4 + 1, "output_tokens": len(pieces)}
            usage["total_tokens"] = usage["input_tokens"] + usage["output_tokens"]
            tail = _sse({"type": "speech.audio.done", "usage": usage})
            return await self._stream(
                request, behavior, fault, iter(events), "text/event-stream", tail
            )
        content_type = "audio/wav" if fmt == "wav" else "audio/pcm"
        return await self._stream(request, behavior, fault, iter(pieces), content_type, b"")

    def _next_reply(self, body: dict[str, Any]) -> Reply:
        if self.replies:
            return self.replies.popleft()
        user = last_user_text(body.get("messages", []))
        if callable(self.default_reply):
            return Reply(text=self.default_reply(user))
        return Reply(text=self.default_reply.replace("{user}", user))


def _sse(event: dict[str, Any]) -> bytes:
    return f"data: {json.dumps(event)}\n\n".encode()
