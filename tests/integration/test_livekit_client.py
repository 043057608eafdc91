"""The reference client against a real LiveKit server and a parrot bot."""

from __future__ import annotations

import asyncio
import json
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from client.audio import level_dbfs, voiced_span
from client.reference_client import ReferenceClient
from tests.support.livekit import LiveKitServer, ParrotParticipant

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(120)]

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
async def parrot_room(
    livekit_server: LiveKitServer,
) -> AsyncIterator[tuple[str, ParrotParticipant]]:
    room = f"e2e-{uuid.uuid4().hex[:8]}"
    parrot = ParrotParticipant(livekit_server.url, livekit_server.token("bot", room, agent=True))
    await parrot.start()
    try:
        yield room, parrot
    finally:
        await parrot.stop()


async def test_client_speaks_and_hears_the_bot(
    livekit_server: LiveKitServer,
    parrot_room: tuple[str, ParrotParticipant],
    onboarding_wav: Path,
    tmp_path: Path,
) -> None:
    room, parrot = parrot_room
    client = ReferenceClient(livekit_server.url, livekit_server.token("phone", room))
    await client.connect()
    try:
        await asyncio.sleep(0.3)
        timing = await client.speak(onboarding_wav)
        spoken_s = timing.ended_at - timing.started_at

        latency = await client.wait_for_bot_audio(timeout_s=10)
        assert latency is not None, "the bot's reply never arrived"
        # The parrot waits 0.4 s of silence before replying; transport adds little on loopback.
        assert 0.3 < latency < 1.5

        # The other side heard our WAV as speech, about as long as we spoke it.
        assert parrot.heard_voiced_s, "the bot heard nothing"
        assert parrot.heard_voiced_s[0] == pytest.approx(spoken_s, abs=0.5)
        assert level_dbfs(parrot.heard_audio) > -40

        bot_state = await client.wait_for_message(topic="kane", type="bot_state", timeout_s=5)
        assert bot_state is not None and bot_state.payload["data"] == {"state": "speaking"}
        assert bot_state.sender == "bot"
        transcript = await client.wait_for_message(topic="lk.transcription", timeout_s=5)
        assert transcript is not None and transcript.payload.startswith("heard ")
        assert transcript.attributes.get("lk.transcription_final") == "true"

        assert await client.wait_for_bot_silence(0.5, timeout_s=10)
        states = [
            m.payload.get("lk.agent.state") for m in client.messages if m.kind == "attributes"
        ]
        assert "speaking" in states
        assert client.agent_state == "listening"

        recording = client.save_bot_audio(tmp_path / "bot.wav")
        audio, rate = sf.read(recording, dtype="int16")
        span = voiced_span(audio, rate)
        assert span is not None
        assert (span[1] - span[0]) / rate == pytest.approx(spoken_s, abs=0.5)
    finally:
        await client.close()


async def test_cli_prints_messages_and_summary(
    livekit_server: LiveKitServer,
    parrot_room: tuple[str, ParrotParticipant],
    onboarding_wav: Path,
    tmp_path: Path,
) -> None:
    room, _parrot = parrot_room
    record = tmp_path / "bot.wav"
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "client",
        "--url",
        livekit_server.url,
        "--token",
        livekit_server.token("phone-cli", room),
        "--wav",
        str(onboarding_wav),
        "--record",
        str(record),
        "--timeout",
        "15",
        "--quiet-after",
        "0.8",
        cwd=REPO,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, stderr.decode()[-2000:]
    lines = [json.loads(line) for line in stdout.decode().splitlines() if line.strip()]
    summary = lines[-1]["summary"]
    assert summary["bot_answered"] is True
    assert 300 < summary["voice_to_voice_ms"] < 1500
    assert any(line.get("topic") == "kane" for line in lines[:-1])
    assert record.exists() and sf.info(str(record)).duration > 2.0
    assert np.abs(sf.read(str(record), dtype="int16")[0]).max() > 1000
