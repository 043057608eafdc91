"""Experiments: a WAV played through a whole offline session, and kept sessions replayed.

Everything runs on the real offline engines (faster-whisper, the rules coach, eSpeak NG) and
real embedded PostgreSQL; the cloud engines, where a test needs them, are the loopback
emulators.
"""

from __future__ import annotations

import asyncio
import io
import os
import re
import sys
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import asyncpg
import numpy as np
import pytest
import soundfile as sf
import soxr

from emulators import DeepgramEmulator, HumeExpressionEmulator, OpenAIEmulator
from experiments.cli import run
from experiments.compare import outcome
from experiments.replay import replay_session
from experiments.runs import ScratchPostgres, offline, run_file_session
from experiments.stored import StoredSession, load_session
from processors.stages import load_pipeline
from settings import Settings
from storage.database import Database
from storage.migrations import MIGRATIONS_DIR, migrate
from transport.file import FileTransport, FileTransportParams

ROOT = Path(__file__).resolve().parents[2]
DEFAULT = ROOT / "pipelines" / "default.toml"
NO_EMOTION = ROOT / "pipelines" / "no_emotion.toml"
MAIN_QUEST = "Ship the onboarding flow"
MESSAGE_LINE = re.compile(r"^ *(\d+\.\d+)s  (\S+)")


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


def production_env(
    data_dir: Path,
    deepgram: DeepgramEmulator,
    openai: OpenAIEmulator,
    hume: HumeExpressionEmulator,
) -> dict[str, str]:
    """A worker's environment with every cloud key, the clouds being loopback emulators."""
    return {
        **offline_env(data_dir),
        "KANE_STT": "auto",
        "KANE_LLM": "auto",
        "KANE_TTS": "openai,deepgram,espeak",
        "DEEPGRAM_API_KEY": "deepgram-key",
        "DEEPGRAM_BASE_URL": deepgram.base_url,
        "OPENAI_API_KEY": "openai-key",
        "OPENAI_BASE_URL": openai.base_url,
        "HUME_API_KEY": "hume-key",
        "HUME_EXPRESSION_URL": hume.base_url,
    }


@asynccontextmanager
async def cloud_emulators() -> AsyncIterator[
    tuple[DeepgramEmulator, OpenAIEmulator, HumeExpressionEmulator]
]:
    async with (
        DeepgramEmulator() as deepgram,
        OpenAIEmulator() as openai,
        HumeExpressionEmulator() as hume,
    ):
        yield deepgram, openai, hume


def engine_lines(lines: list[str]) -> dict[str, str]:
    """The engines a simulate run's header names, by stage."""
    engines = {}
    for line in lines[1:]:
        if not line.startswith("  ") or MESSAGE_LINE.match(line):
            break
        stage, engine = line.split(None, 1)
        engines[stage] = engine
    return engines


def speech_span(samples: np.ndarray, rate: int) -> tuple[float, float]:
    """Where the speech in a recording starts and ends, in seconds."""
    loud = np.flatnonzero(np.abs(samples) > 0.02)
    return loud[0] / rate, loud[-1] / rate


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
        pipeline=load_pipeline(DEFAULT),
        database=database,
        data_dir=tmp_path / "worker",
    )
    yield await load_session(database, run.session_id)


@pytest.mark.slow
async def test_a_wav_plays_through_a_session_that_ends_by_itself(
    onboarding_wav: Path, database: Database, tmp_path: Path
):
    # Stereo at 44.1 kHz: the transport mixes it down and resamples it to the pipeline's rate.
    mono, rate = sf.read(onboarding_wav, dtype="float32")
    stereo_path = tmp_path / "stereo.wav"
    resampled = soxr.resample(mono, rate, 44100)
    sf.write(stereo_path, np.stack([resampled, resampled * 0.5], axis=1), 44100)
    speech_start_s, speech_end_s = speech_span(mono, rate)
    bot_wav = tmp_path / "kane.wav"
    transport = FileTransport(
        user_identity="ada",
        audio=stereo_path,
        bot_audio_path=bot_wav,
        params=FileTransportParams(speed=3.0),
    )
    run = await asyncio.wait_for(
        run_file_session(
            transport,
            settings=offline_settings(),
            pipeline=load_pipeline(DEFAULT),
            database=database,
            data_dir=tmp_path / "worker",
        ),
        timeout=120,
    )

    assert run.end_reason == "the user left the room"
    assert transport.audio_s == pytest.approx(mono.shape[0] / rate, abs=0.01)
    # One turn, around the speech. Turn times are when the transport heard of them, so
    # only their order against the audio holds whatever the load: no bound on the lag.
    assert len(run.turns) == 1
    turn = run.turns[0]
    assert speech_start_s < turn.started_s
    assert turn.stopped_s is not None and speech_end_s < turn.stopped_s
    # The person heard the whole answer before leaving: KANE started speaking after the
    # turn, was listening again at the end, and the session ended after that.
    states = [(m.at_s, m.data.get("state")) for m in run.messages if m.type == "bot_state"]
    assert any(state == "speaking" and at_s >= turn.stopped_s for at_s, state in states)
    assert states[-1][1] == "listening"
    assert run.messages[-1].type == "session_ended"
    final = next(m for m in run.messages if m.type == "final_transcript")
    assert final.at_s >= turn.started_s
    assert run.session_s >= transport.audio_s + FileTransportParams().min_trailing_silence_s
    # KANE spoke (its greeting and its answer) into the bot's WAV.
    voice, _ = sf.read(bot_wav, dtype="int16")
    assert np.abs(voice).max() > 1000


@pytest.mark.slow
async def test_simulate_runs_offline_whatever_keys_the_settings_hold(
    onboarding_wav: Path, tmp_path: Path
):
    data_dir = tmp_path / "persons-data"
    async with cloud_emulators() as (deepgram, openai, hume):
        env = production_env(data_dir, deepgram, openai, hume)
        status, out, err = await cli("simulate", str(onboarding_wav), "--speed", "2", env=env)
        # Nothing of the person's voice or words went to the cloud.
        assert (deepgram.requests, openai.requests, hume.requests) == ([], [], [])

    assert status == 0, err
    lines = out.splitlines()
    assert "offline engines" in lines[0]
    engines = engine_lines(lines)
    assert engines["stt"].startswith("faster-whisper")
    assert "rules coach" in engines["llm"]
    assert engines["tts"] == "espeak (eSpeak NG, offline)"
    assert engines["emotion"] == "local (prosody + VADER)"
    messages = [match.groups() for line in lines if (match := MESSAGE_LINE.match(line))]
    types = [kind for _, kind in messages]
    times = [float(at_s) for at_s, _ in messages]
    assert times == sorted(times)
    assert types.index("final_transcript") < types.index("quest_created")
    assert any("quest_created" in line and MAIN_QUEST in line for line in lines)
    assert types[-1] == "session_ended"
    assert lines[-1].split() == ["main", *MAIN_QUEST.split()]
    # The run kept nothing where the person's data lives.
    assert not data_dir.exists()


@pytest.mark.slow
async def test_simulate_with_configured_engines_uses_the_cloud_ones(
    onboarding_wav: Path, tmp_path: Path
):
    async with cloud_emulators() as (deepgram, openai, hume):
        deepgram.script_utterance("My main quest today is to ship the onboarding flow.")
        env = production_env(tmp_path / "data", deepgram, openai, hume)
        status, out, err = await cli(
            "simulate", str(onboarding_wav), "--speed", "2", "--configured-engines", env=env
        )

        assert status == 0, err
        engines = engine_lines(out.splitlines())
        assert engines["stt"].startswith("Deepgram")
        assert engines["llm"].startswith("OpenAI")
        assert engines["tts"].startswith("openai")
        assert engines["emotion"].startswith("Hume")
        assert deepgram.requests and openai.requests and hume.requests


async def test_simulate_refuses_what_it_cannot_run_with_status_2(
    onboarding_wav: Path, tmp_path: Path, monkeypatch, capsys
):
    use_offline_env(monkeypatch, tmp_path / "data")
    not_audio = tmp_path / "notes.txt"
    not_audio.write_text("not a sound")
    bad_pipeline = tmp_path / "bad.toml"
    bad_pipeline.write_text('name = "bad"\n[[stages]]\nname = "no_such_stage"\n')
    wav = str(onboarding_wav)

    async def refusal(*argv: str) -> str:
        assert await asyncio.to_thread(run, ["simulate", *argv], io.StringIO()) == 2
        return capsys.readouterr().err

    assert "no such file" in await refusal(str(tmp_path / "missing.wav"))
    assert "not an audio file" in await refusal(str(not_audio))
    assert "--speed must be above 0" in await refusal(wav, "--speed", "0")
    assert "no_such_stage" in await refusal(wav, "--pipeline", str(bad_pipeline))
    assert "a folder, not a file" in await refusal(wav, "--bot-audio", str(tmp_path))
    blocked = not_audio / "kane.wav"  # under a file, where no folder can be made
    assert f"cannot write in {not_audio}" in await refusal(wav, "--bot-audio", str(blocked))
    assert not (tmp_path / "data").exists()


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


async def test_replay_reads_the_workers_database_as_it_is_and_never_migrates_it(
    database_dsn: str, tmp_path: Path, monkeypatch, capsys
):
    use_offline_env(monkeypatch, tmp_path / "data")

    async def refusal(*argv: str) -> str:
        assert await asyncio.to_thread(run, ["replay", *argv], io.StringIO()) == 2
        return capsys.readouterr().err

    session = str(uuid.uuid4())
    # An empty database: refused, and left without a schema.
    assert "no KANE schema" in await refusal(session, "--database-url", database_dsn)
    conn = await asyncpg.connect(database_dsn)
    try:
        assert await conn.fetchval("SELECT to_regclass('schema_migrations')") is None
        # A database the worker last migrated with older code: refused, left as it was.
        old = tmp_path / "old-migrations"
        old.mkdir()
        first = min(MIGRATIONS_DIR.glob("*.sql"))
        (old / first.name).write_text(first.read_text())
        await migrate(conn, old)
        err = await refusal(session, "--database-url", database_dsn)
        assert "older than this code" in err and "0002_" in err
        assert await conn.fetchval("SELECT count(*) FROM schema_migrations") == 1
    finally:
        await conn.close()
    # No URL and no embedded database in the data folder: refused before one is made there.
    assert "no worker's database" in await refusal(session, "--data-dir", str(tmp_path / "w"))
    assert not (tmp_path / "w").exists()
