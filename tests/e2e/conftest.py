"""Fixtures of the end-to-end tests: emulated services and the worker as a process."""

import os
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from client.reference_client import ReferenceClient
from emulators import DeepgramEmulator, OpenAIEmulator
from emulators.behavior import Behavior
from tests.support.livekit import LiveKitServer
from tests.support.worker import WorkerProcess, running_worker

# Emulated service latencies the turn runs with (stated in the results).
STT_FINAL_S = 0.15
LLM_FIRST_TOKEN_S = 0.6
TTS_FIRST_BYTE_S = 0.2
RESULTS = Path(os.environ.get("KANE_RESULTS_DIR", ".cache/results"))


@pytest.fixture
async def stt() -> AsyncIterator[DeepgramEmulator]:
    # eSpeak speaks about 0.3 s a word; interims keep up with the words as Deepgram's do.
    async with DeepgramEmulator(
        behavior=Behavior(first_latency_s=STT_FINAL_S), seconds_per_word=0.2
    ) as emulator:
        yield emulator


@pytest.fixture
async def openai() -> AsyncIterator[OpenAIEmulator]:
    async with OpenAIEmulator() as emulator:
        emulator.set_behavior("chat", first_latency_s=LLM_FIRST_TOKEN_S, chunk_interval_s=0.02)
        emulator.set_behavior("speech", first_latency_s=TTS_FIRST_BYTE_S)
        yield emulator


def worker_env(
    livekit_server: LiveKitServer,
    database_dsn: str,
    stt: DeepgramEmulator,
    openai: OpenAIEmulator,
    data_dir: Path,
    **overrides: str,
) -> dict[str, str]:
    """The worker's environment: a real LiveKit server, emulated cloud, the test's database."""
    return {
        "KANE_ENV": "production",
        "KANE_MAX_SESSIONS": "1",
        "LIVEKIT_URL": livekit_server.url,
        "LIVEKIT_API_KEY": livekit_server.api_key,
        "LIVEKIT_API_SECRET": livekit_server.api_secret,
        "DEEPGRAM_API_KEY": "e2e-deepgram-key-0123456789",
        "DEEPGRAM_BASE_URL": stt.base_url,
        "OPENAI_API_KEY": "e2e-openai-key-0123456789",
        "OPENAI_BASE_URL": openai.base_url,
        "KANE_TTS": "openai",
        "DATABASE_URL": database_dsn,
        "KANE_DATA_DIR": str(data_dir),
        **overrides,
    }


@pytest.fixture
async def worker(
    livekit_server: LiveKitServer,
    database_dsn: str,
    stt: DeepgramEmulator,
    openai: OpenAIEmulator,
    tmp_path: Path,
) -> AsyncIterator[WorkerProcess]:
    env = worker_env(livekit_server, database_dsn, stt, openai, tmp_path / "data")
    async with running_worker(env, tmp_path / "worker.log") as process:
        yield process
    # Nothing secret may reach the log: keys, the LiveKit secret, minted tokens.
    log = process.log()
    for secret in (
        env["DEEPGRAM_API_KEY"],
        env["OPENAI_API_KEY"],
        livekit_server.api_secret,
        process.api_token,
    ):
        assert secret not in log


async def join(worker: WorkerProcess, user_id: str) -> tuple[dict, ReferenceClient]:
    response = await worker.connect(user_id)
    assert response.status_code == 200, response.text
    grant = response.json()
    client = ReferenceClient(grant["url"], grant["token"], bot_identity="kane")
    await client.connect()
    return grant, client


async def session_row(dsn: str, session_id: str) -> asyncpg.Record:
    conn = await asyncpg.connect(dsn)
    try:
        return await conn.fetchrow("SELECT * FROM sessions WHERE id = $1::uuid", session_id)
    finally:
        await conn.close()
