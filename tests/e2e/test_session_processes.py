"""Sessions spread over the worker's session processes; a process that dies takes only its own."""

import os
import signal

import pytest

from tests.e2e.conftest import join, session_row, worker_env
from tests.support.speech import ONBOARDING_SENTENCE
from tests.support.worker import running_worker

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def processes_of(health: dict) -> list[dict]:
    return health["sessions"]["processes"]


async def test_a_dead_session_process_takes_only_its_sessions(
    livekit_server, database_dsn, stt, openai, onboarding_wav, tmp_path
):
    env = worker_env(
        livekit_server,
        database_dsn,
        stt,
        openai,
        tmp_path / "data",
        KANE_MAX_SESSIONS="4",
        KANE_SESSION_PROCESSES="2",
    )
    async with running_worker(env, tmp_path / "worker.log") as worker:
        health = await worker.health()
        before = processes_of(health)
        assert [p["ready"] for p in before] == [True, True], before
        worker_pid = worker.process.pid
        assert worker_pid not in {p["pid"] for p in before}

        ada_grant, ada = await join(worker, "ada")
        grace_grant, grace = await join(worker, "grace")
        try:
            # One session each: the worker hands a session to the least busy process.
            spread = processes_of(await worker.health())
            assert sorted(p["sessions"] for p in spread) == [1, 1], spread
            for client in (ada, grace):
                assert await client.wait_for_bot_audio(timeout_s=20, after=0.0) is not None
                assert await client.wait_for_bot_silence(0.8, timeout_s=20)

            # Ada's process is the first one (it had no session when hers started).
            victim = next(p for p in spread if p["index"] == 0)
            os.kill(victim["pid"], signal.SIGKILL)
            await worker.wait_for(
                lambda h: any(
                    e["session_id"] == ada_grant["session_id"]
                    for e in h["sessions"]["recent_endings"]
                ),
                timeout_s=15,
            )
            record = await session_row(database_dsn, ada_grant["session_id"])
            assert record["ended_at"] is not None
            assert record["end_reason"] == "its session process died (exit code -9)"

            # The process comes back, and Grace's session never noticed.
            restarted = await worker.wait_for(
                lambda h: next(
                    (
                        p
                        for p in processes_of(h)
                        if p["index"] == 0 and p["ready"] and p["pid"] != victim["pid"]
                    ),
                    None,
                ),
                timeout_s=60,
            )
            assert restarted["restarts"] == 1 and restarted["sessions"] == 0
            stt.script_utterance(ONBOARDING_SENTENCE)
            await grace.speak(onboarding_wav)
            assert await grace.wait_for_bot_audio(timeout_s=20) is not None, (
                "the surviving session no longer answers"
            )
            health = await worker.health()
            assert health["sessions"]["active"] == 1

            # A new session goes to the restarted, idle process.
            third_grant, third = await join(worker, "hopper")
            try:
                spread = processes_of(await worker.health())
                assert next(p for p in spread if p["index"] == 0)["sessions"] == 1, spread
                assert await third.wait_for_bot_audio(timeout_s=20, after=0.0) is not None
            finally:
                await third.close()
        finally:
            await ada.close()

        # SIGTERM: the worker ends the sessions its processes still run, each says why.
        await worker.terminate()
        assert worker.returncode == 0, worker.log()[-3000:]
        ended = await grace.wait_for_message(type="session_ended", timeout_s=5)
        await grace.close()
        assert ended is not None, "Grace's phone was not told the session ended"
        record = await session_row(database_dsn, grace_grant["session_id"])
        assert record["end_reason"] == "the worker is shutting down"
        log = worker.log()
        assert "sessions-0" in log and "sessions-1" in log
        for secret in (env["DEEPGRAM_API_KEY"], env["OPENAI_API_KEY"], livekit_server.api_secret):
            assert secret not in log
        # Every session process exited with the worker.
        for p in processes_of(health):
            with pytest.raises(ProcessLookupError):
                os.kill(p["pid"], 0)
