"""Experiments: a WAV played through a whole offline session, and kept sessions replayed.

Everything runs on the real offline engines (faster-whisper, the rules coach, eSpeak NG) and
real embedded PostgreSQL; nothing is emulated.
"""

from __future__ import annotations

import asyncio
import io
import os
import sys
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import numpy as np
import pytest
import soundfile as sf
import soxr

from bot import SessionPlace, create_session, run_session
from experiments.cli import run
from experiments.compare import outcome
from experiments.replay import replay_session
from experiments.runs import ScratchPostgres, offline, run_file_session
from experiments.stored import StoredSession, load_session
from processors.stages import load_pipeline
from settings import Settings
from storage.database import Database
from transport.file import FileTransport, FileTransportParams

ROOT = Path(__file__).resolve().parents[2]
NO_EMOTION = ROOT / "pipelines" / "no_emotion.toml"
MAIN_QUEST = "Ship the onboarding flow"
LEAD_S = 0.5  # the spoken fixtures start with half a second of silence


def offline_settings() -> Settings:
    return offline(Settings(_env_file=None, kane_data_dir=Path("/nonexistent/kane")))


def use_offline_env(monkeypatch: pytest.MonkeyPatch, data_dir: Path) -> None:
    """Make this process's environment `offline_env`'s, for the CLI run in a thread."""
    for name in list(os.environ):
        if name.startswith(("KANE_", "DEEPGRAM_", "OPENAI_", "HUME_", "LIVEKIT_", "DATABASE_")):
            monkeypatch.delenv(name)
    for name, value in offline_env(data_dir).items():
        monkeypatch.setenv(name, value)


def offline_env(data_dir: Path) -> dict[str, str]:
    """The environment of a CLI run: offline engines, no keys, data nowhere near the user's."""
    keep = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("KANE_", "DEEPGRAM_", "OPENAI_", "HUME_", "LIVEKIT_", "DATABASE_"))
    }
    return {
        **keep,
        "PYTHONPATH": str(ROOT),
        "KANE_STT": "whisper",
        "KANE_LLM": "rules",
        "KANE_TTS": "espeak",
        "KANE_DATA_DIR": str(data_dir),
    }


async def cli(*args: str, env: dict[str, str]) -> tuple[int, str, str]:
    """Run ``python -m experiments`` and return its exit status, stdout and stderr."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "experiments",
        *args,
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=240)
    assert process.returncode is not None
    return process.returncode, stdout.decode(), stderr.decode()


@pytest.fixture
async def stored_session(
    database: Database, onboarding_wav: Path, tmp_path: Path
) -> AsyncIterator[StoredSession]:
    """A session kept as the worker keeps one: the onboarding sentence, default pipeline."""
    transport = FileTransport(
        user_identity="ada", audio=onboarding_wav, params=FileTransportParams(speed=3.0)
    )
    run = await run_file_session(
        transport,
        settings=offline_settings(),
        pipeline=load_pipeline(ROOT / "pipelines" / "default.toml"),
        database=database,
        data_dir=tmp_path / "worker",
    )
    yield await load_session(database, run.session_id)


@pytest.mark.slow
async def test_a_wav_plays_through_a_session_that_ends_by_itself(
    onboarding_wav: Path, tmp_path: Path
):
    # Stereo at 44.1 kHz: the transport mixes it down and resamples it to the pipeline's rate.
    mono, rate = sf.read(onboarding_wav, dtype="float32")
    stereo_path = tmp_path / "stereo.wav"
    resampled = soxr.resample(mono, rate, 44100)
    sf.write(stereo_path, np.stack([resampled, resampled * 0.5], axis=1), 44100)
    bot_wav = tmp_path / "kane.wav"
    transport = FileTransport(
        user_identity="ada",
        audio=stereo_path,
        bot_audio_path=bot_wav,
        params=FileTransportParams(speed=3.0),
    )
    place = SessionPlace(session_id=str(uuid.uuid4()), user_id="ada", room="file")
    started = time.monotonic()
    async with aiohttp.ClientSession() as http:
        session = create_session(place, transport, offline_settings(), http)
        reason = await asyncio.wait_for(run_session(session), timeout=120)
    wall_s = time.monotonic() - started

    assert reason == "the user left the room"
    assert transport.audio_s == pytest.approx(mono.shape[0] / rate, abs=0.01)
    # One turn, heard where the speech is, closed by KANE's turn detection.
    assert len(transport.turns) == 1
    turn = transport.turns[0]
    assert LEAD_S < turn.started_s < LEAD_S + 1.0
    assert turn.stopped_s is not None and turn.stopped_s > turn.started_s + 1.5
    # The person stayed for the answer, then left; faster than it would take to say it all.
    assert transport.clock_s > transport.audio_s + 1.0
    assert wall_s < transport.clock_s
    # KANE spoke (its greeting and its answer) into the bot's WAV.
    voice, _ = sf.read(bot_wav, dtype="int16")
    assert np.abs(voice).max() > 1000


@pytest.mark.slow
async def test_simulate_turns_a_spoken_main_quest_into_the_main_quest(
    onboarding_wav: Path, tmp_path: Path
):
    data_dir = tmp_path / "persons-data"
    status, out, err = await cli(
        "simulate", str(onboarding_wav), "--speed", "2", env=offline_env(data_dir)
    )

    assert status == 0, err
    lines = out.splitlines()
    assert "faster-whisper" in lines[0] and "rules coach" in lines[0]
    messages = [line.split() for line in lines if line.startswith(" ") and "s  " in line]
    types = [parts[1] for parts in messages]
    times = [float(parts[0].rstrip("s")) for parts in messages]
    assert times == sorted(times)
    assert types.index("final_transcript") < types.index("quest_created")
    assert any("quest_created" in line and MAIN_QUEST in line for line in lines)
    assert types[-1] == "session_ended"
    assert lines[-1].split() == ["main", *MAIN_QUEST.split()]
    # The run kept nothing where the person's data lives.
    assert not data_dir.exists()


@pytest.mark.slow
async def test_a_replay_without_the_emotion_stage_keeps_the_quests_and_sends_no_emotion(
    stored_session: StoredSession, database: Database
):
    assert stored_session.pipeline.name == "default"
    assert stored_session.recording is not None

    async with ScratchPostgres() as scratch:
        own, other = await replay_session(
            stored_session,
            load_pipeline(NO_EMOTION),
            scratch=scratch,
            settings=offline_settings(),
            params=FileTransportParams(speed=3.0),
        )

    with_emotion, without = outcome(own), outcome(other)
    assert other.pipeline.name == "no_emotion"
    assert [(q.kind, q.title) for q in with_emotion.quests] == [("main", MAIN_QUEST)]
    assert with_emotion.same_quests(without)
    assert with_emotion.counts["emotion_changed"] >= 1
    assert without.counts["emotion_changed"] == 0
    assert with_emotion.drafts and without.drafts
    # The replays were kept apart from the worker's database.
    assert await database.pool.fetchval("SELECT count(*) FROM sessions") == 1


@pytest.mark.slow
async def test_replay_from_the_transcripts_prints_the_two_runs_side_by_side(
    stored_session: StoredSession, database_dsn: str, tmp_path: Path, monkeypatch
):
    assert [turn.text for turn in stored_session.text_turns] == [
        "My main quest today is to ship the onboarding flow."
    ]
    use_offline_env(monkeypatch, tmp_path / "data")
    out = io.StringIO()
    argv = ["replay", stored_session.session_id, "--text", "--pipeline", str(NO_EMOTION)]
    argv += ["--speed", "3", "--database-url", database_dsn]

    assert await asyncio.to_thread(run, argv, out) == 0

    lines = out.getvalue().splitlines()
    assert "default (the session's)" in lines[1] and "no_emotion" in lines[1]
    rows = {line[2:].split()[0]: line for line in lines[2:] if line[2:].strip()}
    assert rows["quests"].split()[1:] == ["same"]
    assert rows["quest_created"].split()[1:] == ["1", "1"]
    assert MAIN_QUEST in out.getvalue()
    # The emotion stage estimates from the words alone; without it, no emotion at all.
    emotion_row = rows["emotion_changed"]
    assert emotion_row.startswith("*") and emotion_row.split()[-2:] == ["1", "0"]


async def test_replay_refuses_what_it_cannot_replay_with_status_2(
    database: Database, database_dsn: str, tmp_path: Path, monkeypatch, capsys
):
    silent = str(uuid.uuid4())
    await database.sessions.create_session(silent, "ada", "room", {})
    await database.conversations.start(silent, "ada", {"name": "default", "stages": []})
    bad_pipeline = tmp_path / "bad.toml"
    bad_pipeline.write_text('name = "bad"\n[[stages]]\nname = "no_such_stage"\n')
    use_offline_env(monkeypatch, tmp_path / "data")
    worker = ["--database-url", database_dsn]

    async def refusal(*argv: str) -> str:
        assert await asyncio.to_thread(run, [*argv, *worker], io.StringIO()) == 2
        return capsys.readouterr().err

    assert "no session" in await refusal("replay", str(uuid.uuid4()))
    assert "not a session id" in await refusal("replay", "yesterday")
    assert "has no recording" in await refusal("replay", silent)
    assert "no_such_stage" in await refusal("replay", silent, "--pipeline", str(bad_pipeline))
    assert "needs --since" in await refusal("replay", "--user", "ada")
    assert not (tmp_path / "data").exists()
