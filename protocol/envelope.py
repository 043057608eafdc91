"""Packing server messages into envelopes, and parsing the phone's envelopes safely."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import pydantic_core
from pydantic import ValidationError

from protocol.messages import (
    CLIENT_MESSAGES,
    SERVER_MESSAGES,
    ClientData,
    ServerData,
    ServerMessage,
)

TOPIC = "kane"
"""The LiveKit data topic of the protocol."""

PROTOCOL_VERSION = 1
"""The envelope's `v`."""

MAX_INCOMING_BYTES = 16 * 1024
"""The largest packet the phone may send."""

MAX_SESSION_ID = 128
MAX_COUNTER = 2**53 - 1  # what a JavaScript or Swift Double client can still count exactly
ENVELOPE_KEYS = frozenset({"v", "type", "session_id", "seq", "ts", "data"})

ErrorCode = Literal[
    "too_large", "not_json", "invalid", "unknown_type", "wrong_version", "wrong_session"
]


def now_ms() -> int:
    """Milliseconds since the epoch."""
    return time.time_ns() // 1_000_000


class ProtocolError(Exception):
    """A packet from the phone that the server refuses.

    Attributes:
        code: One of "too_large", "not_json", "invalid", "unknown_type", "wrong_version",
            "wrong_session"; fit for `ErrorMessage.code`.
        message: What is wrong, for people; quotes at most a few dozen characters of the
            packet, so it is safe to log and to send back.
        ref_seq: The packet's `seq`, when it could be read.
    """

    def __init__(self, code: ErrorCode, message: str, ref_seq: int | None = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code: ErrorCode = code
        self.message = message
        self.ref_seq = ref_seq


@dataclass(frozen=True, slots=True)
class Incoming:
    """A valid message from the phone.

    Parameters:
        type: The wire type, e.g. "ui_state".
        session_id: The session it names (checked when `parse_incoming` was given one).
        seq: The phone's sequence number.
        ts: When the phone sent it, in milliseconds since the epoch.
        data: The typed message.
    """

    type: str
    session_id: str
    seq: int
    ts: int
    data: ClientData


class Outbox:
    """Packs server → phone messages of one session into envelopes.

    Sequence numbers start at 1 and rise by one per packed message. Packing costs a few
    microseconds: the envelope's head is prepared once per message type and session, and only
    `data` goes through pydantic's serializer.

    Args:
        session_id: The session every envelope names.
        clock: Returns milliseconds since the epoch; the wall clock by default.
    """

    def __init__(self, session_id: str, *, clock: Callable[[], int] = now_ms) -> None:
        self._session_id = session_id
        self._clock = clock
        self._seq = 1
        sid = json.dumps(session_id, ensure_ascii=False).encode()
        self._heads: dict[type[ServerMessage], bytes] = {
            cls: b'{"v":%d,"type":"%s","session_id":%s,"seq":'
            % (PROTOCOL_VERSION, wire_type.encode(), sid)
            for wire_type, cls in SERVER_MESSAGES.items()
        }

    @property
    def session_id(self) -> str:
        """The session every envelope names."""
        return self._session_id

    @property
    def next_seq(self) -> int:
        """The `seq` the next packed message gets."""
        return self._seq

    def pack(self, data: ServerData) -> bytes:
        """Wrap a message in the next envelope.

        Args:
            data: A server → phone message.

        Returns:
            The envelope as compact UTF-8 JSON.

        Raises:
            TypeError: `data` is not a server → phone message.
            pydantic_core.PydanticSerializationError: Free-form content (tool arguments,
                quest changes) cannot be written as JSON; `seq` is not used up then.
        """
        head = self._heads.get(type(data))
        if head is None:
            raise TypeError(f"{type(data).__name__} is not a server → phone message")
        body = data.__pydantic_serializer__.to_json(data)
        seq = self._seq
        self._seq = seq + 1
        return b'%s%d,"ts":%d,"data":%s}' % (head, seq, self._clock(), body)

    def __repr__(self) -> str:
        return f"Outbox(session_id={self._session_id!r}, next_seq={self._seq})"


def parse_incoming(raw: bytes | str, *, session_id: str | None = None) -> Incoming:
    """Parse and validate one packet from the phone.

    Checks, in this order: size (before decoding), JSON, that it is an object, the version,
    the type, the envelope's fields, the message's fields, and the session.

    Args:
        raw: The packet as received.
        session_id: When given, the envelope must name this session.

    Returns:
        The typed message.

    Raises:
        ProtocolError: For any packet that is not a valid phone → server message; nothing
            else is raised, whatever the input.
    """
    doc = _decode(raw)
    if not isinstance(doc, dict):
        raise ProtocolError("invalid", f"the envelope must be a JSON object, not {_kind(doc)}")

    v = doc.get("v")
    if type(v) is not int:
        raise ProtocolError("invalid", "the envelope needs an integer 'v'")
    if v != PROTOCOL_VERSION:
        raise ProtocolError(
            "wrong_version", f"protocol version {_clip(v)} is not spoken here; use 1"
        )

    wire_type = doc.get("type")
    if not isinstance(wire_type, str):
        raise ProtocolError("invalid", "the envelope needs a string 'type'")
    cls = CLIENT_MESSAGES.get(wire_type)
    if cls is None:
        known = ", ".join(CLIENT_MESSAGES)
        raise ProtocolError("unknown_type", f"unknown type {_clip(wire_type)}; known: {known}")

    seq, ts, claimed_session, data = _envelope_fields(doc)
    try:
        message: Any = cls.model_validate(data)
    except ValidationError as e:
        raise ProtocolError("invalid", f"{wire_type}: {_summarize(e)}", seq) from None
    if session_id is not None and claimed_session != session_id:
        raise ProtocolError("wrong_session", "the envelope names another session", seq)
    return Incoming(type=wire_type, session_id=claimed_session, seq=seq, ts=ts, data=message)


def _decode(raw: bytes | str) -> Any:
    if isinstance(raw, str):
        # A character is at least one byte: a cheap refusal before encoding anything big.
        if len(raw) > MAX_INCOMING_BYTES:
            raise ProtocolError("too_large", f"a packet may hold {MAX_INCOMING_BYTES} bytes")
        try:
            raw = raw.encode("utf-8")
        except UnicodeEncodeError:
            raise ProtocolError("not_json", "the packet is not valid UTF-8") from None
    elif not isinstance(raw, bytes | bytearray | memoryview):
        raise ProtocolError("not_json", f"a packet is bytes or text, not {type(raw).__name__}")
    if len(raw) > MAX_INCOMING_BYTES:
        raise ProtocolError("too_large", f"a packet may hold {MAX_INCOMING_BYTES} bytes")
    try:
        # jiter (pydantic's JSON parser) refuses invalid UTF-8, lone surrogates, NaN and
        # nesting deeper than 200, without using Python's stack.
        return pydantic_core.from_json(raw, allow_inf_nan=False)
    except (ValueError, RecursionError) as e:
        raise ProtocolError("not_json", f"not JSON: {_clip(str(e), 80, quote=False)}") from None


def _envelope_fields(doc: dict[str, Any]) -> tuple[int, int, str, dict[str, Any]]:
    seq = doc.get("seq")
    ref_seq = seq if type(seq) is int and 0 <= seq <= MAX_COUNTER else None
    extra = doc.keys() - ENVELOPE_KEYS
    if extra:
        names = ", ".join(sorted(_clip(k, 32) for k in extra)[:3])
        raise ProtocolError("invalid", f"unknown envelope fields: {names}", ref_seq)
    if ref_seq is None:
        raise ProtocolError("invalid", f"'seq' must be an integer in 0..{MAX_COUNTER}")
    ts = doc.get("ts")
    if type(ts) is not int or not 0 <= ts <= MAX_COUNTER:
        raise ProtocolError(
            "invalid", "'ts' must be milliseconds since the epoch, an integer", ref_seq
        )
    sid = doc.get("session_id")
    if not isinstance(sid, str) or not 1 <= len(sid) <= MAX_SESSION_ID:
        raise ProtocolError(
            "invalid", f"'session_id' must be a string of 1..{MAX_SESSION_ID} characters", ref_seq
        )
    data = doc.get("data")
    if not isinstance(data, dict):
        raise ProtocolError("invalid", "'data' must be a JSON object", ref_seq)
    return ref_seq, ts, sid, data


def _summarize(error: ValidationError) -> str:
    """Say what is wrong without quoting the input (pydantic's own text quotes it)."""
    problems = error.errors(include_url=False, include_input=False, include_context=False)
    parts = []
    for problem in problems[:2]:
        where = ".".join(
            _clip(p, 24, quote=False) if isinstance(p, str) else str(p) for p in problem["loc"]
        )
        parts.append(f"{where}: {problem['msg']}" if where else problem["msg"])
    more = f" (and {len(problems) - 2} more)" if len(problems) > 2 else ""
    return _clip("; ".join(parts), 240, quote=False) + more


def _clip(value: object, limit: int = 40, *, quote: bool = True) -> str:
    text = str(value)
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return repr(text) if quote and isinstance(value, str) else text


def _kind(value: object) -> str:
    return {list: "an array", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(value), "a number"
    )
