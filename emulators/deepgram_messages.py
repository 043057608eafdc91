"""The JSON messages Deepgram's live ``/v1/listen`` socket sends, in their real shape."""

from __future__ import annotations

import hashlib
import re
import uuid
from datetime import UTC, datetime
from typing import Any

MODEL_UUID = "1f6e5e2d-0000-4000-8000-00000000e1a0"
MODEL_INFO = {"name": "general-nova-3", "version": "2025-01-01.0", "arch": "nova-3"}
WORD_CONFIDENCE = 0.98


def split_words(text: str) -> list[tuple[str, str]]:
    """Split a scripted text into ``(word, punctuated_word)`` pairs.

    ``word`` is what Deepgram puts in ``word`` (lower case, no punctuation);
    ``punctuated_word`` keeps the text as written.
    """
    pairs = []
    for token in text.split():
        bare = re.sub(r"[^\w'-]", "", token).lower()
        if bare:
            pairs.append((bare, token))
    return pairs


def results(
    *,
    request_id: str,
    words: list[tuple[str, str]],
    start: float,
    duration: float,
    is_final: bool,
    speech_final: bool,
    from_finalize: bool = False,
    punctuate: bool = True,
) -> dict[str, Any]:
    """Build a ``Results`` message whose words share ``[start, start + duration]`` evenly.

    Args:
        request_id: The connection's request id.
        words: ``(word, punctuated_word)`` pairs this result carries.
        start: Start of the result's audio window, seconds from the stream start.
        duration: Length of the window in seconds.
        is_final: Whether this transcript segment is final.
        speech_final: Whether an endpoint (end of speech) was detected.
        from_finalize: Whether the result answers a ``Finalize`` message.
        punctuate: Use punctuated words in the transcript.

    Returns:
        The message as a JSON-ready dict.
    """
    slot = duration / max(len(words), 1)
    word_items = [
        {
            "word": word,
            "start": round(start + i * slot, 3),
            "end": round(start + (i + 1) * slot, 3),
            "confidence": WORD_CONFIDENCE,
            "punctuated_word": punctuated if punctuate else word,
        }
        for i, (word, punctuated) in enumerate(words)
    ]
    transcript = " ".join(str(w["punctuated_word"]) for w in word_items)
    return {
        "type": "Results",
        "channel_index": [0, 1],
        "duration": round(duration, 3),
        "start": round(start, 3),
        "is_final": is_final,
        "speech_final": speech_final,
        "channel": {
            "alternatives": [
                {
                    "transcript": transcript,
                    "confidence": WORD_CONFIDENCE if word_items else 0.0,
                    "words": word_items,
                }
            ]
        },
        "metadata": {
            "request_id": request_id,
            "model_info": MODEL_INFO,
            "model_uuid": MODEL_UUID,
        },
        "from_finalize": from_finalize,
    }


def speech_started(timestamp: float) -> dict[str, Any]:
    """Build a ``SpeechStarted`` message (sent with ``vad_events=true``)."""
    return {"type": "SpeechStarted", "channel": [0], "timestamp": round(timestamp, 3)}


def utterance_end(last_word_end: float) -> dict[str, Any]:
    """Build an ``UtteranceEnd`` message (sent with ``utterance_end_ms``)."""
    return {"type": "UtteranceEnd", "channel": [0, 1], "last_word_end": round(last_word_end, 3)}


def metadata(request_id: str, duration: float, channels: int, audio: bytes) -> dict[str, Any]:
    """Build the ``Metadata`` message Deepgram sends before closing the stream."""
    return {
        "type": "Metadata",
        "transaction_key": "deprecated",
        "request_id": request_id,
        "sha256": hashlib.sha256(audio).hexdigest(),
        "created": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "duration": round(duration, 3),
        "channels": channels,
        "models": [MODEL_UUID],
        "model_info": {MODEL_UUID: MODEL_INFO},
    }


def new_request_id() -> str:
    """Return a fresh request id (a UUID, like Deepgram's ``dg-request-id``)."""
    return str(uuid.uuid4())
