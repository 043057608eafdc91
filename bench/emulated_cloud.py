"""The emulated cloud of the session benchmark, as a process of its own.

``python -m bench.emulated_cloud --listen-slots 32`` starts one Deepgram emulator per session
slot (each session's STT connection gets its own scripted words) and one OpenAI emulator
(chat and speech), prints one JSON line with their URLs, and runs until SIGTERM. Latency
and scripts are set by the benchmark through the emulators' control endpoints. Running
them apart keeps their work off the event loop of the sessions being measured, as a real
cloud's would be.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from loguru import logger

from emulators import DeepgramEmulator, OpenAIEmulator

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Latencies:
    """The stated latencies of the emulated services.

    Parameters:
        stt_s: Each STT result leaves this long after the audio (or the `Finalize`) that
            triggers it; the final transcript comes this long after Pipecat's VAD has
            asked for it.
        llm_first_token_s: The chat completion's first token.
        llm_token_s: Between streamed tokens.
        tts_first_byte_s: The speech endpoint's first audio byte.
    """

    stt_s: float = 0.15
    llm_first_token_s: float = 0.6
    llm_token_s: float = 0.02
    tts_first_byte_s: float = 0.2


class EmulatedCloud:
    """Runs `python -m bench.emulated_cloud` and scripts its emulators for each round."""

    def __init__(self, *, slots: int, latencies: Latencies, reply: str):
        """Prepare the cloud (nothing runs until `start`).

        Args:
            slots: Most sessions at once (one STT emulator each).
            latencies: The stated latencies.
            reply: What the emulated LLM answers every turn.
        """
        self._slots = slots
        self.latencies = latencies
        self._reply = reply
        self._process: asyncio.subprocess.Process | None = None
        self._urls: dict[str, Any] = {}
        self._http: aiohttp.ClientSession | None = None

    @property
    def pid(self) -> int:
        """The emulators' process."""
        assert self._process is not None
        return self._process.pid

    @property
    def deepgram_urls(self) -> list[str]:
        """What each slot's STT is configured with."""
        return [slot["base_url"] for slot in self._urls["deepgram"]]

    @property
    def openai_url(self) -> str:
        """What the LLM and TTS are configured with."""
        return self._urls["openai"]["base_url"]

    async def start(self) -> None:
        """Start the emulators' process and wait for their URLs."""
        self._process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bench.emulated_cloud",
            "--listen-slots",
            str(self._slots),
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            stdout=asyncio.subprocess.PIPE,
        )
        assert self._process.stdout is not None
        line = await asyncio.wait_for(self._process.stdout.readline(), timeout=60)
        self._urls = json.loads(line)
        self._http = aiohttp.ClientSession()

    async def stop(self) -> None:
        """Stop the emulators."""
        if self._http is not None:
            await self._http.close()
        if self._process is not None and self._process.returncode is None:
            self._process.send_signal(signal.SIGTERM)
            await asyncio.wait_for(self._process.wait(), timeout=10)

    async def prepare(self, scripts: list[list[str]]) -> None:
        """Reset the emulators for a round: slot i's STT hears `scripts[i]`, in order."""
        lat = self.latencies
        for slot, texts in zip(self._urls["deepgram"], scripts, strict=False):
            control = slot["control"]
            await self._post(f"{control}/_emulator/reset", {})
            await self._post(f"{control}/_emulator/behavior", {"first_latency_s": lat.stt_s})
            await self._post(
                f"{control}/_emulator/script",
                {"utterances": texts, "default_text": "Hmm."},
            )
        control = self._urls["openai"]["control"]
        await self._post(f"{control}/_emulator/reset", {})
        await self._post(f"{control}/_emulator/script", {"default_reply": self._reply})
        await self._post(
            f"{control}/_emulator/behavior?endpoint=chat",
            {"first_latency_s": lat.llm_first_token_s, "chunk_interval_s": lat.llm_token_s},
        )
        await self._post(
            f"{control}/_emulator/behavior?endpoint=speech",
            {"first_latency_s": lat.tts_first_byte_s},
        )

    async def chat_requests(self) -> int:
        """How many chat completions the LLM was asked for since the round began."""
        assert self._http is not None
        control = self._urls["openai"]["control"]
        async with self._http.get(f"{control}/_emulator/requests?endpoint=chat") as response:
            return len(await response.json())

    async def _post(self, url: str, body: dict[str, Any]) -> None:
        assert self._http is not None
        async with self._http.post(url, json=body) as response:
            if response.status != 200:
                raise RuntimeError(f"emulator control {url}: {response.status}")


async def serve(slots: int, seconds_per_word: float) -> None:
    """Start the emulators, announce their URLs on stdout, and wait for a signal."""
    listen = [DeepgramEmulator(seconds_per_word=seconds_per_word) for _ in range(slots)]
    openai = OpenAIEmulator()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        urls = {
            "deepgram": [{"base_url": await e.start(), "control": e.url} for e in listen],
            "openai": {"base_url": await openai.start(), "control": openai.url},
        }
        print(json.dumps(urls), flush=True)
        await stop.wait()
    finally:
        for emulator in [*listen, openai]:
            await emulator.stop()


def main() -> None:
    """Entry point."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--listen-slots", type=int, default=32, help="Deepgram emulators")
    parser.add_argument(
        "--seconds-per-word", type=float, default=0.2, help="speech per word shown in interims"
    )
    args = parser.parse_args()
    logger.remove()
    logger.add(sys.stderr, level="WARNING")
    asyncio.run(serve(args.listen_slots, args.seconds_per_word))


if __name__ == "__main__":
    main()
