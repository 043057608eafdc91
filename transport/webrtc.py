"""Pipecat's small WebRTC transport (aiortc), with KANE's topics and LiveKit's event names.

The local playground talks to a browser over one WebRTC peer connection: the microphone in,
KANE's voice out, and one data channel. Each packet on that channel is a JSON object:

- ``{"type": "packet", "topic": "kane", "data": {...}}``, both ways: a data packet on a topic
  (LiveKit's data packets, with the JSON payload inline rather than as bytes);
- ``{"type": "text", "topic": "lk.transcription", "text": "...", "attributes": {...},
  "sender": "..."}``, to the browser: what LiveKit sends as one text stream;
- ``{"type": "attributes", "attributes": {...}}``, to the browser: what LiveKit sets as the
  bot participant's attributes (for example ``lk.agent.state``);
- ``{"type": "signalling", ...}``: Pipecat's own (``peerLeft`` when the bot hangs up).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

from loguru import logger
from pipecat.frames.frames import CancelFrame, EndFrame
from pipecat.transports.base_transport import TransportParams
from pipecat.transports.smallwebrtc.connection import SmallWebRTCConnection
from pipecat.transports.smallwebrtc.transport import (
    SmallWebRTCOutputTransport,
    SmallWebRTCTransport,
)

from transport.base import DataHandler

PACKET = "packet"
TEXT = "text"
ATTRIBUTES = "attributes"


class KaneWebRTCTransport(SmallWebRTCTransport):
    """A WebRTC transport to one browser that behaves like KANE's LiveKit transport.

    The browser is the person: when its peer connection is up the bot is "in" and the person
    "joined" (``on_connected``, ``on_participant_connected`` and, the first time,
    ``on_first_participant_joined``, with the person's identity); when the browser goes away,
    ``on_participant_disconnected``. Data packets travel as JSON on the data channel (see the
    module's docstring); packets from the browser go to the handler of their topic, never
    into the pipeline.
    """

    @classmethod
    def for_peer(cls, connection: SmallWebRTCConnection, *, identity: str) -> KaneWebRTCTransport:
        """The bot's transport to one browser, with audio both ways at the pipeline's rates.

        Args:
            connection: The peer connection, already answered.
            identity: The person on the other end (the playground's user id).
        """
        return cls(
            connection,
            identity=identity,
            params=TransportParams(audio_in_enabled=True, audio_out_enabled=True),
        )

    def __init__(
        self,
        webrtc_connection: SmallWebRTCConnection,
        *,
        identity: str,
        params: TransportParams,
        input_name: str | None = None,
        output_name: str | None = None,
    ):
        """Create the transport.

        Args:
            webrtc_connection: The peer connection to the browser.
            identity: The person on the other end, named in events and as the packets' sender.
            params: Pipecat's transport parameters.
            input_name: Optional name of the input processor.
            output_name: Optional name of the output processor.
        """
        super().__init__(webrtc_connection, params, input_name=input_name, output_name=output_name)
        self._connection = webrtc_connection
        self._identity = identity
        self._topic_handlers: dict[str, DataHandler] = {}
        # Handlers run one at a time, in arrival order (each packet arrives on a task of its
        # own; asyncio's lock is first come, first served).
        self._receive_lock = asyncio.Lock()
        self._peer_present = False
        self._peer_ever_joined = False
        for event in (
            "on_connected",
            "on_participant_connected",
            "on_first_participant_joined",
            "on_participant_disconnected",
        ):
            self._register_event_handler(event)
        # As LiveKit's: awaited just before the bot leaves, the pipeline drained up to its output.
        self._register_event_handler("on_before_disconnect", sync=True)
        self.add_event_handler("on_client_connected", self._on_peer_connected)
        self.add_event_handler("on_client_disconnected", self._on_peer_disconnected)

    @property
    def identity(self) -> str:
        """The person on the other end."""
        return self._identity

    def output(self) -> SmallWebRTCOutputTransport:
        """The processor that sends the bot's audio out (and closes the connection at the end)."""
        if not self._output:
            self._output = _ClosingOutputTransport(
                self._client,
                self._params,
                connection=self._connection,
                before_disconnect=self._before_disconnect,
                name=self._output_name,
            )
        return self._output

    def on_topic(self, topic: str, handler: DataHandler) -> None:
        """Call `handler(payload, sender_identity)` for every data packet on `topic`."""
        self._topic_handlers[topic] = handler

    async def publish(self, payload: bytes, *, topic: str) -> bool:
        """Send a data packet on `topic` over the reliable data channel.

        Packets sent before the channel opens are queued by Pipecat's connection (up to 50)
        and sent, in order, when it opens.

        Args:
            payload: UTF-8 JSON (every KANE topic carries JSON); it travels inline.
            topic: The packet's topic.

        Returns:
            Whether it was handed to the connection (False once the browser has gone, or for
            a payload that is not JSON).
        """
        if not self._connection_open():
            return False
        try:
            data = json.loads(payload)
        except ValueError as e:
            logger.warning(f"{self}: data on '{topic}' not sent, it is not JSON: {e}")
            return False
        self._connection.send_app_message({"type": PACKET, "topic": topic, "data": data})
        return True

    async def send_text(
        self,
        text: str,
        *,
        topic: str,
        attributes: dict[str, str],
        sender_identity: str | None = None,
    ) -> None:
        """Send `text` as one ``text`` packet, WebRTC's stand-in for a LiveKit text stream.

        Args:
            text: The text.
            topic: The stream's topic (for example `lk.transcription`).
            attributes: The stream's attributes (for example `lk.transcription_final`).
            sender_identity: On whose behalf the text is sent (the person, for their words).
        """
        if not self._connection_open():
            return
        self._connection.send_app_message(
            {
                "type": TEXT,
                "topic": topic,
                "text": text,
                "attributes": attributes,
                "sender": sender_identity,
            }
        )

    async def set_attributes(self, attributes: dict[str, str]) -> None:
        """Send the bot's attributes (for example `lk.agent.state`) as one ``attributes`` packet."""
        if not self._connection_open():
            return
        self._connection.send_app_message({"type": ATTRIBUTES, "attributes": attributes})

    async def _before_disconnect(self) -> None:
        await self._call_event_handler("on_before_disconnect")

    async def close(self) -> None:
        """Close the peer connection, also one whose session never got to run."""
        if self._connection.pc.connectionState != "closed":
            await self._connection.disconnect()

    def _connection_open(self) -> bool:
        return self._connection.pc.connectionState not in ("closed", "failed")

    async def _on_app_message(self, message: Any, sender: str) -> None:
        # Pipecat would push every packet into the pipeline; KANE's packets go to the handler
        # of their topic instead, which validates them.
        if not isinstance(message, dict) or message.get("type") != PACKET:
            logger.debug(f"{self}: ignoring a data channel message that is not a packet")
            return
        topic = message.get("topic")
        handler = self._topic_handlers.get(topic) if isinstance(topic, str) else None
        if handler is None:
            return
        payload = json.dumps(message.get("data"), ensure_ascii=False).encode()
        async with self._receive_lock:
            await handler(payload, self._identity)

    async def _on_peer_connected(self, transport: SmallWebRTCTransport, client: Any) -> None:
        if self._peer_present:
            return
        self._peer_present = True
        first = not self._peer_ever_joined
        self._peer_ever_joined = True
        logger.info(f"{self}: the browser of {self._identity!r} connected")
        if first:
            await self._call_event_handler("on_connected")
        await self._call_event_handler("on_participant_connected", self._identity)
        if first:
            await self._call_event_handler("on_first_participant_joined", self._identity)

    async def _on_peer_disconnected(self, transport: SmallWebRTCTransport, client: Any) -> None:
        if not self._peer_present:
            return
        self._peer_present = False
        logger.info(f"{self}: the browser of {self._identity!r} disconnected")
        await self._call_event_handler("on_participant_disconnected", self._identity)


class _ClosingOutputTransport(SmallWebRTCOutputTransport):
    """Pipecat's WebRTC output, which also closes a peer connection that never connected.

    Pipecat disconnects only a connected peer; a browser that never finished connecting
    would keep its sockets until the connection's own timeout.
    """

    def __init__(
        self,
        *args,
        connection: SmallWebRTCConnection,
        before_disconnect: Callable[[], Awaitable[None]],
        **kwargs,
    ):
        super().__init__(*args, **kwargs)
        self._connection = connection
        self._before_disconnect = before_disconnect

    async def stop(self, frame: EndFrame):
        # The pipeline has drained up to here: the last words for the data channel go now.
        await self._before_disconnect()
        await super().stop(frame)

    async def cancel(self, frame: CancelFrame):
        await self._before_disconnect()
        await super().cancel(frame)

    async def cleanup(self) -> None:
        await super().cleanup()
        if self._connection.pc.connectionState != "closed":
            await self._connection.disconnect()
