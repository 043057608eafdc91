"""What the reference client receives besides audio: data packets, text streams, attributes."""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

MessageKind = Literal["data", "text_stream", "attributes"]


@dataclass
class ReceivedMessage:
    """One thing that arrived in the room for the client.

    Parameters:
        kind: ``"data"`` for a data packet, ``"text_stream"`` for a complete text stream
            (such as ``lk.transcription``), ``"attributes"`` for changed participant attributes.
        topic: The packet's or stream's topic; None for attributes.
        sender: Identity of the participant who sent it, when known.
        payload: The decoded JSON value when the body is JSON, else the text (or, for data
            that is not UTF-8, the bytes as hex); for attributes, the changed key/values.
        attributes: A text stream's attributes (e.g. ``lk.transcription_final``).
        received_at: ``time.monotonic()`` on arrival, comparable with the client's timestamps.
        wall_time: ``time.time()`` on arrival.
    """

    kind: MessageKind
    topic: str | None
    sender: str | None
    payload: Any
    attributes: dict[str, str] = field(default_factory=dict)
    received_at: float = field(default_factory=time.monotonic)
    wall_time: float = field(default_factory=time.time)

    @property
    def type(self) -> str | None:
        """The ``type`` field of a KANE envelope, or None when the payload is not one."""
        if isinstance(self.payload, dict):
            value = self.payload.get("type")
            return value if isinstance(value, str) else None
        return None

    def to_json(self) -> str:
        """Return the message as one JSON line (monotonic time left out)."""
        record = asdict(self)
        record.pop("received_at")
        return json.dumps(record, ensure_ascii=False, default=str)


def decode_payload(data: bytes | str) -> Any:
    """Decode a message body: JSON when it parses, else text, else hex of the bytes."""
    if isinstance(data, bytes):
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            return data.hex()
    else:
        text = data
    try:
        return json.loads(text)
    except ValueError:
        return text
