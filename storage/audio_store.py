"""Where a session's recordings go: a local folder today, object storage behind the same face."""

from __future__ import annotations

import wave
from pathlib import Path
from typing import Protocol


class RecordingWriter(Protocol):
    """One recording being written, 16-bit mono PCM at a fixed rate."""

    def write(self, pcm: bytes) -> None:
        """Append audio."""
        ...

    def close(self) -> str:
        """Finish the recording; returns its URL."""
        ...


class AudioStore(Protocol):
    """Keeps recordings of sessions."""

    def open(self, session_id: str, track: str, sample_rate: int) -> RecordingWriter:
        """Start the recording `track` ("user" or "bot") of a session."""
        ...


class _WavWriter:
    def __init__(self, path: Path, sample_rate: int):
        path.parent.mkdir(parents=True, exist_ok=True)
        self._path = path
        self._wav = wave.open(str(path), "wb")  # noqa: SIM115 - closed in close()
        self._wav.setnchannels(1)
        self._wav.setsampwidth(2)
        self._wav.setframerate(sample_rate)
        self._closed = False

    def write(self, pcm: bytes) -> None:
        # writeframesraw leaves the header alone until close, which patches it once.
        self._wav.writeframesraw(pcm)

    def close(self) -> str:
        if not self._closed:
            self._wav.close()
            self._closed = True
        return self._path.resolve().as_uri()


class LocalAudioStore:
    """Recordings as WAV files under a folder: `<root>/<session_id>/<track>.wav`."""

    def __init__(self, root: Path):
        """Keep recordings under `root`."""
        self._root = root

    def open(self, session_id: str, track: str, sample_rate: int) -> RecordingWriter:
        """Start a WAV file for one track of a session."""
        if track not in ("user", "bot"):
            raise ValueError(f"unknown track {track!r}")
        return _WavWriter(self._root / session_id / f"{track}.wav", sample_rate)
