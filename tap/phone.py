"""The phone's side of a session: protocol messages out, validated messages in."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any, NamedTuple

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
from tap.eager import Begun
from transport.base import KaneTransport

TRANSCRIPTION_TOPIC = "lk.transcription"
AGENT_STATE_ATTRIBUTE = "lk.agent.state"

# What also goes out as LiveKit's conventions: transcripts as text streams, the state as an
# attribute.
_FOLLOWED_BY_LIVEKIT = (BotState, PartialTranscript, FinalTranscript, BotResponse)

JournalHook = Callable[[str, dict[str, Any]], None]
FrameHook = Callable[[Frame], Awaitable[None]]
UiHook = Callable[[int, str, dict[str, Any]], Awaitable[None]]

# Most packets handed over to the room whose acknowledgement the sender has not had yet;
# what comes while this many wait is queued, and the sender hands it over in its turn.
MOST_HANDED_OVER = 64


class _HandedOver(NamedTuple):
    """A packet handed over to the room: its message's type, and the rest of its send."""

    kind: str
    send: Begun[bool]


class PhoneLink:
    """Talks with the person's phone over the room's data channel.

    Outgoing messages go in order, each as a protocol envelope on the `kane` topic, and
    never make the caller wait: a message is handed over to the room at once, in the
    caller's turn of the loop, unless messages queued before it still are not; a task
    awaits the room's acknowledgements and hands over what was queued (before the link
    starts, or while `MOST_HANDED_OVER` await theirs). Transcripts also go out on LiveKit's
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
        # In order: packets handed over (the sender awaits their acknowledgement) and
        # messages not handed over yet (`_unsent` of them).
        self._queue: asyncio.Queue[_HandedOver | ServerData | None] = asyncio.Queue()
        self._unsent = 0
        self._unacknowledged = 0
        self._closing = False
        self._conventions: asyncio.Queue[ServerData | None] = asyncio.Queue()
        self._senders: list[asyncio.Task] = []
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
        """Hand a message over to the room now, or queue it after those before it.

        Never waits: what the transport does before it first waits (LiveKit queues the
        packet for the room) happens here, the rest is the sender's.
        """
        if (
            self._senders
            and not self._closing
            and not self._unsent
            and self._unacknowledged < MOST_HANDED_OVER
        ):
            handed_over = self._hand_over(data)
            if handed_over is not None:
                self._queue.put_nowait(handed_over)
        else:
            self._unsent += 1
            self._queue.put_nowait(data)
        if isinstance(data, _FOLLOWED_BY_LIVEKIT):
            self._conventions.put_nowait(data)

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
                f"{self}: {self._unsent + self._conventions.qsize()} messages not sent before"
                f" the end, {self._unacknowledged} not acknowledged"
            )
            for sender in late:
                sender.cancel()
            await asyncio.wait(late, timeout=timeout_s)
            while not self._queue.empty():
                if isinstance(item := self._queue.get_nowait(), _HandedOver):
                    item.send.close()
        self._senders = []
        self._closing = False

    def _hand_over(self, data: ServerData) -> _HandedOver | None:
        try:
            payload = self._outbox.pack(data)
        except Exception as e:
            logger.warning(f"{self}: {data.type} not sent: {e}")
            return None
        self._unacknowledged += 1
        return _HandedOver(data.type, Begun(self._transport.publish(payload, topic=TOPIC)))

    async def _send_loop(self) -> None:
        while (item := await self._queue.get()) is not None:
            if not isinstance(item, _HandedOver):
                self._unsent -= 1
                if (item := self._hand_over(item)) is None:
                    continue
            try:
                await item.send
            except Exception as e:
                logger.warning(f"{self}: {item.kind} not sent: {e}")
            finally:
                self._unacknowledged -= 1

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
