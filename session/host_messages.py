"""What the worker and its session processes tell each other: one JSON object per line.

The worker (api/session_processes.py) writes commands to a session process's stdin; the
process (session/host.py) answers with events on a pipe of its own. Both sides validate what
they read: a line that is not one of these is logged and skipped, never acted on.
"""

from __future__ import annotations

from typing import Annotated, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

T = TypeVar("T")

MAX_LINE_BYTES = 64 * 1024
"""The longest line either side reads; a longer one is refused."""


class _Message(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class StartSession(_Message):
    """Run a bot for this session in this LiveKit room."""

    op: Literal["start"] = "start"
    session_id: str = Field(min_length=1, max_length=64)
    user_id: str = Field(min_length=1, max_length=128)
    room: str = Field(min_length=1, max_length=128)
    livekit_url: str = Field(min_length=1, max_length=2048)
    bot_token: str = Field(min_length=1, max_length=8192, repr=False)


class EndSession(_Message):
    """End one session cleanly (the bot says its last words, then leaves)."""

    op: Literal["end"] = "end"
    session_id: str = Field(min_length=1, max_length=64)
    reason: str = Field(min_length=1, max_length=500)


class EndAll(_Message):
    """End every session, wait up to `grace_s` for them, then exit."""

    op: Literal["end_all"] = "end_all"
    reason: str = Field(min_length=1, max_length=500)
    grace_s: float = Field(ge=0, le=600)


Command = Annotated[StartSession | EndSession | EndAll, Field(discriminator="op")]


class Ready(_Message):
    """The process has loaded what sessions need and takes sessions."""

    event: Literal["ready"] = "ready"
    pid: int


class Ended(_Message):
    """A session of this process ended (its end is recorded)."""

    event: Literal["ended"] = "ended"
    session_id: str
    reason: str


class Refused(_Message):
    """A command this process could not take.

    With a `session_id`, that session does not run here: a start it could not make, or an
    end of a session it does not have.
    """

    event: Literal["refused"] = "refused"
    session_id: str | None = None
    reason: str


Event = Annotated[Ready | Ended | Refused, Field(discriminator="event")]

_commands: TypeAdapter[Command] = TypeAdapter(Command)
_events: TypeAdapter[Event] = TypeAdapter(Event)


class BadLineError(ValueError):
    """A line that is not a message of this protocol."""


def encode(message: _Message) -> bytes:
    """One message as a line of JSON."""
    return message.model_dump_json().encode() + b"\n"


def decode_command(line: bytes) -> StartSession | EndSession | EndAll:
    """A command read from the worker.

    Raises:
        BadLineError: The line is too long, not JSON, or not a command.
    """
    return _decode(_commands, line)


def decode_event(line: bytes) -> Ready | Ended | Refused:
    """An event read from a session process.

    Raises:
        BadLineError: The line is too long, not JSON, or not an event.
    """
    return _decode(_events, line)


def _decode(adapter: TypeAdapter[T], line: bytes) -> T:
    if len(line) > MAX_LINE_BYTES:
        raise BadLineError(f"a line of {len(line)} bytes (at most {MAX_LINE_BYTES})")
    try:
        return adapter.validate_json(line)
    except ValidationError as e:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'line'}: {err['msg']}"
            for err in e.errors(include_input=False)
        )
        raise BadLineError(problems) from None
