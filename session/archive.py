"""Everything a session keeps: its frames, its phone messages, its recordings, its record."""

from __future__ import annotations

import datetime
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loguru import logger
from pipecat.frames.frames import Frame
from pipecat.pipeline.worker import PipelineWorker

from processors.recorder import AudioRecorder, Recordings
from protocol import SessionEnded, SessionStarted
from quests.plan import PlanDraft, PlanSources, draft_plan
from storage.audio_store import AudioStore, LocalAudioStore
from storage.conversations import ConversationStore
from storage.database import Database
from storage.journal import JournalWriter
from storage.quests import QuestStore
from storage.recording_writes import RecordingWrites
from storage.sessions import SessionStore
from tap.conversation import ConversationLog
from tap.observer import FrameTap
from tap.phone import PhoneLink
from transport.base import KaneTransport


@dataclass
class Archive:
    """The worker's stores, shared by its sessions.

    Parameters:
        sessions: Session records.
        journal: The frame journal's writer.
        conversations: Conversation records and UI interactions.
        audio: Where recordings go.
        recordings: Hands the sessions' recordings to the writer thread, together.
        quests: The person's quests and their history.
        plans: What today's plan is drafted from (patterns, past quests).
    """

    sessions: SessionStore
    journal: JournalWriter
    conversations: ConversationStore
    audio: AudioStore
    recordings: RecordingWrites
    quests: QuestStore
    plans: PlanSources

    @classmethod
    def open(cls, database: Database, data_dir: Path, *, spool: str = "journal.spool") -> Archive:
        """The stores of a worker, over its database and its data folder.

        The journal spools to `<data_dir>/<spool>` while the database is away (one file per
        process: a spool is locked by its writer); recordings go to `<data_dir>/recordings`.
        """
        # Batches of 1000 rows keep a backlog drain from holding the event loop (~3 ms p99).
        journal = JournalWriter(database.pool, spool_path=data_dir / spool, max_batch=1000)
        journal.start()
        return cls(
            sessions=database.sessions,
            journal=journal,
            conversations=database.conversations,
            audio=LocalAudioStore(data_dir / "recordings"),
            recordings=RecordingWrites(),
            quests=database.quests,
            plans=database,
        )

    async def close(self) -> None:
        """Write out what the journal and the recordings still hold."""
        await self.recordings.close()
        await self.journal.close()


class SessionArchive:
    """Keeps one session: the tap on its frames, its phone link, its recorder, its record."""

    def __init__(
        self,
        *,
        archive: Archive,
        session_id: str,
        user_id: str,
        room: str,
        transport: KaneTransport,
        engines: dict[str, str],
        pipeline: dict[str, Any],
    ):
        """Prepare to keep a session.

        Args:
            archive: The worker's stores.
            session_id: The session.
            user_id: Its person (their LiveKit identity).
            room: Its LiveKit room.
            transport: The session's transport.
            engines: Which engine runs each stage.
            pipeline: The session's pipeline (processors between STT and LLM and their params).
        """
        self._archive = archive
        self._session_id = session_id
        self._user_id = user_id
        self._room = room
        self._engines = engines
        self._pipeline = pipeline
        self._worker: PipelineWorker | None = None
        self._started = time.monotonic()
        self.plan: PlanDraft | None = None
        self.recorder = AudioRecorder(
            session_id=session_id, store=archive.audio, writes=archive.recordings
        )
        self.phone = PhoneLink(
            transport=transport,
            session_id=session_id,
            user_identity=user_id,
            journal=self._record,
            push_frame=self._push_frame,
            store_ui=self._store_ui,
        )
        self.tap = FrameTap(session_id=session_id, journal=archive.journal, phone=self.phone)
        self._ending: str | None = None
        self._said_goodbye = False
        transport.add_event_handler("on_before_disconnect", self._before_bot_leaves)

    def attach(self, worker: PipelineWorker) -> None:
        """Give the archive the worker that the phone's frames go into."""
        self._worker = worker

    async def begin(self) -> None:
        """Open the session's records and the phone link.

        A database that is away costs the session its records, not its conversation: the
        journal spools meanwhile.
        """
        self.phone.start()
        try:
            await self._archive.sessions.create_session(
                self._session_id, self._user_id, self._room, self._engines
            )
            await self._archive.conversations.start(self._session_id, self._user_id, self._pipeline)
        except Exception as e:
            logger.error(f"{self}: records of {self._session_id} not opened: {e}")
        try:
            plans = self._archive.plans
            today = plans.patterns.local_day(datetime.datetime.now(datetime.UTC))
            self.plan = await draft_plan(plans, self._user_id, today=today)
        except Exception as e:
            logger.error(f"{self}: today's plan not drafted: {e}")

    def user_joined(self) -> None:
        """Tell the phone its session has started, and today's drafted plan."""
        self.phone.send(
            SessionStarted(
                session_id=self._session_id, user_id=self._user_id, engines=self._engines
            )
        )
        self._record("session_started", {"user_id": self._user_id, "engines": self._engines})
        if self.plan is not None:
            self.phone.send(self.plan.to_protocol())
            self._record("plan_draft", self.plan.to_dict())

    async def announce_end(self, reason: str) -> None:
        """Know why the session ends, before its pipeline drains.

        The phone hears it last, just before the bot leaves: what the drain still makes
        (KANE's last words, a quest they created) reaches the phone before `session_ended`.
        """
        self._ending = reason

    async def _before_bot_leaves(self, transport: object) -> None:
        await self._say_goodbye(self._ending or "the session ended")

    async def _say_goodbye(self, reason: str) -> None:
        """Send `session_ended` (once) after everything queued, and close the phone link."""
        if not self._said_goodbye:
            self._said_goodbye = True
            self.tap.flush()  # the phone hears of every frame seen so far first
            self.phone.send(SessionEnded(reason=reason))
        await self.phone.close()

    async def finish(self, reason: str) -> None:
        """Close everything after the pipeline has ended and complete the conversation record."""
        # Normally said as the bot left; a session that never got that far says it now.
        await self._say_goodbye(self._ending or reason)
        self._record("session_ended", {"reason": reason})
        recordings = await self.recorder.close()
        try:
            await self._archive.journal.flush(uuid.UUID(self._session_id))
        except Exception as e:
            logger.error(f"{self}: journal flush at the end of {self._session_id} failed: {e}")
        conversation = self.tap.conversation
        try:
            await self._save_record(reason, recordings, conversation)
        except Exception as e:
            logger.error(f"{self}: record of {self._session_id} not saved: {e}")
        try:
            # What KANE knows of the person changes with every session.
            await self._archive.plans.patterns.analyze(self._user_id)
        except Exception as e:
            logger.error(f"{self}: patterns of the session's user not updated: {e}")

    async def _save_record(
        self, reason: str, recordings: Recordings, conversation: ConversationLog
    ) -> None:
        await self._archive.conversations.finish(
            self._session_id,
            transcript=conversation.transcript,
            ai_response=conversation.ai_response,
            duration_s=time.monotonic() - self._started,
            user_audio_url=recordings.user_url,
            bot_audio_url=recordings.bot_url,
            audio_url=recordings.user_url,
            turn_count=len(conversation.user),
            quests_created=conversation.quests_created,
            quest_refinements=conversation.quest_refinements,
            correction_count=conversation.correction_count,
            main_quest_identified=conversation.main_quest_identified,
            success_criteria_defined=conversation.success_criteria_defined,
            emotional_journey=conversation.emotional_journey,
            speaking_pace=conversation.speaking_pace,
            clarity_score=conversation.clarity_score,
        )
        await self._archive.sessions.end_session(self._session_id, reason)

    def _record(self, kind: str, payload: dict[str, Any]) -> None:
        self.tap.record(kind, payload)

    async def _push_frame(self, frame: Frame) -> None:
        if self._worker is not None:
            await self._worker.queue_frame(frame)

    async def _store_ui(self, seq: int, kind: str, payload: dict[str, Any]) -> None:
        await self._archive.conversations.record_ui(self._session_id, seq, kind, payload)
