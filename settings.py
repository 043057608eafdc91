"""KANE's configuration: one pydantic-settings class read from the environment and `.env`.

Every variable is listed, with a comment, in `.env.example`. Nothing here is read at import
time: `Settings()` is built once, at start, by the worker.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Literal

import platformdirs
from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

TTSEngine = Literal["openai", "hume", "deepgram", "espeak"]
STTChoice = Literal["auto", "deepgram", "whisper"]
LLMChoice = Literal["auto", "openai", "rules"]

# Which key each cloud engine needs; the log names the missing ones in one message.
ENGINE_KEYS: dict[str, str] = {
    "deepgram": "DEEPGRAM_API_KEY",
    "openai": "OPENAI_API_KEY",
    "hume": "HUME_API_KEY",
}


def _default_tts() -> list[TTSEngine]:
    # Hume ended its TTS API on 2026-11-13: it stays selectable, but is not a default.
    # eSpeak NG needs no key and no network: the last voice standing, and the offline one.
    return ["openai", "deepgram", "espeak"]


class Settings(BaseSettings):
    """Everything the worker can be told from outside.

    Attributes are read from environment variables of the same name (upper case) and from an
    optional `.env` file in the working directory. Secrets are `SecretStr`, so they never
    appear in a repr or a log line.
    """

    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", case_sensitive=False
    )

    # The worker
    kane_env: Literal["development", "production"] = "production"
    kane_host: str = "127.0.0.1"
    port: int = Field(default=7860, ge=1, le=65535)
    kane_max_sessions: int = Field(default=24, ge=1)
    # LiveKit sessions' bots run in this many processes of their own, one event loop (one
    # core) each; 0 runs them in the API's process; auto: one per core, if there are two or more.
    kane_session_processes: Annotated[int, Field(ge=0, le=64)] | Literal["auto"] = "auto"
    kane_log_level: str = "INFO"
    kane_data_dir: Path = Field(default_factory=lambda: Path(platformdirs.user_data_dir("kane")))
    # Which of KANE's stages run between STT and the LLM (a pipeline file, see pipelines/)
    kane_pipeline: Path = Path(__file__).resolve().parent / "pipelines" / "default.toml"

    # Who may ask for a session
    kane_api_token: SecretStr | None = None
    kane_jwt_secret: SecretStr | None = None
    kane_jwt_audience: str | None = None

    # LiveKit
    livekit_url: str | None = None
    livekit_public_url: str | None = None
    livekit_api_key: str | None = None
    livekit_api_secret: SecretStr | None = None
    kane_bot_join_timeout_s: float = Field(default=10.0, gt=0)
    kane_user_join_timeout_s: float = Field(default=60.0, gt=0)
    kane_greeting: str = "Good morning! What's your main quest today?"
    # Start the LLM on a final transcript before the turn is confirmed (see services/turns.py)
    kane_preemptive: bool = False
    # The local playground: a page where a browser talks to KANE over WebRTC, no LiveKit needed
    # (on by default in development; never open it to the internet).
    kane_playground: bool | None = None
    # host: the playground's WebRTC offers this machine's interface addresses (what a browser
    # needs); loopback: 127.0.0.1 only (sandboxes, CI; the browser must allow loopback).
    kane_playground_ice: Literal["host", "loopback"] = "host"

    # Speech to text: Deepgram with a key, else faster-whisper on this machine
    kane_stt: STTChoice = "auto"
    kane_whisper_model: str = ""
    deepgram_api_key: SecretStr | None = None
    deepgram_base_url: str = ""
    deepgram_model: str = "nova-3-general"

    # Language model: OpenAI with a key, else KANE's offline rules coach
    kane_llm: LLMChoice = "auto"
    openai_api_key: SecretStr | None = None
    openai_base_url: str | None = None
    openai_model: str = "gpt-4.1-mini"

    # Text to speech: a comma-separated list is a failover order
    kane_tts: Annotated[list[TTSEngine], NoDecode] = Field(default_factory=_default_tts)
    kane_tts_timeout_s: float = Field(default=3.0, gt=0)
    openai_tts_model: str = "gpt-4o-mini-tts"
    openai_tts_voice: str = "sage"
    deepgram_tts_voice: str = "aura-2-thalia-en"
    hume_api_key: SecretStr | None = None
    hume_base_url: str = "https://api.hume.ai"
    hume_voice_id: str | None = None
    # Emotion: Hume's realtime Expression Measurement API when HUME_API_KEY is set
    hume_expression_url: str | None = None

    # Storage
    database_url: SecretStr | None = None

    # Check-ins: a webhook POST with today's draft at the person's usual planning time
    kane_checkin_webhook_url: str | None = None
    kane_checkin_webhook_secret: SecretStr | None = None
    kane_checkin_poll_s: float = Field(default=15.0, gt=0)
    kane_checkin_tz: str = "UTC"
    kane_checkin_timeout_s: float = Field(default=10.0, gt=0)

    @field_validator("kane_tts", mode="before")
    @classmethod
    def _split_tts_list(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip().lower() for part in value.split(",") if part.strip()]
        return value

    @field_validator("kane_tts")
    @classmethod
    def _tts_not_empty(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError(
                "KANE_TTS names no engine; give at least one of openai, hume, deepgram, espeak"
            )
        if len(set(value)) != len(value):
            raise ValueError("KANE_TTS names an engine twice")
        return value

    @model_validator(mode="after")
    def _livekit_complete(self) -> Settings:
        livekit = [self.livekit_url, self.livekit_api_key, self.livekit_api_secret]
        if any(livekit) and not all(livekit):
            raise ValueError(
                "LiveKit needs all of LIVEKIT_URL, LIVEKIT_API_KEY and LIVEKIT_API_SECRET"
            )
        return self

    @model_validator(mode="after")
    def _chosen_engines_have_keys(self) -> Settings:
        if self.kane_stt == "deepgram" and not self.has_key("deepgram"):
            raise ValueError("KANE_STT=deepgram needs DEEPGRAM_API_KEY")
        if self.kane_llm == "openai" and not self.has_key("openai"):
            raise ValueError("KANE_LLM=openai needs OPENAI_API_KEY")
        return self

    @model_validator(mode="after")
    def _checkin_secret_with_url(self) -> Settings:
        if self.kane_checkin_webhook_url and not self.kane_checkin_webhook_secret:
            raise ValueError("KANE_CHECKIN_WEBHOOK_URL needs KANE_CHECKIN_WEBHOOK_SECRET to sign")
        return self

    @property
    def is_development(self) -> bool:
        """Whether the worker runs for a developer (open /connect allowed)."""
        return self.kane_env == "development"

    @property
    def session_processes(self) -> int:
        """How many session processes run LiveKit sessions (0: the API's process runs them)."""
        if self.kane_session_processes != "auto":
            return self.kane_session_processes
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
        return cores if cores and cores >= 2 else 0

    @property
    def livekit_configured(self) -> bool:
        """Whether the worker can put bots into LiveKit rooms."""
        return bool(self.livekit_url and self.livekit_api_key and self.livekit_api_secret)

    def has_key(self, engine: str) -> bool:
        """Whether the key a cloud engine needs is set.

        Args:
            engine: One of the names of `ENGINE_KEYS`.
        """
        secret = getattr(self, ENGINE_KEYS[engine].lower())
        return secret is not None and bool(secret.get_secret_value())

    @property
    def playground_enabled(self) -> bool:
        """Whether the worker serves the local browser playground."""
        return self.is_development if self.kane_playground is None else self.kane_playground

    @property
    def stt_engine(self) -> Literal["deepgram", "whisper"]:
        """The speech-to-text engine sessions use."""
        if self.kane_stt == "auto":
            return "deepgram" if self.has_key("deepgram") else "whisper"
        return self.kane_stt

    @property
    def llm_engine(self) -> Literal["openai", "rules"]:
        """The language model sessions use."""
        if self.kane_llm == "auto":
            return "openai" if self.has_key("openai") else "rules"
        return self.kane_llm

    def usable_tts(self) -> list[str]:
        """The configured voices that can speak here, in failover order.

        Cloud voices need their keys (Hume also a voice id); eSpeak NG always can. When none
        of KANE_TTS can, eSpeak NG speaks alone.
        """
        usable: list[str] = [engine for engine in self.kane_tts if self._voice_usable(engine)]
        return usable or ["espeak"]

    def _voice_usable(self, engine: str) -> bool:
        if engine == "espeak":
            return True
        return self.has_key(engine) and (engine != "hume" or bool(self.hume_voice_id))

    def missing_keys(self) -> list[str]:
        """Keys not set, each with the stage that runs offline (or not at all) without it."""
        missing = []
        if not self.has_key("deepgram"):
            missing.append("DEEPGRAM_API_KEY (speech to text runs on faster-whisper)")
        if not self.has_key("openai"):
            missing.append("OPENAI_API_KEY (the language model is the offline rules coach)")
        cloud_voices = [engine for engine in self.kane_tts if engine != "espeak"]
        if cloud_voices and not any(self._voice_usable(engine) for engine in cloud_voices):
            needs = " or ".join(
                ENGINE_KEYS[engine] + (" with HUME_VOICE_ID" if engine == "hume" else "")
                for engine in cloud_voices
            )
            missing.append(f"{needs} (text to speech is eSpeak NG)")
        if not self.livekit_configured:
            missing.append(
                "LIVEKIT_URL, LIVEKIT_API_KEY, LIVEKIT_API_SECRET (no LiveKit rooms: /connect is "
                "off" + ("; the playground works" if self.playground_enabled else "") + ")"
            )
        return missing

    def describe_engines(self) -> dict[str, str]:
        """Which engine each stage uses, for the start-up log and the session record."""
        if self.stt_engine == "deepgram":
            stt = f"Deepgram {self.deepgram_model}" + (
                f" at {self.deepgram_base_url}" if self.deepgram_base_url else ""
            )
        else:
            stt = f"faster-whisper {self.kane_whisper_model or 'tiny.en (bundled)'} (offline)"
        if self.llm_engine == "openai":
            llm = f"OpenAI {self.openai_model}" + (
                f" at {self.openai_base_url}" if self.openai_base_url else ""
            )
        else:
            llm = "KANE's offline rules coach (not a language model)"
        voices = {"espeak": "espeak (eSpeak NG, offline)"}
        transports = [f"LiveKit at {self.livekit_url}"] if self.livekit_url else []
        if self.playground_enabled:
            transports.append("WebRTC playground (local)")
        return {
            "transport": " + ".join(transports) or "none",
            "vad": "Silero",
            "stt": stt,
            "llm": llm,
            "tts": " -> ".join(voices.get(engine, engine) for engine in self.usable_tts()),
            "emotion": "Hume Expression Measurement -> local (prosody + VADER)"
            if self.has_key("hume")
            else "local (prosody + VADER)",
            "database": "DATABASE_URL" if self.database_url else "embedded PostgreSQL",
        }
