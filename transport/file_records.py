"""What a file session plays and keeps: text turns in; KANE's messages, the person's turns out.

Plain data, for `transport.file.FileTransport` and the experiments that read its runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class TextTurn:
    """Something the person said, as text, and when.

    Parameters:
        at_s: Seconds after the person joined.
        text: What they said.
    """

    at_s: float
    text: str


@dataclass(frozen=True)
class SentMessage:
    """A data packet KANE sent, as the phone would have received it.

    Parameters:
        topic: The packet's topic (``kane`` for the phone's protocol).
        payload: The decoded JSON (an envelope, on ``kane``), or the text if it is not JSON.
        at_s: The session clock when it was sent: seconds of the person's side played.
        wall_s: Wall seconds since the person joined.
    """

    topic: str
    payload: Any
    at_s: float
    wall_s: float

    @property
    def type(self) -> str | None:
        """The envelope's ``type``, or None when the payload is not an envelope."""
        if isinstance(self.payload, dict) and isinstance(self.payload.get("type"), str):
            return self.payload["type"]
        return None

    @property
    def data(self) -> dict[str, Any]:
        """The envelope's ``data`` (empty when there is none)."""
        data = self.payload.get("data") if isinstance(self.payload, dict) else None
        return data if isinstance(data, dict) else {}


@dataclass(frozen=True)
class UserTurn:
    """A turn of the person's, on the session clock, as KANE's turn detection saw it.

    The times are when the transport heard of the turn's start and end: never before the
    audio that made them, and later by however far the pipeline lags behind the file.

    Parameters:
        started_s: When the turn started.
        stopped_s: When it ended; None if it never did.
        stopped_wall_s: When it ended, in wall seconds since the person joined.
    """

    started_s: float
    stopped_s: float | None = None
    stopped_wall_s: float | None = None
