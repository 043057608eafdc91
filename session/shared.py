"""What every session of a process shares: loaded before the first session, released at exit."""

from __future__ import annotations

import asyncio

from services.shared_clients import aclose_shared_clients, preload_shared_clients
from services.shared_models import preload_shared_models
from services.whisper_stt import preload_whisper_model
from settings import Settings


async def load_shared(settings: Settings) -> None:
    """Load the models and clients sessions share, on threads, before any session needs them.

    A session that had to load them would hold the event loop, and with it every other
    session's audio, for 100-500 ms.

    Raises:
        RuntimeError: The offline STT's model cannot be loaded (every session would end).
    """
    if settings.stt_engine == "whisper":
        try:
            await asyncio.to_thread(preload_whisper_model, settings.kane_whisper_model or None)
        except Exception as e:
            model = settings.kane_whisper_model or "tiny.en"
            raise RuntimeError(f"KANE_WHISPER_MODEL {model!r} cannot be loaded: {e}") from e
    await preload_shared_models()
    if settings.llm_engine == "openai" or "openai" in settings.usable_tts():
        await preload_shared_clients()


async def release_shared() -> None:
    """Close what `load_shared` opened; once the process's sessions have ended."""
    await aclose_shared_clients()
