"""A session's tap and journal together: a database outage mid-session loses nothing.

A real Pipecat pipeline, a ``TappedPipeline``, runs with a ``FrameTap`` that journals into a
``JournalWriter`` on a test-own embedded PostgreSQL. The server is stopped while frames keep
flowing and started again; once the pipeline has ended and the writer is closed,
``frame_journal`` holds every event the tap numbered (seq 1..N, no gap, no duplicate) and
every frame that was queued, and the phone heard every turn.
"""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

from pipecat.frames.frames import (
    BotStartedSpeakingFrame,
    BotStoppedSpeakingFrame,
    EndFrame,
    Frame,
    InputAudioRawFrame,
    InterimTranscriptionFrame,
    LLMTextFrame,
    TranscriptionFrame,
    TTSTextFrame,
)
from pipecat.pipeline.worker import PipelineWorker
from pipecat.processors.filters.identity_filter import IdentityFilter
from pipecat.workers.runner import WorkerRunner

from protocol import BotState, FinalTranscript
from storage.database import Database
from storage.embedded import EmbeddedPostgres
from tap.observer import FrameTap
from tap.pipeline import TappedPipeline

PHASE_S = 1.0  # frames flow this long before, during and after the outage
AUDIO = b"\x00\x00" * 320  # 20 ms at 16 kHz


class CollectingPhone:
    """Stands in for the PhoneLink (which needs LiveKit): keeps what it is told."""

    def __init__(self) -> None:
        self.sent: list[object] = []

    def send(self, message: object) -> None:
        self.sent.append(message)


def turn(n: int) -> list[Frame]:
    """One small turn; every text names its turn so the journal can be checked frame by frame."""
    return [
        InputAudioRawFrame(audio=AUDIO, sample_rate=16000, num_channels=1),
        InterimTranscriptionFrame(f"turn {n} interim", "ada", "t"),
        InputAudioRawFrame(audio=AUDIO, sample_rate=16000, num_channels=1),
        TranscriptionFrame(f"turn {n} final", "ada", "t"),
        LLMTextFrame(f"turn {n} llm a"),
        LLMTextFrame(f"turn {n} llm b"),
        BotStartedSpeakingFrame(),
        TTSTextFrame(f"turn {n} tts", "sentence"),
        BotStoppedSpeakingFrame(),
    ]


async def test_database_outage_mid_session_loses_no_frame(
    pg_data_dir: Path, tmp_path: Path
) -> None:
    server = EmbeddedPostgres(pg_data_dir)
    dsn = await server.start()
    database = await Database.open(dsn)
    writer = database.journal_writer(tmp_path / "journal.spool", retry_max_s=0.2)
    writer.start()
    session = uuid.uuid4()
    phone = CollectingPhone()
    tap = FrameTap(session_id=str(session), journal=writer, phone=phone)  # type: ignore[arg-type]
    worker = PipelineWorker(
        TappedPipeline([IdentityFilter(), IdentityFilter(), IdentityFilter()], tap=tap),
        enable_rtvi=False,
        idle_timeout_secs=None,
    )
    started = asyncio.Event()

    @worker.event_handler("on_pipeline_started")
    async def on_started(_worker: PipelineWorker, _frame: Frame) -> None:
        started.set()

    runner = WorkerRunner(handle_sigint=False)
    await runner.add_workers(worker)
    running = asyncio.create_task(runner.run())
    sent: list[Frame] = []

    async def stream(seconds: float) -> None:
        end = asyncio.get_running_loop().time() + seconds
        while asyncio.get_running_loop().time() < end:
            frames = turn(len(sent) // 9)
            sent.extend(frames)
            await worker.queue_frames(frames)
            await asyncio.sleep(0.002)

    try:
        async with asyncio.timeout(25):
            await started.wait()
            await stream(PHASE_S)
            assert writer.written > 0 and writer.spooled == 0
            await server.stop()
            await stream(PHASE_S)
            spooled_while_away = writer.spooled
            assert await server.start() == dsn
            await stream(PHASE_S)
            await worker.queue_frame(EndFrame())
            await running
            await writer.close()

        assert spooled_while_away > 0, "the outage never reached the journal"
        assert writer.pending == 0 and writer.stats.rejected == 0
        rows = await database.pool.fetch(
            "SELECT seq, kind, payload FROM frame_journal WHERE session_id = $1 ORDER BY seq",
            session,
        )
        assert tap.events > len(sent) // 2
        assert [row["seq"] for row in rows] == list(range(1, tap.events + 1))
        assert await database.pool.fetchval("SELECT count(*) FROM frame_journal") == tap.events

        kinds = [row["kind"] for row in rows]
        assert "InputAudioRawFrame" not in kinds
        # Every frame queued, not only every event the tap numbered, reached the journal.
        expected = [
            (type(f).__name__, getattr(f, "text", None))
            for f in sent
            if not isinstance(f, InputAudioRawFrame)
        ]
        journaled = [
            (row["kind"], row["payload"].get("text"))
            for row in rows
            if row["kind"] in {name for name, _ in expected}
        ]
        assert sorted(journaled, key=str) == sorted(expected, key=str)
        assert kinds[-1] == "EndFrame"
        # And the phone heard every turn's final transcript, in order, while it went on.
        turns = len(sent) // 9
        finals = [m.text for m in phone.sent if isinstance(m, FinalTranscript)]
        assert finals == [f"turn {n} final" for n in range(turns)]
        assert phone.sent.count(BotState(state="speaking")) == turns
        print(f"{tap.events} events, {len(sent)} frames queued, {writer.spooled} through the spool")
    finally:
        if not running.done():
            running.cancel()
        await asyncio.gather(running, return_exceptions=True)
        await database.close()
        await server.stop()
