"""Loopback emulator of Hume's TTS streaming JSON endpoint (``/v0/tts/stream/json``)."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Iterator
from typing import Any

from aiohttp import web

from emulators.behavior import Fault
from emulators.server import EmulatorServer
from emulators.synth import speech_like, wav_header

HUME_SAMPLE_RATE = 48_000


def _invalid(message: str, loc: list[str | int]) -> web.Response:
    # Hume's 422 body is FastAPI's HTTPValidationError, which the SDK parses.
    detail = [{"loc": ["body", *loc], "msg": message, "type": "value_error"}]
    return web.json_response({"detail": detail}, status=422)


class HumeEmulator(EmulatorServer):
    """Hume Octave TTS, streamed as newline-delimited JSON audio chunks.

    Each utterance is a snippet of speech-like tone bursts (~60 ms a character,
    scaled by its ``speed``, plus its ``trailing_silence``), 48 kHz 16-bit mono,
    in ``pcm`` or ``wav`` format, sent as base64 ``audio`` chunks with word
    ``timestamp`` messages when ``include_timestamp_types`` asks for ``"word"``.
    ``chunk_index`` counts chunks within a generation; ``is_last_chunk`` marks the
    generation's final chunk.

    Endpoint name for ``set_behavior``/``recorded``: ``"tts"``.

    Example:
        async with HumeEmulator() as emu:
            client = AsyncHumeClient(api_key="k", base_url=emu.base_url)
    """

    name = "hume"

    def __init__(self, *, chunk_ms: int = 100, ms_per_char: float = 60.0, **kwargs: Any) -> None:
        """Create the emulator.

        Args:
            chunk_ms: Audio per streamed chunk.
            ms_per_char: Speech length per character of text.
            **kwargs: ``host``, ``port``, ``api_key``, ``behavior`` (see ``EmulatorServer``).
        """
        super().__init__(**kwargs)
        self._chunk_ms = chunk_ms
        self._ms_per_char = ms_per_char

    def _add_routes(self, app: web.Application) -> None:
        app.router.add_post("/v0/tts/stream/json", self._handle_stream_json)

    def _authorized(self, request: web.Request) -> bool:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        bearer = token.strip() if scheme.lower() == "bearer" else None
        return self._key_ok(request.headers.get("X-Hume-Api-Key")) or self._key_ok(bearer)

    async def _handle_stream_json(self, request: web.Request) -> web.StreamResponse:
        if not self._authorized(request):
            denial = {"faultstring": "Invalid ApiKey", "detail": {"errorcode": "InvalidApiKey"}}
            return web.json_response({"fault": denial}, status=401)
        try:
            body = await request.json()
        except json.JSONDecodeError:
            return _invalid("body is not valid JSON", [])
        record = self._record(request, "tts", body)
        utterances = body.get("utterances")
        if not isinstance(utterances, list) or not utterances:
            return _invalid("at least one utterance is required", ["utterances"])
        for index, utterance in enumerate(utterances):
            if not isinstance(utterance, dict) or not isinstance(utterance.get("text"), str):
                return _invalid("text is required", ["utterances", index, "text"])
            if body.get("instant_mode") and not utterance.get("voice"):
                return _invalid("a voice is required in instant mode", ["utterances", index])
        fmt = (body.get("format") or {}).get("type", "mp3")
        if fmt not in ("pcm", "wav"):
            return _invalid(f"emulator renders pcm or wav, not {fmt}", ["format", "type"])
        behavior, fault = self._claim_fault("tts", record)
        if fault is Fault.HTTP_500:
            return web.json_response({"message": "Internal server error"}, status=500)
        lines = [json.dumps(chunk).encode() + b"\n" for chunk in self._chunks(body, fmt)]
        record.sent.append({"chunks": sum(b'"type": "audio"' in line for line in lines)})
        return await self._stream(request, behavior, fault, lines, "application/json", b"")

    def _chunks(self, body: dict[str, Any], fmt: str) -> Iterator[dict[str, Any]]:
        """Yield the audio and timestamp messages of every generation, in order."""
        request_id = str(uuid.uuid4())
        want_words = "word" in (body.get("include_timestamp_types") or [])
        every_header = fmt == "wav" and not body.get("strip_headers")
        step = HUME_SAMPLE_RATE * 2 * self._chunk_ms // 1000
        for _ in range(int(body.get("num_generations") or 1)):
            generation_id = str(uuid.uuid4())
            pieces: list[tuple[int, dict[str, str], bytes, list[dict[str, Any]]]] = []
            offset_s = 0.0
            for index, utterance in enumerate(body["utterances"]):
                ids = {"snippet_id": str(uuid.uuid4()), "text": utterance["text"]}
                synth = speech_like(
                    utterance["text"],
                    HUME_SAMPLE_RATE,
                    ms_per_char=self._ms_per_char,
                    speed=float(utterance.get("speed") or 1.0),
                )
                silence = bytes(
                    2 * int(float(utterance.get("trailing_silence") or 0) * HUME_SAMPLE_RATE)
                )
                audio = synth.pcm + silence
                words = list(synth.words) if want_words else []
                for start in range(0, max(len(audio), 1), step):
                    end_s = (start + step) / 2 / HUME_SAMPLE_RATE
                    stamps = [
                        _word_stamp(w, offset_s + b, offset_s + e) for w, b, e in words if b < end_s
                    ]
                    words = [w for w in words if w[1] >= end_s]
                    pieces.append((index, ids, audio[start : start + step], stamps))
                offset_s += len(audio) / 2 / HUME_SAMPLE_RATE
            for chunk_index, (index, ids, pcm, stamps) in enumerate(pieces):
                common = {"generation_id": generation_id, "request_id": request_id}
                for stamp in stamps:
                    yield {"type": "timestamp", **common, "snippet_id": ids["snippet_id"], **stamp}
                if fmt == "wav" and (every_header or chunk_index == 0):
                    pcm = wav_header(len(pcm), HUME_SAMPLE_RATE) + pcm
                yield {
                    "type": "audio",
                    **common,
                    **ids,
                    "audio": base64.b64encode(pcm).decode(),
                    "audio_format": fmt,
                    "chunk_index": chunk_index,
                    "is_last_chunk": chunk_index == len(pieces) - 1,
                    "utterance_index": index,
                    "transcribed_text": None,
                    "snippet": None,
                }


def _word_stamp(word: str, begin_s: float, end_s: float) -> dict[str, Any]:
    interval = {"begin": int(begin_s * 1000), "end": int(end_s * 1000)}
    return {"timestamp": {"type": "word", "text": word, "time": interval}}
