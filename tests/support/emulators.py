"""Helpers for tests that talk to the loopback emulators."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from deepgram import AsyncDeepgramClient, DeepgramClientEnvironment
from pipecat.frames.frames import Frame, InputAudioRawFrame

from emulators import DeepgramEmulator
from emulators.synth import silence, speech_like

ROOT = Path(__file__).resolve().parents[2]


def deepgram_client(emu: DeepgramEmulator, api_key: str = "test-key") -> AsyncDeepgramClient:
    """A deepgram-sdk client whose every environment URL points at the emulator."""
    environment = DeepgramClientEnvironment(
        base=emu.url, production=emu.base_url, agent=emu.base_url, agent_rest=emu.url
    )
    return AsyncDeepgramClient(api_key=api_key, environment=environment)


def speech_then_silence(speech_s: float, silence_s: float, sample_rate: int = 16_000) -> bytes:
    """Speech-like tone bursts (no gaps longer than a character) followed by silence."""
    text = "x" * max(1, int(speech_s / 0.06))
    return speech_like(text, sample_rate).pcm + silence(silence_s, sample_rate)


def audio_frames(
    audio: bytes, sample_rate: int = 16_000, frame_ms: int = 20
) -> list[InputAudioRawFrame]:
    """Cut 16-bit mono PCM into pipecat input audio frames."""
    step = sample_rate * 2 * frame_ms // 1000
    return [
        InputAudioRawFrame(audio=audio[i : i + step], sample_rate=sample_rate, num_channels=1)
        for i in range(0, len(audio), step)
    ]


def of_type(frames: Any, kind: type[Frame]) -> list[Any]:
    """The frames of one type, in order."""
    return [f for f in frames if isinstance(f, kind)]


@asynccontextmanager
async def emulator_process(*args: str) -> AsyncIterator[dict[str, Any]]:
    """Run ``python -m emulators`` and yield the URLs it announces; SIGTERM it after."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "emulators",
        *args,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), timeout=30)
        yield json.loads(line)
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
            await asyncio.wait_for(proc.wait(), timeout=10)
