"""A real LiveKit server for end-to-end tests, and a stand-in bot that parrots speech back.

``livekit_server`` (session scope) starts ``scripts/livekit_server.sh`` on free loopback
ports and stops it afterwards. When livekit-server cannot be found or built, the test is
skipped locally and fails under ``CI=true``.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import NoReturn

import numpy as np
import pytest
from livekit import api, rtc
from loguru import logger

from client.audio import DEFAULT_VOICE_THRESHOLD_DBFS, level_dbfs
from tests.support.availability import unavailable

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "livekit_server.sh"
NOT_INSTALLABLE = 3  # the script's exit code when livekit-server can't be found or built
START_TIMEOUT_S = 900  # a first `go install` builds the server from source


@dataclass(frozen=True)
class LiveKitServer:
    """Where a running test server answers, and how to get in."""

    url: str
    api_key: str
    api_secret: str
    port: int

    @property
    def http_url(self) -> str:
        """The server API's HTTP base URL (for ``livekit.api.LiveKitAPI``)."""
        return f"http://127.0.0.1:{self.port}"

    def token(self, identity: str, room: str, *, agent: bool = False) -> str:
        """Mint a join token; ``agent=True`` also lets the participant set its attributes."""
        grants = api.VideoGrants(room_join=True, room=room, can_update_own_metadata=agent)
        token = api.AccessToken(self.api_key, self.api_secret).with_identity(identity)
        if agent:
            token = token.with_kind("agent")
        return token.with_grants(grants).to_jwt()


def _port_free(port: int, kind: socket.SocketKind) -> bool:
    with socket.socket(socket.AF_INET, kind) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port_triplet() -> int:
    """Return a port P with TCP P, TCP P+1 (ICE/TCP) and UDP P+2 (ICE/UDP) free on loopback."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        if port + 2 < 65536 and _port_free(port + 1, socket.SOCK_STREAM):
            if _port_free(port + 2, socket.SOCK_DGRAM):
                return port
    raise RuntimeError("no three consecutive free ports on 127.0.0.1")


def _parse_exports(stdout: str) -> dict[str, str]:
    values: dict[str, str] = {}
    for line in stdout.splitlines():
        if line.startswith("export ") and "=" in line:
            name, _, value = line.removeprefix("export ").partition("=")
            values[name] = value
    return values


def _unavailable(reason: str) -> NoReturn:
    unavailable("livekit-server", reason)


@pytest.fixture(scope="session")
def livekit_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveKitServer]:
    """Start a LiveKit server on loopback for the test session."""
    port = free_port_triplet()
    env = {
        **os.environ,
        "LIVEKIT_PORT": str(port),
        "LIVEKIT_RUN_DIR": str(tmp_path_factory.mktemp("livekit")),
    }
    env.pop("LIVEKIT_API_SECRET", None)  # a fresh secret for each session
    try:
        started = subprocess.run(
            [str(SCRIPT), "start"],
            env=env,
            capture_output=True,
            text=True,
            timeout=START_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired:
        _unavailable(f"start took longer than {START_TIMEOUT_S} s")
        raise
    if started.returncode == NOT_INSTALLABLE:
        _unavailable(started.stderr.strip().splitlines()[-1] if started.stderr else "")
    if started.returncode != 0:
        pytest.fail(f"livekit_server.sh start failed:\n{started.stderr}")
    exports = _parse_exports(started.stdout)
    server = LiveKitServer(
        url=exports["LIVEKIT_URL"],
        api_key=exports["LIVEKIT_API_KEY"],
        api_secret=exports["LIVEKIT_API_SECRET"],
        port=port,
    )
    try:
        yield server
    finally:
        subprocess.run([str(SCRIPT), "stop"], env=env, capture_output=True, timeout=30)


@dataclass
class _Heard:
    frames: list[np.ndarray] = field(default_factory=list)
    voiced_s: float = 0.0
    last_voiced_at: float | None = None


class ParrotParticipant:
    """Stands in for the bot: after each utterance it hears, it says it back.

    Before replying it sets ``lk.agent.state`` to ``speaking``, sends a KANE ``bot_state``
    data message (topic ``kane``) and a final ``lk.transcription`` text stream; afterwards it
    sets ``lk.agent.state`` back to ``listening``.

    Args:
        url: LiveKit URL.
        token: A token minted with ``agent=True``.
        reply_after_silence_s: Silence that ends an utterance.
        sample_rate: Rate it listens and speaks at.
    """

    def __init__(
        self,
        url: str,
        token: str,
        *,
        reply_after_silence_s: float = 0.4,
        sample_rate: int = 48000,
    ) -> None:
        self._url = url
        self._token = token
        self._silence_s = reply_after_silence_s
        self._sample_rate = sample_rate
        self._room = rtc.Room()
        self._source: rtc.AudioSource | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._seq = 0
        self.heard_voiced_s: list[float] = []
        """Voiced seconds of each utterance heard, in order."""
        self.heard_audio = np.zeros(0, dtype=np.int16)
        """Everything heard from the other participant, int16 at ``sample_rate``."""

    async def start(self) -> None:
        """Join, publish the bot track and listen."""
        self._room.on("track_subscribed", self._on_track_subscribed)
        await self._room.connect(self._url, self._token)
        self._source = rtc.AudioSource(self._sample_rate, 1, queue_size_ms=100)
        track = rtc.LocalAudioTrack.create_audio_track("bot", self._source)
        await self._room.local_participant.publish_track(track, rtc.TrackPublishOptions())
        await self._room.local_participant.set_attributes({"lk.agent.state": "listening"})

    async def stop(self) -> None:
        """Leave the room."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._room.disconnect()
        if self._source is not None:
            await self._source.aclose()

    def _on_track_subscribed(
        self, track: rtc.Track, _pub: rtc.RemoteTrackPublication, _p: rtc.RemoteParticipant
    ) -> None:
        if track.kind == rtc.TrackKind.KIND_AUDIO:
            task = asyncio.create_task(self._listen(track))
            self._tasks.add(task)

    async def _listen(self, track: rtc.Track) -> None:
        stream = rtc.AudioStream.from_track(track=track, sample_rate=self._sample_rate)
        heard = _Heard()
        all_frames: list[np.ndarray] = []
        try:
            async for event in stream:
                samples = np.frombuffer(event.frame.data, dtype=np.int16).copy()
                all_frames.append(samples)
                if len(all_frames) % 50 == 0:
                    self.heard_audio = np.concatenate(all_frames)
                now = time.monotonic()
                if level_dbfs(samples) > DEFAULT_VOICE_THRESHOLD_DBFS:
                    heard.voiced_s += samples.size / self._sample_rate
                    heard.last_voiced_at = now
                if heard.last_voiced_at is not None:
                    heard.frames.append(samples)
                    if now - heard.last_voiced_at >= self._silence_s:
                        self.heard_audio = np.concatenate(all_frames)
                        await self._reply(heard)
                        heard = _Heard()
        finally:
            await stream.aclose()

    async def _reply(self, heard: _Heard) -> None:
        assert self._source is not None
        self.heard_voiced_s.append(heard.voiced_s)
        local = self._room.local_participant
        await local.set_attributes({"lk.agent.state": "speaking"})
        self._seq += 1
        envelope = {
            "v": 1,
            "type": "bot_state",
            "session_id": "parrot",
            "seq": self._seq,
            "ts": int(time.time() * 1000),
            "data": {"state": "speaking"},
        }
        await local.publish_data(json.dumps(envelope), reliable=True, topic="kane")
        await local.send_text(
            f"heard {heard.voiced_s:.1f} s of speech",
            topic="lk.transcription",
            attributes={"lk.transcription_final": "true"},
        )
        frame_len = self._sample_rate // 50
        audio = np.concatenate(heard.frames)
        next_at = time.monotonic()
        for start in range(0, audio.size - frame_len + 1, frame_len):
            chunk = audio[start : start + frame_len]
            await self._source.capture_frame(
                rtc.AudioFrame(chunk.tobytes(), self._sample_rate, 1, frame_len)
            )
            next_at += 0.02
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))
        await local.set_attributes({"lk.agent.state": "listening"})
        logger.debug(f"ParrotParticipant: replied with {audio.size / self._sample_rate:.2f} s")
