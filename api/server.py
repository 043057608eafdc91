"""The worker's HTTP API: GET /health and POST /connect."""

import dataclasses
import datetime
import os
import tomllib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import aiohttp
from fastapi import Depends, FastAPI, Header, HTTPException, Request
from fastapi import Path as PathParam
from fastapi.responses import JSONResponse
from loguru import logger
from pydantic import BaseModel, ConfigDict, Field

from api.auth import RESERVED_IDS, USER_ID_PATTERN, Authenticator, AuthError, Caller
from api.livekit_rooms import LiveKitRooms
from api.playground import playground_router
from api.session_processes import SessionProcesses
from api.sessions import RETRY_AFTER_S, AtCapacityError, SessionManager
from checkins import CheckinScheduler, WebhookNotifier, default_worker_id
from processors.stages import PipelineSpec, load_pipeline
from quests.plan import draft_plan
from session.archive import Archive
from session.heap import freeze_startup_heap
from session.shared import load_shared, release_shared
from settings import Settings
from storage.database import Database
from transport.loopback_ice import gather_on_loopback_only


class ConnectRequest(BaseModel):
    """Body of POST /connect (may be empty for a JWT caller)."""

    model_config = ConfigDict(extra="forbid")

    user_id: str | None = Field(default=None, min_length=1, max_length=128, pattern=USER_ID_PATTERN)
    app_version: str | None = Field(default=None, max_length=64)


class ConnectResponse(BaseModel):
    """What the phone needs to join its session's room."""

    url: str
    token: str
    room: str
    session_id: str


@dataclass
class Worker:
    """What the API's handlers share."""

    settings: Settings
    version: str
    database: Database
    rooms: LiveKitRooms | None
    sessions: SessionManager
    authenticator: Authenticator


def read_version() -> str:
    """KANE's version, from pyproject.toml."""
    pyproject = Path(__file__).resolve().parent.parent / "pyproject.toml"
    with pyproject.open("rb") as f:
        return str(tomllib.load(f)["project"]["version"])


def create_app(settings: Settings, pipeline: PipelineSpec | None = None) -> FastAPI:
    """The HTTP API; the database, LiveKit client and session manager live in its lifespan.

    Args:
        settings: The worker's settings.
        pipeline: KANE's stages for every session; the file of KANE_PIPELINE if None.
    """
    pipeline = pipeline or load_pipeline(settings.kane_pipeline)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        database_url = settings.database_url.get_secret_value() if settings.database_url else None
        database = await Database.open(database_url, data_dir=settings.kane_data_dir / "postgres")
        logger.info(f"Database: {database.describe()}")
        restore_ice = None
        if settings.playground_enabled and settings.kane_playground_ice == "loopback":
            restore_ice = gather_on_loopback_only()
        await load_shared(settings)
        archive = Archive.open(database, settings.kane_data_dir)
        freeze_startup_heap()  # before the session processes: they are spawned, not forked
        async with aiohttp.ClientSession() as http:
            rooms = None
            if settings.livekit_configured:
                assert settings.livekit_url and settings.livekit_api_key
                assert settings.livekit_api_secret
                rooms = LiveKitRooms(
                    url=settings.livekit_url,
                    api_key=settings.livekit_api_key,
                    api_secret=settings.livekit_api_secret.get_secret_value(),
                    http=http,
                )
            processes = None
            if rooms is not None and settings.session_processes > 0:
                # They read their settings from this process's environment (and .env), as
                # `python -m api` does, with the pipeline file it was given.
                processes = SessionProcesses(
                    settings.session_processes,
                    database_url=database.dsn,
                    log_level=settings.kane_log_level,
                    on_ended=lambda *ended: sessions.process_session_ended(*ended),
                    env={**os.environ, "KANE_PIPELINE": str(settings.kane_pipeline)},
                )
                try:
                    await processes.start()
                except BaseException as e:
                    logger.error(f"Worker not started: {e}")
                    await archive.close()
                    await database.close()
                    raise
            sessions = SessionManager(
                settings=settings,
                rooms=rooms,
                archive=archive,
                http=http,
                pipeline=pipeline,
                processes=processes,
            )
            app.state.worker = Worker(
                settings=settings,
                version=read_version(),
                database=database,
                rooms=rooms,
                sessions=sessions,
                authenticator=Authenticator(settings),
            )
            checkins = _checkin_scheduler(settings, database, http)
            if checkins:
                checkins.start()
            if settings.playground_enabled:
                host = (
                    "127.0.0.1" if settings.kane_host in ("0.0.0.0", "::") else settings.kane_host
                )
                logger.info(f"Talk to KANE: open http://{host}:{settings.port}/playground")
            try:
                yield
            finally:
                logger.info("Worker stopping: no new sessions; ending the running ones")
                # Each step runs even if one before it fails: the journal must be written out.
                steps = [
                    checkins.stop() if checkins else None,
                    sessions.shutdown(),
                    rooms.close() if rooms else None,
                    archive.close(),
                    database.close(),
                    release_shared(),
                ]
                for step in steps:
                    if step is None:
                        continue
                    try:
                        await step
                    except Exception as e:
                        logger.error(f"Worker stopping: {type(e).__name__}: {e}")
                if restore_ice is not None:
                    restore_ice()

    app = FastAPI(title="KANE worker", lifespan=lifespan)
    if settings.playground_enabled:
        app.include_router(playground_router())

    def worker(request: Request) -> Worker:
        return request.app.state.worker

    def caller(request: Request, authorization: Annotated[str | None, Header()] = None) -> Caller:
        try:
            return worker(request).authenticator.authenticate(authorization)
        except AuthError as e:
            client = request.client.host if request.client else "?"
            logger.info(f"/connect refused for {client}: {e}")
            raise HTTPException(
                status_code=401, detail=str(e), headers={"WWW-Authenticate": "Bearer"}
            ) from e

    @app.get("/health")
    async def health(request: Request) -> JSONResponse:
        w = worker(request)
        database_ok = await w.database.ping()
        livekit_ok = await w.rooms.reachable() if w.rooms else False
        missing = w.settings.missing_keys()
        sessions = w.sessions
        # Without keys the stages run offline, which is fine; without a way in, nobody talks.
        reachable = livekit_ok or w.settings.playground_enabled
        body = {
            "status": "ok" if database_ok and reachable else "degraded",
            "version": w.version,
            "database": {"ok": database_ok, "engine": w.database.describe()},
            "livekit": {"ok": livekit_ok, "url": w.settings.livekit_url},
            "engines": w.settings.describe_engines(),
            "missing": missing,
            "playground": w.settings.playground_enabled,
            "sessions": {
                "active": sessions.active,
                "max": w.settings.kane_max_sessions,
                "draining": sessions.draining,
                "processes": [dataclasses.asdict(p) for p in sessions.process_states()],
                "recent_endings": [
                    {"session_id": e.session_id, "reason": e.reason, "ended_at": e.ended_at}
                    for e in sessions.recent_endings
                ],
            },
        }
        return JSONResponse(body, status_code=200 if database_ok else 503)

    @app.get("/users/{user_id}/draft")
    async def user_draft(
        request: Request,
        who: Annotated[Caller, Depends(caller)],
        user_id: Annotated[str, PathParam(min_length=1, max_length=128, pattern=USER_ID_PATTERN)],
    ) -> JSONResponse:
        # A person sees only their own plan; a trusted backend (shared token) anyone's.
        if who.user_id is not None and who.user_id != user_id:
            raise HTTPException(status_code=403, detail="a user sees only their own draft")
        database = worker(request).database
        today = database.patterns.local_day(datetime.datetime.now(datetime.UTC))
        plan = await draft_plan(database, user_id, today=today)
        return JSONResponse(plan.to_dict())

    @app.post("/connect")
    async def connect(
        request: Request,
        who: Annotated[Caller, Depends(caller)],
        body: ConnectRequest | None = None,
    ) -> ConnectResponse:
        w = worker(request)
        user_id = _user_for(who, body)
        if w.rooms is None:
            raise HTTPException(
                status_code=503,
                detail="no LiveKit server: set LIVEKIT_URL, LIVEKIT_API_KEY, LIVEKIT_API_SECRET",
            )
        try:
            grant = await w.sessions.start(user_id)
        except AtCapacityError as e:
            raise HTTPException(
                status_code=503, detail=str(e), headers={"Retry-After": str(RETRY_AFTER_S)}
            ) from e
        except Exception as e:
            logger.error(f"/connect: could not start a session: {type(e).__name__}: {e}")
            raise HTTPException(status_code=502, detail="could not start a session") from e
        return ConnectResponse(
            url=w.settings.livekit_public_url or w.settings.livekit_url or "",
            token=grant.token,
            room=grant.room,
            session_id=grant.session_id,
        )

    return app


def _checkin_scheduler(
    settings: Settings, database: Database, http: aiohttp.ClientSession
) -> CheckinScheduler | None:
    """The daily check-ins, when a webhook is configured."""
    if not settings.kane_checkin_webhook_url or not settings.kane_checkin_webhook_secret:
        return None

    async def todays_draft(user_id: str) -> dict:
        today = database.patterns.local_day(datetime.datetime.now(datetime.UTC))
        return (await draft_plan(database, user_id, today=today)).to_dict()

    return CheckinScheduler(
        database.pool,
        WebhookNotifier(
            settings.kane_checkin_webhook_url,
            settings.kane_checkin_webhook_secret.get_secret_value(),
            http=http,
            timeout_s=settings.kane_checkin_timeout_s,
        ),
        draft=todays_draft,
        worker_id=default_worker_id(),
        poll_s=settings.kane_checkin_poll_s,
        tz=settings.kane_checkin_tz,
    )


def _user_for(who: Caller, body: ConnectRequest | None) -> str:
    """The session's user: the JWT's, or the one the trusted caller names."""
    named = body.user_id if body else None
    if who.user_id is not None:
        if named is not None and named != who.user_id:
            raise HTTPException(status_code=403, detail="user_id differs from the token's user")
        return who.user_id
    if named is not None:
        if named in RESERVED_IDS:
            raise HTTPException(
                status_code=422,
                detail=[{"loc": ["body", "user_id"], "msg": f"'{named}' is reserved"}],
            )
        return named
    if who.method == "open":
        return "dev-user"
    raise HTTPException(
        status_code=422,
        detail=[{"loc": ["body", "user_id"], "msg": "required with the shared API token"}],
    )
