"""One session from start to its recorded end, wherever it runs (the API's process or another)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

import aiohttp
from loguru import logger

from bot import BotSession, SessionPlace, create_session, run_session
from processors.stages import PipelineSpec
from session.archive import Archive
from settings import Settings
from transport.base import KaneTransport


@dataclass(frozen=True)
class SessionNeeds:
    """What every session of a process runs with.

    Parameters:
        settings: The worker's settings.
        http: A shared HTTP session for the bots' services.
        archive: The stores that keep each session.
        pipeline: KANE's stages for every session.
    """

    settings: Settings
    http: aiohttp.ClientSession
    archive: Archive
    pipeline: PipelineSpec


async def run_to_end(
    place: SessionPlace,
    transport: KaneTransport,
    needs: SessionNeeds,
    *,
    on_bot: Callable[[BotSession], None] | None = None,
) -> str:
    """Run a session until it ends, record its end, close its transport; never raises.

    Args:
        place: The session's id, person and room.
        transport: Carries the session's audio and data.
        needs: What the session runs with.
        on_bot: Told the session once it is made (to end it from outside later).

    Returns:
        Why the session ended.
    """
    reason = "the session ended"
    try:
        bot = create_session(
            place, transport, needs.settings, needs.http, needs.archive, needs.pipeline
        )
        if on_bot is not None:
            on_bot(bot)
        reason = await run_session(bot)
    except asyncio.CancelledError:
        reason = "the worker stopped the session"
    except Exception as e:
        reason = f"the bot failed: {type(e).__name__}: {e}"
        logger.exception(f"Session {place.session_id}: {reason}")
    try:
        # Normally the session's archive has recorded its end; this covers a bot that never
        # got that far.
        await needs.archive.sessions.end_session(place.session_id, reason)
    except Exception as e:
        logger.error(f"Session {place.session_id}: its end not recorded: {e}")
    try:
        await transport.close()
    except Exception as e:
        logger.warning(f"Session {place.session_id}: transport not closed: {e}")
    return reason
