"""The recording writes of a process: every recorder's batch handed to one thread together."""

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from pipecat.frames.frames import InputAudioRawFrame

from processors.recorder import AudioRecorder
from storage.audio_store import LocalAudioStore
from storage.recording_writes import RecordingWrites
from tests.test_recorder import FRAME, RATE, track


class Source:
    """Writes to hand over: jobs that note the thread they ran on and what they wrote."""

    def __init__(self, name: str, written: list[str], threads: set[str], fail: bool = False):
        self.name = name
        self.pending = 0
        self._written = written
        self._threads = threads
        self._fail = fail

    def take_writes(self):
        if not self.pending:
            return None
        count, self.pending = self.pending, 0

        def job() -> None:
            self._threads.add(threading.current_thread().name)
            if self._fail:
                raise OSError("disk full")
            self._written.extend([self.name] * count)

        return job


async def test_the_recorders_of_a_process_share_one_hand_off_a_tick(tmp_path):
    writes = RecordingWrites(every_s=0.1)
    recorders = [
        AudioRecorder(session_id=f"s{i}", store=LocalAudioStore(tmp_path), writes=writes)
        for i in range(8)
    ]
    audio = [bytes([i + 1]) * FRAME for i in range(len(recorders))]
    started = time.monotonic()
    for _ in range(50):  # a second of every person's audio, a frame every 20 ms
        for recorder, pcm in zip(recorders, audio, strict=True):
            recorder.add_user_audio(InputAudioRawFrame(audio=pcm, sample_rate=RATE, num_channels=1))
        await asyncio.sleep(0.02)
    elapsed = time.monotonic() - started
    recordings = [await recorder.close() for recorder in recorders]

    # Every session's audio is whole, in its own file...
    for recording, pcm in zip(recordings, audio, strict=True):
        assert track(recording.user_url).tobytes() == pcm * 50
    # ...and handed over once a tick for all eight, not once a tick for each.
    assert 1 <= writes.batches <= elapsed / 0.1 + 1


async def test_writes_run_on_one_thread_in_the_order_handed_over():
    written: list[str] = []
    threads: set[str] = set()
    writes = RecordingWrites(every_s=0.05)
    first, second = Source("a", written, threads), Source("b", written, threads)
    first.pending = 2
    writes.due(first)
    second.pending = 1
    writes.due(second)
    await asyncio.sleep(0.12)  # a tick: both batches, in one hand-off
    first.pending = 1
    writes.due(first)
    await writes.run_now(lambda: written.append("now"))  # behind what was handed over
    assert written == ["a", "a", "b", "now"]
    await writes.close()  # what is due is written at once
    assert written == ["a", "a", "b", "now", "a"]
    # The process's thread for recordings, never the event loop's.
    assert len(threads) == 1 and next(iter(threads)).startswith("recordings")
    assert writes.batches == 1


async def test_a_failing_write_keeps_no_other_session_from_its_audio(tmp_path):
    written: list[str] = []
    threads: set[str] = set()
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="writes") as thread:
        writes = RecordingWrites(every_s=0.05, executor=thread)
        broken = Source("broken", written, threads, fail=True)
        fine = Source("fine", written, threads)
        for source in (broken, fine):
            source.pending = 1
            writes.due(source)
        await asyncio.sleep(0.12)
        await writes.run_now(lambda: None)  # the tick's batch is done by now
        assert written == ["fine"]
        assert len(threads) == 1 and next(iter(threads)).startswith("writes")
        # The clock goes on for later writes.
        fine.pending = 1
        writes.due(fine)
        await asyncio.sleep(0.12)
        await writes.run_now(lambda: None)
        assert written == ["fine", "fine"]
        await writes.close()
