"""A LiveKit participant that behaves like the KANE iOS app, for tests and manual checks.

It joins a room with a token, keeps a microphone track open (silence unless it is speaking a
WAV, like an open mic), records the bot's audio, and collects everything else the room
delivers: data packets (topic ``kane`` and any other), text streams such as
``lk.transcription``, and participant attribute changes such as ``lk.agent.state``.

Times are ``time.monotonic()`` seconds. ``speech_ended_at`` is when the last voiced sample of
the WAV left the microphone; the bot's first voiced frame after it gives the voice-to-voice
latency as the person on the phone would hear it.

Example:
    async with ReferenceClient(url, token) as client:
        await client.speak("speech.wav")
        latency = await client.wait_for_bot_audio(timeout_s=10)
        client.save_bot_audio("bot.wav")
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
from livekit import rtc
from loguru import logger

from client.audio import DEFAULT_VOICE_THRESHOLD_DBFS, level_dbfs, load_wav, write_wav
from client.messages import ReceivedMessage, decode_payload
from client.microphone import Microphone, SpeechTiming

__all__ = ["ReceivedMessage", "ReferenceClient", "SpeechTiming"]

AGENT_STATE_ATTRIBUTE = "lk.agent.state"
TRANSCRIPTION_TOPIC = "lk.transcription"
KANE_TOPIC = "kane"


class ReferenceClient:
    """Joins a LiveKit room like the iOS app: open mic out, bot audio and messages in.

    Args:
        url: LiveKit server URL, e.g. ``ws://127.0.0.1:7880``.
        token: Access token for this participant (never logged).
        sample_rate: Rate of the microphone track and of the bot recording.
        frame_ms: Microphone frame length, 10 or 20 ms.
        bot_identity: Identity whose audio to record; None records the first remote audio
            track that appears.
        text_topics: Text stream topics to collect.
        voice_threshold_dbfs: RMS level above which a frame counts as sound.
        on_message: Called (on the event loop) for every received message.
    """

    def __init__(
        self,
        url: str,
        token: str,
        *,
        sample_rate: int = 48000,
        frame_ms: int = 20,
        bot_identity: str | None = None,
        text_topics: Iterable[str] = (TRANSCRIPTION_TOPIC,),
        voice_threshold_dbfs: float = DEFAULT_VOICE_THRESHOLD_DBFS,
        on_message: Callable[[ReceivedMessage], None] | None = None,
    ) -> None:
        if frame_ms not in (10, 20):
            raise ValueError("frame_ms must be 10 or 20")
        self._url = url
        self._token = token
        self._sample_rate = sample_rate
        self._frame_ms = frame_ms
        self._bot_identity = bot_identity
        self._text_topics = tuple(text_topics)
        self._threshold = voice_threshold_dbfs
        self._on_message = on_message

        self._room: rtc.Room | None = None
        self._microphone: Microphone | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._changed = asyncio.Event()

        self._recorded_identity: str | None = None
        self._bot_chunks: list[np.ndarray] = []
        self._bot_onsets: list[float] = []
        self._last_voiced_at: float | None = None

        self.messages: list[ReceivedMessage] = []
        """Everything received besides audio, in arrival order."""
        self.speech: list[SpeechTiming] = []
        """Timing of each utterance spoken, in order."""
        self.agent_state: str | None = None
        """Latest ``lk.agent.state`` attribute of the bot, if it publishes one."""

    def __str__(self) -> str:
        identity = self._room.local_participant.identity if self._room else "unconnected"
        return f"ReferenceClient({identity})"

    async def __aenter__(self) -> ReferenceClient:
        await self.connect()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # -- properties ---------------------------------------------------------------------

    @property
    def room(self) -> rtc.Room:
        """The connected room (raises before ``connect``)."""
        if self._room is None:
            raise RuntimeError("ReferenceClient is not connected")
        return self._room

    @property
    def sample_rate(self) -> int:
        """Sample rate of the microphone track and the bot recording."""
        return self._sample_rate

    @property
    def bot_audio(self) -> np.ndarray:
        """The bot's audio so far, mono int16 at ``sample_rate``."""
        if not self._bot_chunks:
            return np.zeros(0, dtype=np.int16)
        return np.concatenate(self._bot_chunks)

    @property
    def bot_audio_onsets(self) -> list[float]:
        """Monotonic times the bot's audio turned from silence to sound."""
        return list(self._bot_onsets)

    @property
    def speech_ended_at(self) -> float | None:
        """When the last utterance's last voiced sample was sent, or None."""
        return self.speech[-1].ended_at if self.speech else None

    @property
    def bot_audio_started_at(self) -> float | None:
        """First bot onset after the last utterance ended (any onset if none was spoken)."""
        return self._first_onset_after(self.speech_ended_at or 0.0)

    @property
    def voice_to_voice_latency(self) -> float | None:
        """Seconds from the end of the last utterance to the bot's first sound after it."""
        ended, started = self.speech_ended_at, self.bot_audio_started_at
        if ended is None or started is None:
            return None
        return started - ended

    # -- lifecycle ----------------------------------------------------------------------

    async def connect(self, *, timeout_s: float = 15.0) -> None:
        """Join the room, publish the (open, silent) microphone, start collecting.

        Args:
            timeout_s: Seconds to wait for the connection.
        """
        room = rtc.Room()
        self._room = room
        room.on("track_subscribed", self._on_track_subscribed)
        room.on("data_received", self._on_data_received)
        room.on("participant_attributes_changed", self._on_attributes_changed)
        room.on("participant_connected", self._on_participant_connected)
        for topic in self._text_topics:
            room.register_text_stream_handler(topic, self._on_text_stream)

        await asyncio.wait_for(room.connect(self._url, self._token), timeout_s)
        logger.info(f"{self}: joined room {room.name}")
        for participant in room.remote_participants.values():
            self._on_participant_connected(participant)
            for publication in participant.track_publications.values():
                if publication.track is not None:
                    self._on_track_subscribed(publication.track, publication, participant)

        self._microphone = Microphone(
            sample_rate=self._sample_rate,
            frame_ms=self._frame_ms,
            voice_threshold_dbfs=self._threshold,
        )
        await self._microphone.publish(room.local_participant)

    async def close(self) -> None:
        """Stop the microphone and the recorders and leave the room."""
        if self._microphone is not None:
            await self._microphone.close()
            self._microphone = None
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks.clear()
        if self._room is not None:
            await self._room.disconnect()
            logger.info(f"{self}: left the room")

    # -- speaking -----------------------------------------------------------------------

    async def speak(self, wav: str | Path | np.ndarray) -> SpeechTiming:
        """Send an utterance on the microphone track at real-time pace.

        Returns when the whole clip has been sent; the microphone then goes on sending
        silence. Utterances queue up when called concurrently.

        Args:
            wav: A WAV file, or mono int16 samples at ``sample_rate``.

        Returns:
            When its voiced part started and ended.
        """
        if self._microphone is None:
            raise RuntimeError("connect() first")
        samples = wav if isinstance(wav, np.ndarray) else load_wav(wav, self._sample_rate)
        timing = await self._microphone.speak(samples)
        self.speech.append(timing)
        self._notify()
        logger.debug(f"{self}: spoke {timing.duration_s:.2f} s")
        return timing

    # -- sending ------------------------------------------------------------------------

    async def send(self, payload: dict[str, Any] | str | bytes, *, topic: str = KANE_TOPIC) -> None:
        """Send a reliable data packet, JSON-encoding dicts (phone → server messages).

        Args:
            payload: The message.
            topic: Data packet topic.
        """
        data = json.dumps(payload) if isinstance(payload, dict) else payload
        await self.room.local_participant.publish_data(data, reliable=True, topic=topic)

    # -- waiting ------------------------------------------------------------------------

    async def wait_for_bot_audio(
        self, timeout_s: float, *, after: float | None = None
    ) -> float | None:
        """Wait for the bot to make a sound after a moment.

        Args:
            timeout_s: Seconds to wait.
            after: Monotonic time the sound must start after; by default the end of the last
                utterance (or any sound when nothing was spoken).

        Returns:
            Seconds from ``after`` to the bot's first sound (the voice-to-voice latency by
            default), or None on timeout.
        """
        since = after if after is not None else (self.speech_ended_at or 0.0)
        found = await self._wait(lambda: self._first_onset_after(since), timeout_s)
        return None if found is None else max(found - since, 0.0)

    async def wait_for_bot_silence(self, quiet_s: float = 1.0, *, timeout_s: float) -> bool:
        """Wait until the bot has been silent for ``quiet_s`` (its turn has ended).

        Returns:
            True when it went quiet, False on timeout.
        """
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            last = self._last_voiced_at
            if last is not None and time.monotonic() - last >= quiet_s:
                return True
            await asyncio.sleep(0.05)
        return False

    async def wait_for_message(
        self,
        predicate: Callable[[ReceivedMessage], bool] | None = None,
        *,
        topic: str | None = None,
        type: str | None = None,
        timeout_s: float,
    ) -> ReceivedMessage | None:
        """Wait for a received message matching all given conditions (earlier ones count).

        Args:
            predicate: Extra condition on the message.
            topic: Wanted topic.
            type: Wanted KANE envelope ``type``.
            timeout_s: Seconds to wait.

        Returns:
            The first matching message, or None on timeout.
        """

        def match() -> ReceivedMessage | None:
            for message in self.messages:
                if topic is not None and message.topic != topic:
                    continue
                if type is not None and message.type != type:
                    continue
                if predicate is not None and not predicate(message):
                    continue
                return message
            return None

        return await self._wait(match, timeout_s)

    async def _wait(self, probe: Callable[[], Any], timeout_s: float) -> Any:
        deadline = time.monotonic() + timeout_s
        while (found := probe()) is None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            changed = self._changed
            try:
                await asyncio.wait_for(changed.wait(), remaining)
            except TimeoutError:
                return probe()
        return found

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    def _first_onset_after(self, moment: float) -> float | None:
        return next((t for t in self._bot_onsets if t >= moment), None)

    # -- recording ----------------------------------------------------------------------

    def save_bot_audio(self, path: str | Path) -> Path:
        """Write the bot's audio so far to a 16-bit mono WAV file."""
        return write_wav(path, self.bot_audio, self._sample_rate)

    def _on_track_subscribed(
        self,
        track: rtc.Track,
        _publication: rtc.RemoteTrackPublication,
        participant: rtc.RemoteParticipant,
    ) -> None:
        if track.kind != rtc.TrackKind.KIND_AUDIO or self._recorded_identity is not None:
            return
        if self._bot_identity is not None and participant.identity != self._bot_identity:
            return
        self._recorded_identity = participant.identity
        logger.info(f"{self}: recording audio of {participant.identity}")
        self._spawn(self._record(track), name="reference-bot-audio")

    async def _record(self, track: rtc.Track) -> None:
        stream = rtc.AudioStream.from_track(
            track=track, sample_rate=self._sample_rate, num_channels=1
        )
        onset_gap_s = 0.3
        try:
            async for event in stream:
                samples = np.frombuffer(event.frame.data, dtype=np.int16).copy()
                self._bot_chunks.append(samples)
                if level_dbfs(samples) <= self._threshold:
                    continue
                now = time.monotonic()
                last = self._last_voiced_at
                self._last_voiced_at = now
                if last is None or now - last > onset_gap_s:
                    self._bot_onsets.append(now)
                    self._notify()
        finally:
            await stream.aclose()

    # -- messages -----------------------------------------------------------------------

    def _add_message(self, message: ReceivedMessage) -> None:
        self.messages.append(message)
        self._notify()
        if self._on_message is not None:
            self._on_message(message)

    def _on_data_received(self, packet: rtc.DataPacket) -> None:
        sender = packet.participant.identity if packet.participant else None
        self._add_message(
            ReceivedMessage(
                kind="data", topic=packet.topic, sender=sender, payload=decode_payload(packet.data)
            )
        )

    def _on_text_stream(self, reader: rtc.TextStreamReader, participant_identity: str) -> None:
        self._spawn(self._read_text_stream(reader, participant_identity), name="reference-text")

    async def _read_text_stream(self, reader: rtc.TextStreamReader, sender: str) -> None:
        text = await reader.read_all()
        info = reader.info
        self._add_message(
            ReceivedMessage(
                kind="text_stream",
                topic=info.topic,
                sender=sender,
                payload=decode_payload(text),
                attributes=dict(info.attributes or {}),
            )
        )

    def _on_participant_connected(self, participant: rtc.RemoteParticipant) -> None:
        if participant.attributes:
            self._on_attributes_changed(dict(participant.attributes), participant)

    def _on_attributes_changed(self, changed: dict[str, str], participant: rtc.Participant) -> None:
        if participant.identity == self.room.local_participant.identity:
            return
        if AGENT_STATE_ATTRIBUTE in changed:
            self.agent_state = changed[AGENT_STATE_ATTRIBUTE]
        self._add_message(
            ReceivedMessage(
                kind="attributes", topic=None, sender=participant.identity, payload=dict(changed)
            )
        )

    def _spawn(self, coro: Any, *, name: str) -> None:
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._on_task_done)

    def _on_task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.warning(f"{self}: {task.get_name()} failed: {task.exception()!r}")
