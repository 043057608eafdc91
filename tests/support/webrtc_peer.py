"""A WebRTC peer that talks to the playground like its page does, written with aiortc.

It offers a microphone track (silence until told to say a WAV) and a data channel, sends and
receives the playground's JSON packets, and measures the audio the bot sends back.
"""

from __future__ import annotations

import asyncio
import collections
import fractions
import json
import time
import wave
from pathlib import Path
from typing import Any

import numpy as np
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import AudioStreamTrack, MediaStreamError, MediaStreamTrack
from av import AudioFrame

RATE = 48_000
FRAME_SAMPLES = RATE // 50  # 20 ms


class Microphone(AudioStreamTrack):
    """A 48 kHz mono track, paced in real time: silence, or the WAV it was told to say."""

    def __init__(self) -> None:
        super().__init__()
        self._queue: collections.deque[np.ndarray] = collections.deque()
        self._started: float | None = None
        self._sent = 0
        self.finished_saying = asyncio.Event()

    def say(self, wav: Path) -> None:
        """Speak `wav` (16-bit mono at 48 kHz) from the next frame on."""
        with wave.open(str(wav), "rb") as f:
            assert (f.getframerate(), f.getnchannels(), f.getsampwidth()) == (RATE, 1, 2)
            pcm = np.frombuffer(f.readframes(f.getnframes()), dtype=np.int16)
        self.finished_saying.clear()
        for start in range(0, len(pcm), FRAME_SAMPLES):
            chunk = pcm[start : start + FRAME_SAMPLES]
            self._queue.append(np.pad(chunk, (0, FRAME_SAMPLES - len(chunk))))

    async def recv(self) -> AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        if self._started is None:
            self._started = time.monotonic()
        wait = self._started + self._sent / RATE - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        if self._queue:
            samples = self._queue.popleft()
            if not self._queue:
                self.finished_saying.set()
        else:
            samples = np.zeros(FRAME_SAMPLES, dtype=np.int16)
        frame = AudioFrame.from_ndarray(samples[None, :], format="s16", layout="mono")
        frame.sample_rate = RATE
        frame.pts = self._sent
        frame.time_base = fractions.Fraction(1, RATE)
        self._sent += FRAME_SAMPLES
        return frame


class PlaygroundPeer:
    """The page's side of a playground session: microphone, speaker, data channel."""

    def __init__(self) -> None:
        # No ICE servers (aiortc would ask a public STUN server): like the page, host only.
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.microphone = Microphone()
        self.pc.addTrack(self.microphone)
        self.channel = self.pc.createDataChannel("kane", ordered=True)
        self.packets: list[dict[str, Any]] = []
        self._arrived = asyncio.Condition()  # a packet or loud audio arrived
        self.loud_audio_s = 0.0  # seconds of bot audio above a whisper
        self.first_loud_audio_at: float | None = None
        self._listeners: list[asyncio.Task] = []
        self.channel.on("message", self._on_message)
        self.pc.on("track", self._on_track)
        self.session_id: str | None = None
        self._seq = 0

    async def offer(self) -> dict[str, str]:
        """The SDP offer, with every local candidate in it."""
        await self.pc.setLocalDescription(await self.pc.createOffer())
        return {"sdp": self.pc.localDescription.sdp, "type": "offer"}

    async def accept(self, answer: dict[str, Any]) -> None:
        """Take the worker's answer; the connection then comes up."""
        self.session_id = answer["session_id"]
        await self.pc.setRemoteDescription(RTCSessionDescription(answer["sdp"], answer["type"]))

    def send_raw(self, packet: dict[str, Any]) -> None:
        """Send one packet (a JSON object) on the data channel."""
        self.channel.send(json.dumps(packet))

    def send(self, kind: str, data: dict[str, Any]) -> None:
        """Send a protocol message on the `kane` topic, in an envelope of the session."""
        self._seq += 1
        envelope = {
            "v": 1,
            "type": kind,
            "session_id": self.session_id,
            "seq": self._seq,
            "ts": int(time.time() * 1000),
            "data": data,
        }
        self.send_raw({"type": "packet", "topic": "kane", "data": envelope})

    def messages(self, kind: str | None = None) -> list[dict[str, Any]]:
        """The protocol envelopes received on the `kane` topic (of one type, if given)."""
        return [
            p["data"]
            for p in self.packets
            if p.get("type") == "packet"
            and p.get("topic") == "kane"
            and (kind is None or p["data"]["type"] == kind)
        ]

    async def wait_for(self, kind: str, timeout_s: float, predicate=None) -> dict[str, Any]:
        """The first `kane` message of type `kind` (that `predicate` accepts)."""

        def found() -> dict[str, Any] | None:
            return next(
                (m for m in self.messages(kind) if predicate is None or predicate(m["data"])),
                None,
            )

        async with self._arrived:
            await asyncio.wait_for(self._arrived.wait_for(found), timeout_s)
        message = found()
        assert message is not None
        return message

    async def wait_for_bot_audio(self, seconds: float, timeout_s: float) -> None:
        """Until the bot has sent `seconds` of audio louder than a whisper."""
        async with self._arrived:
            await asyncio.wait_for(
                self._arrived.wait_for(lambda: self.loud_audio_s >= seconds), timeout_s
            )

    async def close(self) -> None:
        for task in self._listeners:
            task.cancel()
        await asyncio.gather(*self._listeners, return_exceptions=True)
        await self.pc.close()

    def _on_message(self, raw: str | bytes) -> None:
        self.packets.append(json.loads(raw))
        asyncio.get_running_loop().create_task(self._notify())

    async def _notify(self) -> None:
        async with self._arrived:
            self._arrived.notify_all()

    def _on_track(self, track: MediaStreamTrack) -> None:
        if track.kind == "audio":
            self._listeners.append(asyncio.get_running_loop().create_task(self._listen(track)))

    async def _listen(self, track: MediaStreamTrack) -> None:
        while True:
            try:
                frame = await track.recv()
            except MediaStreamError:
                return
            samples = frame.to_ndarray().astype(np.float64)
            rms = float(np.sqrt(np.mean(samples**2))) if samples.size else 0.0
            if rms > 300:
                if self.first_loud_audio_at is None:
                    self.first_loud_audio_at = time.monotonic()
                self.loud_audio_s += frame.samples / frame.sample_rate
                await self._notify()
