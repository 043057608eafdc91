import time
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import soundfile as sf
from pipecat.frames.frames import InputAudioRawFrame, TextFrame, TTSAudioRawFrame
from pipecat.pipeline.pipeline import Pipeline
from pipecat.tests.utils import SleepFrame, run_test

from processors.recorder import AudioRecorder
from processors.user_audio import UserAudioStop
from speech.espeak import synthesize_at
from storage.audio_store import LocalAudioStore, RecordingWriter

RATE = 16000
FRAME = RATE * 2 // 50  # 20 ms


class CountingStore(LocalAudioStore):
    """A local store that counts the writes its recordings get."""

    writes = 0

    def open(self, session_id: str, track: str, sample_rate: int) -> RecordingWriter:
        writer = super().open(session_id, track, sample_rate)
        store = self

        class Counted:
            def write(self, pcm: bytes) -> None:
                store.writes += 1
                writer.write(pcm)

            def close(self) -> str:
                return writer.close()

        return Counted()


def frames_of(pcm: bytes) -> list:
    """The person's audio in 20 ms frames, sent a frame every 10 ms."""
    frames: list = []
    for i in range(0, len(pcm), FRAME):
        frames += [
            InputAudioRawFrame(audio=pcm[i : i + FRAME], sample_rate=RATE, num_channels=1),
            SleepFrame(0.01),
        ]
    return frames


def track(url: str) -> np.ndarray:
    audio, rate = sf.read(Path(urlparse(url).path), dtype="int16")
    assert rate == RATE
    return audio


async def test_both_voices_are_kept_whole_aligned_and_written_in_batches(tmp_path):
    person = synthesize_at("My main quest today is to ship the onboarding flow.", RATE)
    person_pcm = person.tobytes() + bytes(-len(person.tobytes()) % FRAME)
    bot = synthesize_at("Got it.", RATE).tobytes()
    store = CountingStore(tmp_path)
    recorder = AudioRecorder(session_id="s1", store=store, write_every_s=0.2)
    half = len(person_pcm) // 2 // FRAME * FRAME
    started = time.monotonic()
    await run_test(
        recorder,
        frames_to_send=[
            *frames_of(person_pcm[:half]),
            TTSAudioRawFrame(audio=bot, sample_rate=RATE, num_channels=1),
            SleepFrame(0.3),
            *frames_of(person_pcm[half:]),
        ],
    )
    elapsed = time.monotonic() - started
    recordings = await recorder.close()

    user, kane = track(recordings.user_url), track(recordings.bot_url)
    assert user.tobytes() == person_pcm  # every frame of the person's, in order
    assert len(kane) == len(user)
    # The bot's words start where the person's track stood when they came.
    start = half // 2
    assert kane[:start].tobytes() == bytes(2 * start)
    assert kane[start : start + len(bot) // 2].tobytes() == bot
    # Frames come every 10 ms; writes come in batches, two tracks every 0.2 s at most.
    frames = len(person_pcm) // FRAME
    assert store.writes <= 2 * (elapsed / 0.2 + 2) < frames / 2


async def test_the_persons_audio_stops_below_the_aggregator_and_is_still_recorded(tmp_path):
    person_pcm = bytes(range(256)) * (FRAME * 10 // 256)  # 10 frames, not silence
    bot = bytes([7]) * FRAME
    recorder = AudioRecorder(session_id="s2", store=LocalAudioStore(tmp_path), write_every_s=0.1)
    down, _ = await run_test(
        Pipeline([UserAudioStop(recorder=recorder), recorder]),
        frames_to_send=[
            *frames_of(person_pcm),
            TextFrame("Got it."),
            TTSAudioRawFrame(audio=bot, sample_rate=RATE, num_channels=1),
        ],
    )
    recordings = await recorder.close()
    # Nothing below the stop sees the microphone; everything else goes on, in order.
    assert [type(f) for f in down] == [TextFrame, TTSAudioRawFrame]
    assert track(recordings.user_url).tobytes() == person_pcm
    kane = track(recordings.bot_url)
    assert len(kane) * 2 == len(person_pcm)
    assert kane[-FRAME // 2 :].tobytes() == bytes(FRAME)  # the bot spoke after the person


async def test_without_a_recorder_the_persons_audio_just_stops():
    down, _ = await run_test(
        UserAudioStop(recorder=None),
        frames_to_send=[*frames_of(bytes(FRAME * 3)), TextFrame("still here")],
    )
    assert [type(f) for f in down] == [TextFrame]
