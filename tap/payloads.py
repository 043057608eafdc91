"""What of a frame goes into the journal: its own fields, as JSON, without raw audio."""

from __future__ import annotations

import dataclasses
import enum
import warnings
from typing import Any

from pipecat.frames.frames import (
    AudioRawFrame,
    ErrorFrame,
    Frame,
    ImageRawFrame,
    InterimTranscriptionFrame,
    TranscriptionFrame,
)
from pydantic import BaseModel

# Fields every frame has, which the journal keeps in columns of their own or not at all.
_COMMON = {f.name for f in dataclasses.fields(Frame)}
# Fields that hold media or live objects, never journaled.
_SKIP = {"audio", "image", "result", "processor", "exception", "context", "properties"}
MAX_TEXT = 4000
MAX_ITEMS = 100
MAX_DEPTH = 4

_SCALARS = frozenset({type(None), bool, int, float})

_fields_by_class: dict[type, tuple[str, ...]] = {}


def is_raw_media(frame: Frame) -> bool:
    """Whether a frame carries raw audio or images (kept in recordings, not the journal)."""
    return isinstance(frame, AudioRawFrame | ImageRawFrame)


def frame_payload(frame: Frame) -> dict[str, Any]:
    """The journal payload of a frame: its own fields as JSON values, bounded in size."""
    names = _fields_by_class.get(type(frame))
    if names is None:
        names = _fields_by_class[type(frame)] = _journaled_fields(frame)
    payload = {}
    for name in names:
        value = getattr(frame, name, None)
        # Most fields are short text, numbers or None: kept as they are, without a call.
        if type(value) not in _SCALARS and not (type(value) is str and len(value) <= MAX_TEXT):
            value = _jsonable(value, 0)
        payload[name] = value
    if isinstance(frame, TranscriptionFrame | InterimTranscriptionFrame):
        confidence = transcript_confidence(frame)
        if confidence is not None:
            payload["confidence"] = confidence
    elif isinstance(frame, ErrorFrame) and frame.processor is not None:
        payload["processor"] = frame.processor.name
    return payload


def _journaled_fields(frame: Frame) -> tuple[str, ...]:
    """The fields of a frame's class worth journaling: its own, not media, not deprecated."""
    names = []
    for f in dataclasses.fields(frame):  # type: ignore[arg-type]
        if f.name in _COMMON or f.name in _SKIP:
            continue
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            getattr(frame, f.name, None)
        if not any(issubclass(w.category, DeprecationWarning) for w in caught):
            names.append(f.name)
    return tuple(names)


def transcript_confidence(frame: TranscriptionFrame | InterimTranscriptionFrame) -> float | None:
    """The STT's confidence in a transcript, where the service reports one (Deepgram does)."""
    if frame.result is None:  # most frames; a raised AttributeError would cost a microsecond
        return None
    try:
        value = frame.result.channel.alternatives[0].confidence  # type: ignore[union-attr]
    except (AttributeError, IndexError, TypeError):
        return None
    return float(value) if isinstance(value, int | float) else None


def _jsonable(value: Any, depth: int) -> Any:
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, str):
        return value if len(value) <= MAX_TEXT else value[:MAX_TEXT] + "…"
    if isinstance(value, enum.Enum):
        return _jsonable(value.value, depth)
    if depth >= MAX_DEPTH:
        return repr(value)[:200]
    if isinstance(value, dict):
        items = list(value.items())[:MAX_ITEMS]
        return {str(k): _jsonable(v, depth + 1) for k, v in items}
    if isinstance(value, list | tuple | set | frozenset):
        return [_jsonable(v, depth + 1) for v in list(value)[:MAX_ITEMS]]
    if isinstance(value, BaseModel):
        return _jsonable(value.model_dump(mode="json"), depth + 1)
    if isinstance(value, bytes | bytearray | memoryview):
        return f"<{len(value)} bytes>"
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _jsonable(dataclasses.asdict(value), depth + 1)
    return repr(value)[:200]
