"""The local playground: talk to KANE from a browser over WebRTC, no LiveKit and no app needed.

`GET /playground` serves a page (from `api/static/`) that sends the microphone to a session
and shows what the phone would see: transcripts, KANE's replies and state, quest drafts and
quests, emotion, errors. The page posts its WebRTC offer to `POST /playground/offer`; the
worker answers it with Pipecat's aiortc connection and runs a session on it like any other.

It is for local use: the routes answer only clients on loopback (the worker listens on
127.0.0.1 by default; from another machine, use an SSH tunnel), and whoever reaches them may
name any user. The page sends its offer once its ICE candidates are gathered and aiortc's
answer carries all of its own, so there is no trickle ICE (no PATCH).
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import FileResponse, RedirectResponse
from loguru import logger
from pipecat.transports.smallwebrtc.connection import SmallWebRTCConnection
from pydantic import BaseModel, ConfigDict, Field, field_validator

from api.auth import RESERVED_IDS, USER_ID_PATTERN
from api.sessions import RETRY_AFTER_S, AtCapacityError
from transport.loopback_ice import keep_loopback_candidates
from transport.webrtc import KaneWebRTCTransport

if TYPE_CHECKING:
    from api.server import Worker

STATIC = Path(__file__).resolve().parent / "static"
ASSETS = {"playground.js": "text/javascript", "playground.css": "text/css"}
MAX_SDP_CHARS = 64 * 1024
# The page's own files only; media comes over WebRTC, not from a URL.
PAGE_HEADERS = {
    "Cache-Control": "no-cache",
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:",
}


class OfferRequest(BaseModel):
    """Body of POST /playground/offer: the browser's SDP offer and who is talking."""

    model_config = ConfigDict(extra="forbid")

    sdp: str = Field(min_length=1, max_length=MAX_SDP_CHARS)
    type: Literal["offer"]
    user_id: str = Field(
        default="playground", min_length=1, max_length=128, pattern=USER_ID_PATTERN
    )

    @field_validator("sdp")
    @classmethod
    def _looks_like_an_audio_offer(cls, sdp: str) -> str:
        if not sdp.startswith("v=0"):
            raise ValueError("an SDP description starts with 'v=0'")
        if "\nm=audio " not in sdp:
            raise ValueError("the offer has no audio section (m=audio): send the microphone")
        return sdp

    @field_validator("user_id")
    @classmethod
    def _not_reserved(cls, user_id: str) -> str:
        if user_id in RESERVED_IDS:
            raise ValueError(f"'{user_id}' is reserved")
        return user_id


class OfferAnswer(BaseModel):
    """The worker's SDP answer, and the session it started."""

    sdp: str
    type: Literal["answer"]
    pc_id: str
    session_id: str


LOCAL_NAMES = frozenset({"127.0.0.1", "localhost", "[::1]"})
"""Host names a local page is served under; any other (a rebound DNS name) is refused."""


async def _loopback_only(request: Request) -> None:
    client = request.client.host if request.client else ""
    try:
        local = ipaddress.ip_address(client).is_loopback
    except ValueError:
        local = False
    if not local:
        logger.warning(f"Playground: refused a request from {client or 'an unknown client'}")
        raise HTTPException(status_code=403, detail="the playground answers only local clients")
    # A page elsewhere can point its own name at 127.0.0.1 (DNS rebinding) or post from the
    # person's browser (cross-site): both would reach the person's quests. Only this origin.
    host = request.headers.get("host", "")
    if _host_name(host) not in LOCAL_NAMES:
        logger.warning(f"Playground: refused a request for host {host[:80]!r}")
        raise HTTPException(status_code=403, detail="the playground answers only 127.0.0.1")
    origin = request.headers.get("origin")
    if origin is not None and origin != f"{request.url.scheme}://{host}":
        logger.warning(f"Playground: refused a request from origin {origin[:80]!r}")
        raise HTTPException(status_code=403, detail="the playground answers only its own page")


def _host_name(host: str) -> str:
    """The name of a Host header, without its port (``[::1]:7860`` → ``[::1]``)."""
    if host.startswith("["):
        return host[: host.find("]") + 1]
    return host.split(":", 1)[0]


def playground_router() -> APIRouter:
    """The playground's routes: the page, its files, and the WebRTC offer.

    Mount it on the worker's app (its state holds the `Worker`) when the playground is on.
    """
    router = APIRouter(dependencies=[Depends(_loopback_only)], include_in_schema=False)

    @router.get("/")
    async def root() -> RedirectResponse:
        return RedirectResponse("/playground")

    @router.get("/playground")
    async def page() -> FileResponse:
        return FileResponse(STATIC / "playground.html", headers=PAGE_HEADERS)

    @router.get("/playground/static/{name}")
    async def asset(name: str) -> FileResponse:
        media_type = ASSETS.get(name)
        if media_type is None:
            raise HTTPException(status_code=404)
        return FileResponse(STATIC / name, media_type=media_type, headers=PAGE_HEADERS)

    @router.post("/playground/offer")
    async def offer(request: Request, body: OfferRequest) -> OfferAnswer:
        worker: Worker = request.app.state.worker
        try:  # before the costly part: certificates, ICE gathering, sockets
            worker.sessions.ensure_capacity()
        except AtCapacityError as e:
            raise HTTPException(
                status_code=503, detail=str(e), headers={"Retry-After": str(RETRY_AFTER_S)}
            ) from e
        sdp = body.sdp
        if worker.settings.kane_playground_ice == "loopback":
            sdp = keep_loopback_candidates(sdp)
        # No ICE servers: on one machine host candidates are all it takes.
        connection = SmallWebRTCConnection()
        try:
            await connection.initialize(sdp=sdp, type=body.type)
        except Exception as e:
            await connection.disconnect()
            logger.info(f"Playground: offer refused: {type(e).__name__}: {e}")
            raise HTTPException(
                status_code=422,
                detail=[{"loc": ["body", "sdp"], "msg": f"not a usable SDP offer: {e}"[:200]}],
            ) from e
        transport = KaneWebRTCTransport.for_peer(connection, identity=body.user_id)
        try:
            session_id = worker.sessions.start_with(
                body.user_id, transport, room_prefix="playground"
            )
        except AtCapacityError as e:
            await connection.disconnect()
            raise HTTPException(
                status_code=503, detail=str(e), headers={"Retry-After": str(RETRY_AFTER_S)}
            ) from e
        answer = connection.get_answer()
        assert answer is not None  # initialize() set it
        return OfferAnswer(
            sdp=answer["sdp"], type="answer", pc_id=answer["pc_id"], session_id=session_id
        )

    return router
