"""KANE's bot: one Pipecat pipeline per session, joined to the person's LiveKit room.

Read top to bottom: settings -> services -> KANE's stages -> pipeline -> event handlers -> run.
The HTTP API (`api/`) calls `create_session` for each /connect; Pipecat's runner calls `bot`.
"""

from __future__ import annotations

import datetime
import uuid
from dataclasses import dataclass
from typing import Any

import aiohttp
from loguru import logger
from pipecat.frames.frames import TTSSpeakFrame
from pipecat.pipeline.worker import PipelineParams, PipelineWorker, ProcessorUnusablePolicy
from pipecat.processors.aggregators.llm_context import LLMContext
from pipecat.processors.aggregators.llm_response_universal import LLMContextAggregatorPair
from pipecat.processors.audio.vad_processor import VADProcessor
from pipecat.processors.frame_processor import FrameProcessor
from pipecat.runner.types import LiveKitRunnerArguments, RunnerArguments
from pipecat.workers.runner import WorkerRunner

import prompts
from processors.coach_turn import CoachTurnNote
from processors.mic_lane import mic_lane
from processors.notes import note_message
from processors.quest_board import QuestBoardTracker
from processors.screen_context import ScreenContextInjector
from processors.stage_exit import stage_exit
from processors.stages import PipelineSpec, StageNeeds, build_stages, load_pipeline
from processors.user_audio import UserAudioStop
from quests.board import QuestBoard
from quests.tools import QuestTools, quest_tools_schema
from quests.trigger import last_user_words
from services.factory import build_emotion_analyzers, build_llm, build_stt, build_tts
from services.shared_models import build_vad_analyzer
from services.turns import user_turn_params
from session.archive import Archive, SessionArchive
from session.idle import IdleWatch
from session.lifecycle import JoinDeadlines, SessionLifecycle
from settings import Settings
from storage.database import Database
from storage.quests import QuestStore
from tap.pipeline import TappedPipeline
from transport.base import KaneTransport
from transport.livekit import KaneLiveKitTransport


@dataclass
class BotSession:
    """A session's pipeline worker, the lifecycle that watches it, and what it keeps."""

    session_id: str
    user_id: str
    worker: PipelineWorker
    lifecycle: SessionLifecycle
    archive: SessionArchive | None
    board: QuestBoard
    quests: QuestStore | None
    context: LLMContext
    coach: CoachTurnNote


@dataclass(frozen=True)
class SessionPlace:
    """Who a session is for and where it runs.

    Parameters:
        session_id: The session (a UUID).
        user_id: Its person; their identity on the transport.
        room: The room (LiveKit) or a name for the connection (playground, file).
    """

    session_id: str
    user_id: str
    room: str


def worker_options() -> dict[str, Any]:
    """The options of every session's `PipelineWorker` but its pipeline and conversation id.

    Pipecat's default observers (turn tracking, idle timeout) each cost every push of every
    processor a queue put and a task wake. Nothing of KANE's uses turn tracking, and the
    session's `IdleWatch` sees activity inline instead (see `create_session`).
    """
    return {
        "params": PipelineParams(enable_metrics=True, enable_usage_metrics=True),
        "enable_rtvi": False,
        "processor_unusable_policy": ProcessorUnusablePolicy.END,
        "enable_turn_tracking": False,
        "idle_timeout_secs": None,
    }


def create_session(
    place: SessionPlace,
    transport: KaneTransport,
    settings: Settings,
    http: aiohttp.ClientSession,
    archive: Archive | None = None,
    pipeline: PipelineSpec | None = None,
) -> BotSession:
    """Build the pipeline of one session.

    Args:
        place: The session, its person and its room.
        transport: What carries the session's audio and data (LiveKit, WebRTC, a file).
        settings: The worker's settings.
        http: A shared HTTP session for the services that want one.
        archive: The worker's stores; without them nothing of the session is kept and the
            LLM gets no quest tools.
        pipeline: KANE's stages between STT and the LLM; the file of KANE_PIPELINE if None.
    """
    session_id, user_id = place.session_id, place.user_id
    quests = archive.quests if archive else None

    # Services
    stt = build_stt(settings)
    llm = build_llm(
        settings,
        system_instruction=prompts.render("system", today=datetime.date.today().isoformat()),
    )
    tts = build_tts(settings, http)

    # The conversation's context, and the quests it keeps through the LLM's tools
    context = LLMContext(tools=quest_tools_schema()) if quests else LLMContext()
    user_aggregator, assistant_aggregator = LLMContextAggregatorPair(
        context, user_params=user_turn_params(settings.kane_preemptive)
    )
    board = QuestBoard()
    if quests:
        QuestTools(
            quests,
            user_id=user_id,
            session_id=session_id,
            trigger_phrase=lambda: last_user_words(context),
        ).register(llm)

    # KANE's own stages between STT and the LLM, as the pipeline file names them
    pipeline = pipeline or load_pipeline(settings.kane_pipeline)
    kane_stages: list[FrameProcessor] = build_stages(
        pipeline,
        StageNeeds(
            context=context,
            user_id=user_id,
            session_id=session_id,
            quests=quests,
            emotion_analyzers=lambda: build_emotion_analyzers(settings),
        ),
    )

    # What the session keeps: the tap on every frame, the phone link, the recordings
    kept = (
        SessionArchive(
            archive=archive,
            session_id=session_id,
            user_id=user_id,
            room=place.room,
            transport=transport,
            engines=_engines(settings, transport),
            pipeline=pipeline.describe(),
        )
        if archive
        else None
    )

    # Pipeline
    coach = CoachTurnNote(context=context, board=board)
    idle = IdleWatch()  # Pipecat's idle timeout, watched inline instead of by an observer
    processors = TappedPipeline(
        [
            transport.input(),
            VADProcessor(vad_analyzer=build_vad_analyzer()),
            stt,
            *mic_lane(kane_stages, user_aggregator),  # the microphone's frames skip the stages
            *stage_exit(kane_stages),  # drafts and emotions go no further than the tap
            user_aggregator,
            # Below the aggregator nothing listens to the microphone but the recorder.
            UserAudioStop(recorder=kept.recorder if kept else None),
            ScreenContextInjector(context=context, quest_title=_quest_title(quests, user_id)),
            coach,
            llm,
            QuestBoardTracker(board=board),
            tts,
            transport.output(),
            *([kept.recorder] if kept else []),
            assistant_aggregator,
        ],
        tap=kept.tap if kept else None,  # sees every push inline, off Pipecat's observer queues
        idle=idle,
    )
    worker = PipelineWorker(processors, conversation_id=session_id, **worker_options())
    if kept:
        kept.attach(worker)

    # Event handlers
    lifecycle = SessionLifecycle(
        worker=worker,
        transport=transport,
        user_identity=user_id,
        deadlines=JoinDeadlines(
            bot_s=settings.kane_bot_join_timeout_s, user_s=settings.kane_user_join_timeout_s
        ),
        on_ending=kept.announce_end if kept else None,
        idle=idle,  # the lifecycle ends an idle session, with a goodbye
    )

    @transport.event_handler("on_first_participant_joined")
    async def on_first_participant_joined(transport: KaneTransport, identity: str) -> None:
        if kept:
            kept.user_joined()
        if settings.kane_greeting:
            await worker.queue_frames([TTSSpeakFrame(settings.kane_greeting)])

    return BotSession(session_id, user_id, worker, lifecycle, kept, board, quests, context, coach)


def _engines(settings: Settings, transport: KaneTransport) -> dict[str, str]:
    """Which engine runs each stage of this session, its transport included."""
    engines = settings.describe_engines()
    if isinstance(transport, KaneLiveKitTransport):
        engines["transport"] = f"LiveKit at {settings.livekit_url}"
    else:
        engines["transport"] = type(transport).__name__
    return engines


def _quest_title(quests: QuestStore | None, user_id: str):
    """Looks up the title of one of the person's quests (for the screen context)."""
    if quests is None:
        return None

    async def title(quest_id: str) -> str | None:
        quest = await quests.get(quest_id, user_id)
        return quest.title if quest else None

    return title


def _personalize(session: BotSession) -> None:
    """What KANE learned of the person: a profile in the context, coaching to match."""
    plan = session.archive.plan if session.archive else None
    if plan is None:
        return
    if plan.profile:
        session.context.add_message(note_message(prompts.render("profile", profile=plan.profile)))
    session.coach.needs_coaching = plan.needs_coaching_probability


async def run_session(session: BotSession, *, handle_sigint: bool = False) -> str:
    """Run a session until it ends; returns why it ended.

    Args:
        session: The session made by `create_session`.
        handle_sigint: Let Pipecat's runner end the session on Ctrl-C.
    """
    runner = WorkerRunner(handle_sigint=handle_sigint)
    await runner.add_workers(session.worker)
    if session.archive:
        await session.archive.begin()
        _personalize(session)
    if session.quests:
        try:
            active = await session.quests.list_active(session.user_id)
            session.board.load([quest.to_dict() for quest in active])
        except Exception as e:
            logger.error(f"Session {session.session_id}: quests not loaded: {e}")
    session.lifecycle.start()
    try:
        await runner.run()
    finally:
        await session.lifecycle.close()
        reason = session.lifecycle.end_reason or "the session ended"
        if session.archive:
            await session.archive.finish(reason)
    return reason


async def bot(runner_args: RunnerArguments) -> None:
    """Pipecat's entry point: run one session in the LiveKit room of `runner_args`."""
    if not isinstance(runner_args, LiveKitRunnerArguments):
        raise TypeError(f"KANE's bot runs in LiveKit rooms, not {type(runner_args).__name__}")
    settings = Settings()
    body = runner_args.body or {}
    place = SessionPlace(
        session_id=str(body.get("session_id") or runner_args.session_id or uuid.uuid4()),
        user_id=str(body.get("user_id", "")),
        room=runner_args.room_name,
    )
    transport = KaneLiveKitTransport.for_room(
        url=runner_args.url, token=runner_args.token, room_name=runner_args.room_name
    )
    database_url = settings.database_url.get_secret_value() if settings.database_url else None
    database = await Database.open(database_url, data_dir=settings.kane_data_dir / "postgres")
    archive = Archive.open(database, settings.kane_data_dir)
    try:
        async with aiohttp.ClientSession() as http:
            session = create_session(place, transport, settings, http, archive)
            reason = await run_session(session, handle_sigint=runner_args.handle_sigint)
        logger.info(f"Session {session.session_id} ended: {reason}")
    finally:
        await archive.close()
        await database.close()


if __name__ == "__main__":
    from pipecat.runner.run import main

    main()
