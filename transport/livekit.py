"""Pipecat's LiveKit transport, with topics, text streams and attributes."""

from __future__ import annotations

import asyncio

from livekit import rtc
from loguru import logger
from pipecat.transports.livekit.transport import (
    LiveKitParams,
    LiveKitTransport,
    LiveKitTransportClient,
)

from transport.base import DataHandler

MIC_SAMPLE_RATE = 16000
"""The rate KANE's pipeline hears the person at (Pipecat's default input rate; VAD's and STT's)."""
MIC_FRAME_MS = 20
"""The person's audio in frames this long: WebRTC's own are 10 ms, twice the frames."""


class _KaneLiveKitClient(LiveKitTransportClient):
    """Pipecat's LiveKit client, asking LiveKit for the microphone as KANE's pipeline wants it.

    Pipecat opens `rtc.AudioStream(track)`: 48 kHz audio in WebRTC's 10 ms frames, which its
    input transport then resamples on the event loop, frame by frame, and each of those 100
    frames a second travels the whole pipeline. LiveKit's native side resamples and frames
    for us: 16 kHz in 20 ms frames is half the frames and no resampling in Python.
    """

    async def _async_on_track_subscribed(
        self,
        track: rtc.Track,
        publication: rtc.RemoteTrackPublication,
        participant: rtc.RemoteParticipant,
    ) -> None:
        if track.kind != rtc.TrackKind.KIND_AUDIO:
            await super()._async_on_track_subscribed(track, publication, participant)
            return
        # Pipecat 1.14's audio branch of this method, with the stream's format set.
        assert self._task_manager is not None
        logger.info(f"Audio track subscribed: {track.sid} from participant {participant.identity}")
        await self._close_audio_stream(participant.identity)
        self._audio_tracks[participant.identity] = track
        audio_stream = rtc.AudioStream(
            track,
            sample_rate=self._params.audio_in_sample_rate or MIC_SAMPLE_RATE,
            num_channels=1,
            frame_size_ms=MIC_FRAME_MS,
        )
        task = self._task_manager.create_task(
            self._process_audio_stream(audio_stream, participant.identity),
            f"{self}::_process_audio_stream",
        )
        self._audio_streams[participant.identity] = (audio_stream, task)
        await self._callbacks.on_audio_track_subscribed(participant.identity)


class KaneLiveKitTransport(LiveKitTransport):
    """A LiveKit transport that also speaks LiveKit's conventions and KANE's data topic.

    Pipecat's transport sends data packets without a topic and hands received packets over
    without theirs. KANE's phone protocol lives on its own topic, and stock LiveKit clients
    read transcripts from the `lk.transcription` text stream and the agent's state from the
    `lk.agent.state` attribute, so this subclass adds those.
    """

    @classmethod
    def for_room(cls, *, url: str, token: str, room_name: str) -> KaneLiveKitTransport:
        """The bot's transport into one room, with audio both ways."""
        return cls(
            url=url,
            token=token,
            room_name=room_name,
            params=LiveKitParams(audio_in_enabled=True, audio_out_enabled=True),
        )

    def __init__(self, *args, **kwargs):
        """Create the transport (arguments as `LiveKitTransport`)."""
        super().__init__(*args, **kwargs)
        # The client Pipecat made, with KANE's microphone format (the class adds no state).
        self._client.__class__ = _KaneLiveKitClient
        self._topic_handlers: dict[str, DataHandler] = {}
        self._handler_tasks: set[asyncio.Task] = set()
        self.add_event_handler("on_connected", self._listen_for_topics)

    @property
    def _room(self) -> rtc.Room:
        return self._client.room

    def on_topic(self, topic: str, handler: DataHandler) -> None:
        """Call `handler(payload, sender_identity)` for every data packet on `topic`."""
        self._topic_handlers[topic] = handler

    async def _listen_for_topics(self, transport: LiveKitTransport) -> None:
        self._room.on("data_received", self._on_data_packet)

    def _on_data_packet(self, packet: rtc.DataPacket) -> None:
        handler = self._topic_handlers.get(packet.topic or "")
        if handler is None:
            return
        sender = packet.participant.identity if packet.participant else None
        # LiveKit calls this synchronously on the event loop; handle the packet on a task of
        # its own, kept until it is done.
        task = asyncio.get_running_loop().create_task(handler(bytes(packet.data), sender))
        self._handler_tasks.add(task)
        task.add_done_callback(self._handler_tasks.discard)

    async def _on_data_received(self, data: bytes, participant_id: str | None) -> None:
        # Pipecat would push every JSON packet, from anyone, into the pipeline; KANE's phone
        # messages arrive through `on_topic` instead, validated and checked for their sender.
        return

    async def publish(self, payload: bytes, *, topic: str) -> bool:
        """Send a reliable data packet on `topic` to everyone in the room.

        Returns:
            Whether it was handed to LiveKit (False before the bot joined or after it left).
        """
        if not self._room.isconnected():
            return False
        try:
            await self._room.local_participant.publish_data(payload, reliable=True, topic=topic)
        except Exception as e:
            logger.warning(f"{self}: data on '{topic}' not sent: {e}")
            return False
        return True

    async def send_text(
        self,
        text: str,
        *,
        topic: str,
        attributes: dict[str, str],
        sender_identity: str | None = None,
    ) -> None:
        """Send `text` as one LiveKit text stream (used for `lk.transcription`).

        Args:
            text: The text.
            topic: The stream's topic.
            attributes: The stream's attributes (for example `lk.transcription_final`).
            sender_identity: On whose behalf the text is sent (the person, for their words).
        """
        if not self._room.isconnected():
            return
        try:
            writer = await self._room.local_participant.stream_text(
                topic=topic, attributes=attributes, sender_identity=sender_identity
            )
            await writer.write(text)
            await writer.aclose()
        except Exception as e:
            logger.warning(f"{self}: text stream on '{topic}' not sent: {e}")

    async def close(self) -> None:
        """Nothing to let go of: the pipeline leaves the room when it ends."""

    async def set_attributes(self, attributes: dict[str, str]) -> None:
        """Set attributes of the bot's participant (for example `lk.agent.state`)."""
        if not self._room.isconnected():
            return
        try:
            await self._room.local_participant.set_attributes(attributes)
        except Exception as e:
            logger.warning(f"{self}: attributes not set: {e}")
