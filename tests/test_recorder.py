import time
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import soundfile as sf
import soxr
from pipecat.frames.frames import ErrorFrame, InputAudioRawFrame, TextFrame, TTSAudioRawFrame
from pipecat.pipeline.pipeline import Pipeline
from pipecat.tests.utils import SleepFrame, run_test

from processors.recorder import AudioRecorder
from processors.user_audio import UserAudioStop
from speech.espeak import synthesize_at
from storage.audio_store import LocalAudioStore, RecordingWriter
from storage.recording_writes import RecordingWrites

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


def track(url: str | None) -> np.ndarray:
    assert url is not None
    audio, rate = sf.read(Path(urlparse(url).path), dtype="int16")
    assert rate == RATE
    return audio


async def test_both_voices_are_kept_whole_aligned_and_written_in_batches(tmp_path):
    person = synthesize_at("My main quest today is to ship the onboarding flow.", RATE)
    person_pcm = person.tobytes() + bytes(-len(person.tobytes()) % FRAME)
    bot = synthesize_at("Got it.", RATE).tobytes()
    store = CountingStore(tmp_path)
    recorder = AudioRecorder(session_id="s1", store=store, writes=RecordingWrites(every_s=0.2))
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


async def test_both_voices_stop_where_they_are_recorded(tmp_path):
    person_pcm = bytes(range(256)) * (FRAME * 10 // 256)  # 10 frames, not silence
    bot = bytes([7]) * FRAME
    recorder = AudioRecorder(
        session_id="s2", store=LocalAudioStore(tmp_path), writes=RecordingWrites(every_s=0.1)
    )
    down, _ = await run_test(
        Pipeline([UserAudioStop(recorder=recorder), recorder]),
        frames_to_send=[
            *frames_of(person_pcm),
            TextFrame("Got it."),
            TTSAudioRawFrame(audio=bot, sample_rate=RATE, num_channels=1),
        ],
    )
    recordings = await recorder.close()
    # Nothing below the stop sees the microphone, nothing below the recorder KANE's voice;
    # everything else goes on.
    assert [type(f) for f in down] == [TextFrame]
    assert track(recordings.user_url).tobytes() == person_pcm
    kane = track(recordings.bot_url)
    assert len(kane) * 2 == len(person_pcm)
    assert kane[-FRAME // 2 :].tobytes() == bytes(FRAME)  # the bot spoke after the person


async def test_kanes_voice_goes_on_when_asked(tmp_path):
    recorder = AudioRecorder(session_id="s3", store=LocalAudioStore(tmp_path), keep_bot_audio=True)
    bot = TTSAudioRawFrame(audio=bytes([7]) * FRAME, sample_rate=RATE, num_channels=1)
    down, _ = await run_test(recorder, frames_to_send=[TextFrame("Got it."), bot])
    await recorder.close()
    assert [type(f) for f in down] == [TextFrame, TTSAudioRawFrame]


async def test_without_a_recorder_the_persons_audio_just_stops():
    down, _ = await run_test(
        UserAudioStop(recorder=None),
        frames_to_send=[*frames_of(bytes(FRAME * 3)), TextFrame("still here")],
    )
    assert [type(f) for f in down] == [TextFrame]


AMPLITUDE = 8000


def sine(freq: float, seconds: float, rate: int) -> np.ndarray:
    t = np.arange(round(seconds * rate)) / rate
    return (AMPLITUDE * np.sin(2 * np.pi * freq * t)).astype(np.int16)


def bot_frames(audio: np.ndarray, rate: int, chunk: int) -> list:
    """The bot's audio in frames of `chunk` samples, all at once (the room buffers them)."""
    return [
        TTSAudioRawFrame(audio=audio[i : i + chunk].tobytes(), sample_rate=rate, num_channels=1)
        for i in range(0, len(audio), chunk)
    ]


def person(frames: int) -> list:
    """The person's audio: `frames` 20 ms frames of a quiet tone, one every 10 ms."""
    return frames_of((sine(3000, frames * 0.02, RATE) // 100).tobytes())


def onset(audio: np.ndarray, after: int = 0) -> int:
    """Where sound above a tenth of the tones' amplitude starts, from `after` on."""
    return after + int(np.argmax(np.abs(audio[after:]) > AMPLITUDE / 10))


def dominant_hz(audio: np.ndarray) -> float:
    size = max(len(audio), RATE)  # padded: 1 Hz steps even for short stretches
    spectrum = np.abs(np.fft.rfft(audio * np.hanning(len(audio)), n=size))
    return float(np.argmax(spectrum)) * RATE / size


def rms(audio: np.ndarray) -> float:
    return float(np.sqrt(np.mean(audio.astype(np.float64) ** 2)))


def assert_tone(audio: np.ndarray, freq: float) -> None:
    assert abs(dominant_hz(audio) - freq) < 5
    assert abs(rms(audio) - AMPLITUDE / np.sqrt(2)) < AMPLITUDE * 0.02


async def record(tmp_path, frames: list) -> tuple[np.ndarray, ...]:
    recorder = AudioRecorder(
        session_id="s", store=LocalAudioStore(tmp_path), writes=RecordingWrites(every_s=0.1)
    )
    _, up = await run_test(recorder, frames_to_send=frames)
    assert not [f for f in up if isinstance(f, ErrorFrame)]
    recordings = await recorder.close()
    user, kane = track(recordings.user_url), track(recordings.bot_url)
    assert recordings.duration_s == len(user) / RATE
    return user, kane


async def test_bot_audio_at_24khz_is_placed_at_each_burst_and_resampled_whole(tmp_path):
    first, second = sine(440, 0.5, 24000), sine(660, 0.4, 24000)
    user, kane = await record(
        tmp_path,
        [
            *person(20),
            *bot_frames(first, 24000, 480),
            *person(80),
            *bot_frames(second, 24000, 240),
            *person(50),
        ],
    )
    assert len(user) == len(kane) == 150 * FRAME // 2
    # Each burst starts where the person's track stood when it came (20 and 100 frames in).
    starts = (20 * FRAME // 2, 100 * FRAME // 2)
    ends = (starts[0] + 8000, starts[1] + 6400)
    assert abs(onset(kane) - starts[0]) <= 16  # 1 ms
    assert abs(onset(kane, ends[0]) - starts[1]) <= 16
    assert not kane[: starts[0]].any()
    assert not kane[ends[0] : starts[1]].any()  # the silence between them
    assert not kane[ends[1] :].any()
    assert_tone(kane[starts[0] : ends[0]], 440)
    assert_tone(kane[starts[1] : ends[1]], 660)
    # The same audio as resampling each burst in one go.
    for burst, start, end in zip((first, second), starts, ends, strict=True):
        whole = soxr.resample(burst, 24000, RATE, "HQ")
        assert np.abs(kane[start:end].astype(int) - whole[: end - start]).max() < AMPLITUDE / 100


async def test_a_change_of_the_bots_rate_starts_a_new_stream_after_the_old_audio(tmp_path):
    at_24k, at_22k, again = sine(440, 0.3, 24000), sine(660, 0.3, 22050), sine(880, 0.3, 24000)
    user, kane = await record(
        tmp_path,
        [
            *person(10),
            # A fallback voice answers at another rate while the first one's audio is queued,
            # in frames whose length on the track is not a whole number of samples.
            *bot_frames(at_24k, 24000, 480),
            *bot_frames(at_22k, 22050, 1000),
            *person(50),
            *bot_frames(again, 24000, 480),
            *person(40),
        ],
    )
    assert len(user) == len(kane) == 100 * FRAME // 2
    start = 10 * FRAME // 2
    middle = start + 4800  # 0.3 s at 24 kHz, then at once the audio at 22.05 kHz
    end = middle + len(at_22k) * RATE // 22050
    later = 60 * FRAME // 2
    assert abs(onset(kane) - start) <= 16
    assert_tone(kane[start:middle], 440)
    assert_tone(kane[middle:end], 660)
    assert not kane[end:later].any()
    assert abs(onset(kane, end) - later) <= 16
    assert_tone(kane[later : later + 4800], 880)


async def test_the_end_drops_what_the_bot_queued_beyond_the_persons_track(tmp_path):
    burst = sine(440, 1.0, 24000)
    user, kane = await record(tmp_path, [*person(30), *bot_frames(burst, 24000, 480), *person(20)])
    # The person left 0.4 s into a 1 s answer: the bot's track ends with them, mid-word.
    assert len(user) == len(kane) == 50 * FRAME // 2
    start = 30 * FRAME // 2
    assert abs(onset(kane) - start) <= 16
    assert_tone(kane[start:], 440)
    assert_tone(kane[-FRAME:], 440)  # sound up to the last 20 ms
    whole = soxr.resample(burst, 24000, RATE, "HQ")
    assert np.abs(kane[start:-16].astype(int) - whole[: len(kane) - start - 16]).max() < 100


async def test_the_persons_audio_at_another_rate_is_resampled_to_the_tracks(tmp_path):
    tone = sine(500, 1.0, 22050)
    frames: list = []
    for i in range(0, len(tone), 500):  # 500 samples: 362.8 on the track
        frames += [
            InputAudioRawFrame(
                audio=tone[i : i + 500].tobytes(), sample_rate=22050, num_channels=1
            ),
            SleepFrame(0.01),
        ]
        if i == 500 * 20:
            frames += bot_frames(sine(440, 0.2, RATE), RATE, FRAME // 2)
    user, kane = await record(tmp_path, frames)
    assert len(user) == len(kane) == len(tone) * RATE // 22050
    assert_tone(user[100:-100], 500)
    start = 21 * 500 * RATE // 22050
    assert abs(onset(kane) - start) <= 1
    assert_tone(kane[start : start + 3200], 440)
