"""What a KANE session needs of its transport, whichever carries it (LiveKit, WebRTC, a file).

Beside Pipecat's audio in and out, a session needs a data channel with topics (the phone's
protocol on `kane`), text streams and attributes (LiveKit's conventions, where they exist), and
to know when the bot and the person come and go. Every transport KANE runs on offers these
methods and emits these events, with LiveKit's names and arguments:

- ``on_connected(transport)``: the bot is in (the room joined, the peer connected, the file open);
- ``on_participant_connected(transport, identity)`` and
  ``on_first_participant_joined(transport, identity)``: the person arrived;
- ``on_participant_disconnected(transport, identity)``: the person left;
- ``on_before_disconnect(transport)``, awaited: the bot is about to leave, its pipeline drained
  up to the output (the last moment to send on the data channel).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, Protocol

from loguru import logger
from pipecat.processors.frame_processor import FrameProcessor
from pipecat.transports.base_input import BaseInputTransport

DataHandler = Callable[[bytes, str | None], Coroutine[Any, Any, None]]
"""Called with a data packet's payload and its sender's identity."""


class KaneTransport(Protocol):
    """A Pipecat transport with the data channel and events a KANE session uses."""

    def input(self) -> FrameProcessor:
        """The processor that brings the person's audio in."""
        ...

    def output(self) -> FrameProcessor:
        """The processor that sends the bot's audio out."""
        ...

    def add_event_handler(self, event_name: str, handler: Any) -> None:
        """Register a handler for one of the events above."""
        ...

    def event_handler(self, event_name: str) -> Callable[[Any], Any]:
        """Decorator form of `add_event_handler`."""
        ...

    def on_topic(self, topic: str, handler: DataHandler) -> None:
        """Call `handler(payload, sender_identity)` for every data packet on `topic`."""
        ...

    async def publish(self, payload: bytes, *, topic: str) -> bool:
        """Send a reliable data packet on `topic`; whether it was handed over.

        The phone link starts it at once (`tap.eager.Begun`): what it does before its first
        wait runs in the caller's turn of the loop, so it hands the packet over there and
        waits only for the acknowledgement; packets handed over one after another must
        leave in that order.
        """
        ...

    async def send_text(
        self,
        text: str,
        *,
        topic: str,
        attributes: dict[str, str],
        sender_identity: str | None = None,
    ) -> None:
        """Send `text` as one text stream on `topic` (a no-op where streams do not exist)."""
        ...

    async def set_attributes(self, attributes: dict[str, str]) -> None:
        """Set attributes of the bot's participant (a no-op where they do not exist)."""
        ...

    async def close(self) -> None:
        """Let go of what the transport holds outside its pipeline (idempotent).

        Called when the session is over, also when its pipeline never ran.
        """
        ...


MICROPHONE_DRAIN_S = 5.0
"""How long a session's end waits for the person's audio already taken in to go down."""


async def drain_microphone(transport: KaneTransport, timeout_s: float = MICROPHONE_DRAIN_S) -> bool:
    """Wait until the person's audio the transport has taken in has gone into the pipeline.

    Pipecat's input transport queues the microphone's frames and pushes them on from a task of
    its own; at an `EndFrame` it cancels that task, and what is still queued is dropped. On a
    busy worker the queue holds seconds of the person's last words (2.3 s at 32 sessions on two
    cores in `bench/`), which then reach neither STT nor the recording. A graceful end calls
    this first; audio arriving after it is after the session's end.

    Args:
        transport: The session's transport.
        timeout_s: How long to wait at most.

    Returns:
        Whether the queue emptied in time (True at once when the input queues nothing).
    """
    source = transport.input()
    if not isinstance(source, BaseInputTransport) or source._audio_task is None:
        return True
    queue = source._audio_in_queue  # made with the audio task
    try:
        await asyncio.wait_for(queue.join(), timeout_s)
    except TimeoutError:
        logger.warning(
            f"{source}: {queue.qsize()} frames of the person's audio still queued after"
            f" {timeout_s:g} s; the session ends without them"
        )
        return False
    return True
