"""Builds the speech, language and voice services a session uses, from the settings."""

from __future__ import annotations

from typing import Any

import aiohttp
from pipecat.services.deepgram.stt import DeepgramSTTService
from pipecat.services.deepgram.tts import DeepgramHttpTTSService
from pipecat.services.llm_service import LLMService
from pipecat.services.openai.tts import OpenAITTSService
from pipecat.services.stt_service import STTService
from pipecat.services.tts_service import TTSService
from pipecat.utils.text.transforms import strip_markdown

from emotion.analyzer import EmotionAnalyzer
from emotion.hume import HumeEmotionAnalyzer
from emotion.local import LocalEmotionAnalyzer
from services.deepgram_stt import KaneDeepgramSTTService
from services.espeak_tts import ESpeakTTSService, drop_unspeakable
from services.failover_tts import FailoverTTSParams, FailoverTTSService
from services.hume_tts import HumeOctaveTTSService
from services.openai_llm import SharedClientOpenAILLMService
from services.rules_coach import RulesCoachLLMService
from services.shared_clients import openai_http_client
from services.whisper_stt import WhisperStreamingSTTService
from settings import Settings


class MissingKeyError(RuntimeError):
    """A stage has no engine it can use because a key is missing."""


def _secret(settings: Settings, engine: str) -> str:
    value = {
        "deepgram": settings.deepgram_api_key,
        "openai": settings.openai_api_key,
        "hume": settings.hume_api_key,
    }[engine]
    if value is None or not value.get_secret_value():
        raise MissingKeyError(f"{engine} has no API key")
    return value.get_secret_value()


def build_stt(settings: Settings) -> STTService:
    """Deepgram streaming speech to text with interim results; offline, faster-whisper."""
    if settings.stt_engine == "whisper":
        return WhisperStreamingSTTService(model=settings.kane_whisper_model or None)
    # Pipecat's Deepgram STT, sending the audio in 40 ms chunks on a socket without deflate.
    return KaneDeepgramSTTService(
        api_key=_secret(settings, "deepgram"),
        base_url=settings.deepgram_base_url,
        settings=DeepgramSTTService.Settings(
            model=settings.deepgram_model, interim_results=True, punctuate=True
        ),
    )


def build_llm(settings: Settings, *, system_instruction: str) -> LLMService[Any]:
    """OpenAI chat completions (or any server speaking their API at OPENAI_BASE_URL).

    Without an OpenAI key, KANE's offline rules coach, which calls the same quest tools. The
    OpenAI service sends through the worker's shared HTTP client (`services.shared_clients`).

    Args:
        settings: The worker's settings.
        system_instruction: KANE's system prompt.
    """
    if settings.llm_engine == "rules":
        return RulesCoachLLMService(
            settings=RulesCoachLLMService.Settings(system_instruction=system_instruction)
        )
    return SharedClientOpenAILLMService(
        api_key=_secret(settings, "openai"),
        base_url=settings.openai_base_url,
        http_client=openai_http_client(),
        settings=SharedClientOpenAILLMService.Settings(
            model=settings.openai_model, system_instruction=system_instruction
        ),
    )


def _build_one_tts(engine: str, settings: Settings, session: aiohttp.ClientSession) -> TTSService:
    if engine == "openai":
        return OpenAITTSService(
            api_key=_secret(settings, "openai"),
            base_url=settings.openai_base_url,
            http_client=openai_http_client(),
            settings=OpenAITTSService.Settings(
                model=settings.openai_tts_model, voice=settings.openai_tts_voice
            ),
        )
    if engine == "deepgram":
        return DeepgramHttpTTSService(
            api_key=_secret(settings, "deepgram"),
            aiohttp_session=session,
            base_url=_http_url(settings.deepgram_base_url) or "https://api.deepgram.com",
            settings=DeepgramHttpTTSService.Settings(voice=settings.deepgram_tts_voice),
        )
    if engine == "hume":
        return HumeOctaveTTSService(
            api_key=_secret(settings, "hume"),
            base_url=settings.hume_base_url,
            settings=HumeOctaveTTSService.Settings(voice=settings.hume_voice_id),
        )
    if engine == "espeak":
        return ESpeakTTSService()
    raise ValueError(f"unknown TTS engine {engine!r}")


def _http_url(base_url: str) -> str:
    """Deepgram's base URL as configured for STT (ws/wss or bare host), as http(s)."""
    if not base_url:
        return ""
    for ws, http in (("wss://", "https://"), ("ws://", "http://")):
        if base_url.startswith(ws):
            return http + base_url[len(ws) :]
    if base_url.startswith(("http://", "https://")):
        return base_url
    return f"https://{base_url}"


def build_tts(settings: Settings, session: aiohttp.ClientSession) -> FailoverTTSService:
    """The configured voices, in failover order; engines without a key are left out.

    Args:
        settings: The worker's settings (KANE_TTS gives the order).
        session: A shared HTTP session for the services that want one.
    """
    engines = settings.usable_tts()
    return FailoverTTSService(
        services=[(engine, _build_one_tts(engine, settings, session)) for engine in engines],
        params=FailoverTTSParams(first_audio_timeout_s=settings.kane_tts_timeout_s),
        # The failover runs its voices' run_tts directly, past their own transforms: what is
        # spoken loses markdown here, and text with nothing to say (...) is not sent at all.
        text_transforms=[("*", strip_markdown), ("*", drop_unspeakable)],
    )


def build_emotion_analyzers(settings: Settings) -> list[EmotionAnalyzer]:
    """Hume's realtime expression measurement when HUME_API_KEY is set, then the local one.

    The local analyzer is always last: the stage falls back to it when Hume fails.
    """
    analyzers: list[EmotionAnalyzer] = []
    if settings.has_key("hume"):
        analyzers.append(
            HumeEmotionAnalyzer(_secret(settings, "hume"), base_url=settings.hume_expression_url)
        )
    analyzers.append(LocalEmotionAnalyzer())
    return analyzers
