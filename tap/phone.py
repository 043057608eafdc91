"""The phone's side of a session: protocol messages out, validated messages in."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from loguru import logger
from pipecat.frames.frames import Frame

from frames.ui import QuestEditFrame, UiEventFrame, UiStateFrame
from protocol import (
    TOPIC,
    BotResponse,
    BotState,
    ErrorMessage,
    FinalTranscript,
    Hello,
    Incoming,
    Outbox,
    PartialTranscript,
    ProtocolError,
    QuestEdit,
    ServerData,
    UiEvent,
    UiState,
    parse_incoming,
)
from transport.base import KaneTransport

TRANSCRIPTION_TOPIC = "lk.transcription"
AGENT_STATE_ATTRIBUTE = "lk.agent.state"

# What also goes out as LiveKit's conventions: transcripts as text streams, the state as an
# attribute.
_FOLLOWED_BY_LIVEKIT = (BotState, PartialTranscript, FinalTranscript, BotResponse)

JournalHook = Callable[[str, dict[str, Any]], None]
FrameHook = Callable[[Frame], Awaitable[None]]
UiHook = Callable[[int, str, dict[str, Any]], Awaitable[None]]


class SenderCall:
    """A call the phone's sender makes on its next turn, or the loop (`by_loop`) if sooner.

    Whichever comes first makes it, once; `cancel` stops both, as a loop's handle does.
    """

    __slots__ = ("_callback", "_timer")

    def __init__(self, callback: Callable[[], None]):
        self._callback: Callable[[], None] | None = callback
        self._timer: asyncio.Handle | None = None

    def by_loop(self, loop: asyncio.AbstractEventLoop, after_s: float) -> SenderCall:
        """Have `loop` make the call after `after_s` (on its next turn for 0), unless made first.

        Returns:
            The call itself.
        """
        self._timer = loop.call_later(after_s, self) if after_s > 0 else loop.call_soon(self)
        return self

    def cancel(self) -> None:
        """Do not make the call."""
        self._callback = None
        if self._timer is not None:
            self._timer.cancel()

    def __call__(self) -> None:
        """Make the call, unless it was made or cancelled."""
        callback, self._callback = self._callback, None
        if self._timer is not None:
            self._timer.cancel()
        if callback is not None:
            try:
                callback()
            except Exception as e:
                logger.error(f"{callback} failed: {e}")


class PhoneLink:
    """Talks with the person's phone over the room's data channel.

    Outgoing messages are queued without waiting and sent in order by one task, each as a
    protocol envelope on the `kane` topic; transcripts also go out on LiveKit's
    `lk.transcription` text stream and the bot's state as its `lk.agent.state` attribute,
    so stock LiveKit clients follow along. Those go in order by a second task: a text stream
    takes three round trips to LiveKit, and a quest draft must not wait for the partial
    transcript's stream before it. Incoming packets are validated: a bad one is
    answered with an `error` message and journaled, a stranger's is ignored, and a good one
    is journaled, stored and pushed into the pipeline as a frame.
    """

    def __init__(
        self,
        *,
        transport: KaneTransport,
        session_id: str,
        user_identity: str,
        journal: JournalHook,
        push_frame: FrameHook,
        store_ui: UiHook,
    ):
        """Connect the link to a session's transport.

        Args:
            transport: The session's transport.
            session_id: The session, named in every envelope.
            user_identity: The only participant whose messages are accepted.
            journal: Records a non-frame event (kind, payload) in the session's journal.
            push_frame: Puts a frame into the session's pipeline.
            store_ui: Stores a UI interaction (the phone's seq, kind, payload).
        """
        self._transport = transport
        self._session_id = session_id
        self._user = user_identity
        self._journal = journal
        self._push_frame = push_frame
        self._store_ui = store_ui
        self._outbox = Outbox(session_id)
        self._queue: asyncio.Queue[ServerData | SenderCall | None] = asyncio.Queue()
        self._closing = False
        self._conventions: asyncio.Queue[ServerData | None] = asyncio.Queue()
        self._senders: list[asyncio.Task] = []
        # The sender waits for the queue, empty when it began to: what comes in is next.
        self._sender_waits = False
        self._user_segment = 0
        self._bot_segment = 0
        self._strangers: set[str] = set()
        transport.on_topic(TOPIC, self.receive)

    def __str__(self) -> str:
        return f"PhoneLink({self._session_id})"

    def start(self) -> None:
        """Start sending."""
        name = f"kane-phone-{self._session_id}"
        self._senders = [
            asyncio.create_task(self._send_loop(), name=name),
            asyncio.create_task(self._convention_loop(), name=f"{name}-livekit"),
        ]

    def send(self, data: ServerData) -> None:
        """Queue a message for the phone (never waits)."""
        self._queue.put_nowait(data)
        if isinstance(data, _FOLLOWED_BY_LIVEKIT):
            self._conventions.put_nowait(data)

    def call_soon(self, callback: Callable[[], None], *, within_s: float) -> SenderCall:
        """Have the sender call `callback` on its next turn, and send what it queues then.

        The tap's batch for a quest card is run this way: what it sends leaves in the same
        turn of the loop, rather than a turn after a callback of its own. A sender that
        waits for work is sure to make the call on its next turn; should it be busy (a
        packet in flight, messages before the call) for `within_s`, the loop makes it
        instead, and before the link starts and once it closes the loop makes it at once.
        Only the busy sender's call costs a timer on the caller's path.

        Args:
            callback: What to call (it must not raise).
            within_s: How long the call may wait for the sender.

        Returns:
            The call, to cancel.
        """
        call = SenderCall(callback)
        if not self._senders or self._closing:
            return call.by_loop(asyncio.get_running_loop(), 0.0)
        if not (self._sender_waits and self._queue.empty()):
            call.by_loop(asyncio.get_running_loop(), within_s)
        self._queue.put_nowait(call)
        return call

    async def close(self, timeout_s: float = 3.0) -> None:
        """Send what is queued, then stop."""
        if not self._senders:
            return
        self._closing = True
        self._queue.put_nowait(None)
        self._conventions.put_nowait(None)
        _, late = await asyncio.wait(self._senders, timeout=timeout_s)
        if late:
            logger.warning(
                f"{self}: {self._queue.qsize() + self._conventions.qsize()} messages not sent"
                " before the end"
            )
            for sender in late:
                sender.cancel()
        self._senders = []
        self._closing = False

    async def _send_loop(self) -> None:
        while True:
            self._sender_waits = self._queue.empty()
            data = await self._queue.get()
            self._sender_waits = False
            if data is None:
                return
            if isinstance(data, SenderCall):
                data()
                continue
            try:
                await self._transport.publish(self._outbox.pack(data), topic=TOPIC)
            except Exception as e:
                logger.warning(f"{self}: {data.type} not sent: {e}")

    async def _convention_loop(self) -> None:
        while (data := await self._conventions.get()) is not None:
            try:
                await self._follow_livekit_conventions(data)
            except Exception as e:
                logger.warning(f"{self}: {data.type} not sent as LiveKit's convention: {e}")

    async def _follow_livekit_conventions(self, data: ServerData) -> None:
        if isinstance(data, BotState):
            await self._transport.set_attributes({AGENT_STATE_ATTRIBUTE: data.state})
        elif isinstance(data, PartialTranscript | FinalTranscript):
            final = isinstance(data, FinalTranscript)
            await self._transport.send_text(
                data.text,
                topic=TRANSCRIPTION_TOPIC,
                attributes={
                    "lk.segment_id": f"user-{self._user_segment}",
                    "lk.transcription_final": "true" if final else "false",
                },
                sender_identity=self._user,
            )
            self._user_segment += int(final)
        elif isinstance(data, BotResponse):
            self._bot_segment += 1
            await self._transport.send_text(
                data.text,
                topic=TRANSCRIPTION_TOPIC,
                attributes={
                    "lk.segment_id": f"kane-{self._bot_segment}",
                    "lk.transcription_final": "true",
                },
            )

    async def receive(self, payload: bytes, sender: str | None) -> None:
        """Handle one packet that arrived on the `kane` topic."""
        if sender != self._user:
            if sender not in self._strangers:
                self._strangers.add(sender or "")
                logger.warning(f"{self}: ignoring messages from {sender!r}, not the session's user")
            return
        try:
            message = parse_incoming(payload, session_id=self._session_id)
        except ProtocolError as e:
            logger.info(f"{self}: refused a message: {e.code}: {e.message}")
            self._journal("protocol_error", {"code": e.code, "message": e.message})
            self.send(ErrorMessage(code=e.code, message=e.message))
            return
        await self._accept(message)

    async def _accept(self, message: Incoming) -> None:
        data = message.data
        payload = data.model_dump(mode="json")
        self._journal(f"phone_{data.type}", {"seq": message.seq, **payload})
        now = time.time()
        frame: Frame | None = None
        if isinstance(data, UiState):
            frame = UiStateFrame(
                current_screen=data.current_screen,
                selected_quest=data.selected_quest,
                visible_quest_ids=list(data.visible_quest_ids),
                received_at=now,
            )
        elif isinstance(data, UiEvent):
            frame = UiEventFrame(
                action=data.action, target=data.target, value=data.value, received_at=now
            )
        elif isinstance(data, QuestEdit):
            changes = data.changes.model_dump(exclude_none=True)
            frame = QuestEditFrame(quest_id=data.quest_id, changes=changes, received_at=now)
        elif isinstance(data, Hello):
            logger.info(f"{self}: the phone runs app {data.app_version}")
        if frame is not None:
            try:
                await self._store_ui(message.seq, data.type, payload)
            except Exception as e:
                logger.error(f"{self}: UI interaction not stored: {e}")
            await self._push_frame(frame)
