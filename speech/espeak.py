"""Text to speech with eSpeak NG, through the ``espeakng-loader`` wheel alone.

The wheel bundles ``libespeak-ng`` and its ``espeak-ng-data`` folder; this module drives the
library with ctypes, so no system espeak package is needed. eSpeak NG is a global C library
with one voice and one set of parameters at a time, so every call goes through one lock:
concurrent callers are serialized. Calls block (synthesis runs at roughly 50-100x real time);
from asyncio, run them with ``asyncio.to_thread``.

Nothing is loaded at import time; the library initializes on the first call.

Example:
    audio, rate = synthesize("My main quest today is to ship the onboarding flow.")
    write_wav("quest.wav", "Hello there.", sample_rate=16000)
"""

from __future__ import annotations

import ctypes
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr
from loguru import logger

# Constants from espeak-ng's speak_lib.h.
_AUDIO_OUTPUT_SYNCHRONOUS = 0x02
_POS_CHARACTER = 1
_ESPEAK_CHARS_UTF8 = 1
_EE_OK = 0
_PARAM_RATE = 1
_PARAM_PITCH = 3

MIN_RATE_WPM = 80
"""Slowest speaking rate eSpeak NG accepts, in words per minute."""
MAX_RATE_WPM = 450
"""Fastest speaking rate eSpeak NG accepts, in words per minute."""

# int callback(short *wav, int numsamples, espeak_EVENT *events)
_SynthCallback = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p
)


class _VoiceSpec(ctypes.Structure):
    """``espeak_VOICE`` from speak_lib.h, used to pick a voice by language."""

    _fields_ = [
        ("name", ctypes.c_char_p),
        # Read from the library: pairs of (priority byte, NUL-terminated language), then a 0.
        ("languages", ctypes.c_void_p),
        ("identifier", ctypes.c_char_p),
        ("gender", ctypes.c_ubyte),
        ("age", ctypes.c_ubyte),
        ("variant", ctypes.c_ubyte),
        ("xx1", ctypes.c_ubyte),
        ("score", ctypes.c_int),
        ("spare", ctypes.c_void_p),
    ]


class ESpeakError(RuntimeError):
    """eSpeak NG could not be loaded or refused a request."""


@dataclass(frozen=True)
class Voice:
    """An eSpeak NG voice.

    Parameters:
        name: Display name, e.g. ``"English (America)"``.
        identifier: Voice file, e.g. ``"gmw/en-US"``; usable as ``voice=``.
        languages: Language tags it speaks, e.g. ``("en-us", "en")``; usable as ``voice=``.
    """

    name: str
    identifier: str
    languages: tuple[str, ...]


class _ESpeak:
    """The process-wide eSpeak NG library: loaded once, used under a lock."""

    def __init__(self) -> None:
        import espeakng_loader  # heavy-ish and optional at import: load on first use

        self._lock = threading.Lock()
        self._chunks: list[np.ndarray] = []
        self._lib = ctypes.CDLL(espeakng_loader.get_library_path())
        self._declare()
        data_path = espeakng_loader.get_data_path().encode()
        rate = self._lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, data_path, 0)
        if rate <= 0:
            raise ESpeakError(f"espeak_Initialize failed ({rate})")
        self.sample_rate: int = int(rate)
        # Keep a reference: ctypes callbacks are freed with their Python object.
        self._callback = _SynthCallback(self._on_audio)
        self._lib.espeak_SetSynthCallback(self._callback)
        self._voice: str | None = None
        logger.debug(f"{self}: initialized at {self.sample_rate} Hz")

    def __str__(self) -> str:
        return "ESpeak"

    def _declare(self) -> None:
        lib = self._lib
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_Initialize.restype = ctypes.c_int
        lib.espeak_SetSynthCallback.argtypes = [_SynthCallback]
        lib.espeak_SetSynthCallback.restype = None
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetVoiceByName.restype = ctypes.c_int
        lib.espeak_SetVoiceByProperties.argtypes = [ctypes.POINTER(_VoiceSpec)]
        lib.espeak_SetVoiceByProperties.restype = ctypes.c_int
        lib.espeak_ListVoices.argtypes = [ctypes.c_void_p]
        lib.espeak_ListVoices.restype = ctypes.POINTER(ctypes.POINTER(_VoiceSpec))
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_SetParameter.restype = ctypes.c_int
        lib.espeak_Synth.argtypes = [
            ctypes.c_void_p,  # text
            ctypes.c_size_t,  # size
            ctypes.c_uint,  # position
            ctypes.c_int,  # position_type
            ctypes.c_uint,  # end_position
            ctypes.c_uint,  # flags
            ctypes.c_void_p,  # unique_identifier
            ctypes.c_void_p,  # user_data
        ]
        lib.espeak_Synth.restype = ctypes.c_int

    def _on_audio(self, wav: ctypes._Pointer, num_samples: int, _events: int | None) -> int:
        # Called from inside espeak_Synth, on the calling thread, while the lock is held.
        if num_samples > 0 and wav:
            self._chunks.append(np.ctypeslib.as_array(wav, shape=(num_samples,)).copy())
        return 0  # 0 = go on synthesizing

    def list_voices(self) -> list[Voice]:
        with self._lock:
            return self._read_voices()

    def _read_voices(self) -> list[Voice]:
        found: list[Voice] = []
        for entry in self._lib.espeak_ListVoices(None):
            if not entry:  # the array ends with a NULL pointer
                break
            spec = entry.contents
            found.append(
                Voice(
                    name=(spec.name or b"").decode(),
                    identifier=(spec.identifier or b"").decode(),
                    languages=_parse_languages(spec.languages),
                )
            )
        return found

    def _set_voice(self, voice: str) -> None:
        # A voice file name ("en-US", "gmw/en") first, else a language ("en-gb"). eSpeak
        # falls back to some voice for any language, so unknown ones are refused here.
        if self._lib.espeak_SetVoiceByName(voice.encode()) != _EE_OK:
            known = {lang for v in self._read_voices() for lang in v.languages}
            language = ctypes.create_string_buffer(voice.lower().encode())
            spec = _VoiceSpec(languages=ctypes.addressof(language))
            if voice.lower() not in known or (
                self._lib.espeak_SetVoiceByProperties(ctypes.byref(spec)) != _EE_OK
            ):
                raise ESpeakError(f"unknown eSpeak NG voice {voice!r}")
        self._voice = voice

    def synthesize(self, text: str, *, rate_wpm: int, pitch: int, voice: str) -> np.ndarray:
        with self._lock:
            if voice != self._voice:
                self._set_voice(voice)
            self._lib.espeak_SetParameter(_PARAM_RATE, rate_wpm, 0)
            self._lib.espeak_SetParameter(_PARAM_PITCH, pitch, 0)
            encoded = text.encode("utf-8") + b"\0"
            buffer = ctypes.create_string_buffer(encoded, len(encoded))
            self._chunks = []
            try:
                status = self._lib.espeak_Synth(
                    buffer, len(encoded), 0, _POS_CHARACTER, 0, _ESPEAK_CHARS_UTF8, None, None
                )
                if status != _EE_OK:
                    raise ESpeakError(f"espeak_Synth failed ({status})")
                chunks = self._chunks
            finally:
                self._chunks = []
        if not chunks:
            return np.zeros(0, dtype=np.int16)
        return np.concatenate(chunks).astype(np.int16, copy=False)


def _parse_languages(address: int | None) -> tuple[str, ...]:
    languages: list[str] = []
    if not address:
        return ()
    while ctypes.string_at(address, 1) != b"\0":  # a priority byte; 0 ends the list
        language = ctypes.string_at(address + 1)
        languages.append(language.decode().lower())
        address += 1 + len(language) + 1
    return tuple(languages)


_engine: _ESpeak | None = None
_engine_lock = threading.Lock()


def _get_engine() -> _ESpeak:
    global _engine
    with _engine_lock:
        if _engine is None:
            _engine = _ESpeak()
        return _engine


def native_sample_rate() -> int:
    """Return the rate eSpeak NG synthesizes at (22050 Hz for the bundled build)."""
    return _get_engine().sample_rate


def list_voices() -> list[Voice]:
    """Return the voices of the bundled eSpeak NG data."""
    return _get_engine().list_voices()


def synthesize(
    text: str, *, rate_wpm: int = 175, pitch: int = 50, voice: str = "en-us"
) -> tuple[np.ndarray, int]:
    """Speak ``text`` with eSpeak NG.

    Args:
        text: UTF-8 text to speak (plain text, not SSML).
        rate_wpm: Speaking rate in words per minute, clamped to 80-450.
        pitch: Base pitch, 0-100 (50 is eSpeak's default).
        voice: eSpeak NG voice file name (``"en-US"``, ``"gmw/en"``) or language
            (``"en-us"``, ``"en-gb"``); names match case-insensitively.

    Returns:
        The audio as mono int16 samples, and its sample rate (eSpeak's native rate).

    Raises:
        ESpeakError: If the library fails or does not know the voice.
    """
    engine = _get_engine()
    rate_wpm = int(min(max(rate_wpm, MIN_RATE_WPM), MAX_RATE_WPM))
    pitch = int(min(max(pitch, 0), 100))
    audio = engine.synthesize(text, rate_wpm=rate_wpm, pitch=pitch, voice=voice)
    return audio, engine.sample_rate


def resample(audio: np.ndarray, from_rate: int, to_rate: int) -> np.ndarray:
    """Resample mono int16 audio with soxr (high quality).

    Args:
        audio: Mono int16 samples.
        from_rate: Sample rate of ``audio``.
        to_rate: Wanted sample rate.

    Returns:
        Mono int16 samples at ``to_rate``.
    """
    if from_rate == to_rate or audio.size == 0:
        return audio.astype(np.int16, copy=False)
    resampled = soxr.resample(audio.astype(np.float32) / 32768.0, from_rate, to_rate, "HQ")
    return np.clip(np.round(resampled * 32768.0), -32768, 32767).astype(np.int16)


def synthesize_at(
    text: str,
    sample_rate: int,
    *,
    rate_wpm: int = 175,
    pitch: int = 50,
    voice: str = "en-us",
) -> np.ndarray:
    """Speak ``text`` and resample the result to ``sample_rate``.

    Args:
        text: Text to speak.
        sample_rate: Wanted output rate, e.g. 16000, 24000 or 48000.
        rate_wpm: Speaking rate in words per minute.
        pitch: Base pitch, 0-100.
        voice: eSpeak NG voice name.

    Returns:
        Mono int16 samples at ``sample_rate``.
    """
    audio, native = synthesize(text, rate_wpm=rate_wpm, pitch=pitch, voice=voice)
    return resample(audio, native, sample_rate)


def write_wav(
    path: str | Path,
    text: str,
    *,
    sample_rate: int = 16000,
    rate_wpm: int = 175,
    pitch: int = 50,
    voice: str = "en-us",
    leading_silence_s: float = 0.0,
    trailing_silence_s: float = 0.0,
) -> Path:
    """Speak ``text`` into a 16-bit mono WAV file.

    Args:
        path: Where to write the file; parent folders are created.
        text: Text to speak.
        sample_rate: Sample rate of the file.
        rate_wpm: Speaking rate in words per minute.
        pitch: Base pitch, 0-100.
        voice: eSpeak NG voice name.
        leading_silence_s: Seconds of digital silence before the speech.
        trailing_silence_s: Seconds of digital silence after the speech.

    Returns:
        The path written.
    """
    audio = synthesize_at(text, sample_rate, rate_wpm=rate_wpm, pitch=pitch, voice=voice)
    lead = np.zeros(round(leading_silence_s * sample_rate), dtype=np.int16)
    trail = np.zeros(round(trailing_silence_s * sample_rate), dtype=np.int16)
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    sf.write(out, np.concatenate([lead, audio, trail]), sample_rate, subtype="PCM_16")
    return out
