"""Analyzers sharing one loaded ONNX model hear their own audio exactly as unshared ones do."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pytest
import soundfile as sf
from pipecat.audio.turn.base_turn_analyzer import EndOfTurnState
from pipecat.audio.turn.smart_turn.local_smart_turn_v3 import LocalSmartTurnAnalyzerV3
from pipecat.audio.vad.silero import SileroVADAnalyzer
from pipecat.audio.vad.vad_analyzer import VADAnalyzer, VADState
from pipecat.metrics.metrics import TurnMetricsData
from pipecat.turns.user_stop import TurnAnalyzerUserTurnStopStrategy

from emotion.analyzer import EmotionEstimate, TurnAudio
from emotion.local import LocalEmotionAnalyzer
from services.shared_models import (
    SharedSileroVADAnalyzer,
    SharedSmartTurnAnalyzerV3,
    build_turn_analyzer,
    build_vad_analyzer,
    silero_vad_session,
    smart_turn_v3_session,
)
from services.turns import PreemptiveUserTurnStopStrategy, user_turn_params
from tests.support.speech import ONBOARDING_SENTENCE, speech_wav
from tests.support.worker import ROOT

RATE = 16000
CHUNK = 320  # 20 ms, as the transport delivers it: not a whole VAD window


def spoken(text: str, **kwargs) -> bytes:
    """16 kHz 16-bit PCM of `text` spoken by eSpeak NG."""
    audio, rate = sf.read(speech_wav(text, sample_rate=RATE, **kwargs), dtype="int16")
    assert rate == RATE
    return audio.tobytes()


def chunks(pcm: bytes) -> list[bytes]:
    step = CHUNK * 2
    return [pcm[i : i + step] for i in range(0, len(pcm), step)]


@pytest.fixture(scope="module")
def two_voices() -> tuple[bytes, bytes]:
    return (
        spoken(ONBOARDING_SENTENCE),
        spoken(
            "Remind me to call the bank after lunch, then review the pull request.",
            leading_silence_s=1.2,
            trailing_silence_s=2.5,
            rate_wpm=150,
        ),
    )


class Recording(VADAnalyzer):
    """Keeps the confidence of every window the analyzer scores, and the thread it ran on."""

    confidences: list[float]
    threads: set[int]

    def voice_confidence(self, buffer: bytes) -> float:
        confidence = super().voice_confidence(buffer)  # type: ignore[safe-super]
        self.confidences.append(np.asarray(confidence).item())
        self.threads.add(threading.get_ident())
        return confidence


class RecordingStock(Recording, SileroVADAnalyzer):
    def __init__(self):
        super().__init__(sample_rate=RATE)
        self.confidences = []
        self.threads = set()


class RecordingShared(Recording, SharedSileroVADAnalyzer):
    def __init__(self):
        super().__init__(sample_rate=RATE)
        self.confidences = []
        self.threads = set()


async def hear(analyzer: VADAnalyzer, pcm: bytes) -> list[VADState]:
    analyzer.set_sample_rate(RATE)
    return [await analyzer.analyze_audio(chunk) for chunk in chunks(pcm)]


async def test_vad_analyzers_on_one_session_hear_their_own_audio_as_unshared_ones_do(
    two_voices,
):
    first, second = two_voices
    stock = [RecordingStock(), RecordingStock()]
    expected = [await hear(stock[0], first), await hear(stock[1], second)]

    shared = [RecordingShared(), RecordingShared()]
    assert shared[0].session is shared[1].session
    for analyzer in shared:
        analyzer.set_sample_rate(RATE)
    a, b = chunks(first), chunks(second)
    states: list[list[VADState]] = [[], []]
    # Window by window, side by side: both analyzers run the one session, on the loop.
    for i in range(max(len(a), len(b))):
        pairs = [(k, pcm[i]) for k, pcm in enumerate((a, b)) if i < len(pcm)]
        heard = await asyncio.gather(*(shared[k].analyze_audio(chunk) for k, chunk in pairs))
        for (k, _), state in zip(pairs, heard, strict=True):
            states[k].append(state)

    assert states == expected
    assert [s.confidences for s in shared] == [s.confidences for s in stock]
    # The two streams really differ, and both hold speech.
    assert shared[0].confidences[:50] != shared[1].confidences[:50]
    assert all(VADState.SPEAKING in heard for heard in states)
    # Pipecat scores on a thread of each analyzer's own; the shared ones score on the loop.
    loop_thread = threading.get_ident()
    assert all(s.threads and loop_thread not in s.threads for s in stock)
    assert all(s.threads == {loop_thread} for s in shared)
    for vad in [*stock, *shared]:
        await vad.cleanup()


async def end_of_turn(analyzer) -> tuple[EndOfTurnState, float]:
    state, metrics = await analyzer.analyze_end_of_turn()
    assert isinstance(metrics, TurnMetricsData)
    return state, metrics.probability


async def test_smart_turn_analyzers_on_one_session_judge_their_own_turns_as_unshared_ones_do():
    finished = spoken(ONBOARDING_SENTENCE, trailing_silence_s=0.2)
    unfinished = spoken("My main quest today is to", trailing_silence_s=0.2)

    stock = [LocalSmartTurnAnalyzerV3(sample_rate=RATE) for _ in range(2)]
    expected = []
    for analyzer, pcm in zip(stock, (finished, unfinished), strict=True):
        analyzer.set_sample_rate(RATE)
        for chunk in chunks(pcm):
            analyzer.append_audio(chunk, is_speech=True)
        expected.append(await end_of_turn(analyzer))

    shared = [build_turn_analyzer(), build_turn_analyzer()]
    assert shared[0].session is shared[1].session is smart_turn_v3_session()
    for analyzer in shared:
        analyzer.set_sample_rate(RATE)
    streams = [chunks(finished), chunks(unfinished)]
    for i in range(max(len(s) for s in streams)):
        for turn, stream in zip(shared, streams, strict=True):
            if i < len(stream):
                turn.append_audio(stream[i], is_speech=True)
    judged = await asyncio.gather(*(end_of_turn(analyzer) for analyzer in shared))

    assert list(judged) == expected
    assert judged[0][1] != judged[1][1]
    for analyzer in stock + shared:
        await analyzer.cleanup()


async def test_turns_ending_together_are_judged_one_after_another_on_one_thread():
    running = 0
    most = 0
    threads: set[int] = set()
    started: list[int] = []

    class Judging(SharedSmartTurnAnalyzerV3):
        def __init__(self, number: int):
            super().__init__(sample_rate=RATE)
            self.number = number

        def _process_speech_segment(self, audio_buffer):
            nonlocal running, most
            running += 1
            most = max(most, running)
            threads.add(threading.get_ident())
            started.append(self.number)
            try:
                return super()._process_speech_segment(audio_buffer)
            finally:
                running -= 1

    pcm = spoken(ONBOARDING_SENTENCE, trailing_silence_s=0.2)
    # One analyzer per session, as the user aggregators of a process's sessions have.
    analyzers = [Judging(number) for number in range(4)]
    for analyzer in analyzers:
        analyzer.set_sample_rate(RATE)
        for chunk in chunks(pcm):
            analyzer.append_audio(chunk, is_speech=True)
    judged = await asyncio.gather(*(end_of_turn(analyzer) for analyzer in analyzers))

    assert len(set(judged)) == 1  # the same turn, the same judgment
    assert most == 1 and started == [0, 1, 2, 3]
    assert len(threads) == 1 and threading.get_ident() not in threads
    # A session's end (its analyzer cleaned up) leaves the thread to the others.
    await analyzers[0].cleanup()
    for chunk in chunks(pcm):
        analyzers[1].append_audio(chunk, is_speech=True)
    assert await end_of_turn(analyzers[1]) == judged[1]
    assert len(threads) == 1


async def test_emotion_estimates_never_take_the_core_from_a_smart_turn_run():
    # A process's turn-end work is one queue: Smart Turn's runs and the local emotion
    # estimates, one at a time, in the order they were asked for.
    running = 0
    most = 0
    threads: set[int] = set()
    ran: list[str] = []

    def track(name: str, work):
        nonlocal running, most
        running += 1
        most = max(most, running)
        threads.add(threading.get_ident())
        ran.append(name)
        try:
            time.sleep(0.02)  # long enough for another thread to start beside it
            return work()
        finally:
            running -= 1

    class Judging(SharedSmartTurnAnalyzerV3):
        def _process_speech_segment(self, audio_buffer):
            return track("turn", lambda: super(Judging, self)._process_speech_segment(audio_buffer))

    class Estimating(LocalEmotionAnalyzer):
        def estimate(self, turn: TurnAudio) -> EmotionEstimate:
            return track("estimate", lambda: super(Estimating, self).estimate(turn))

    pcm = spoken(ONBOARDING_SENTENCE, trailing_silence_s=0.2)
    judges = [Judging(sample_rate=RATE) for _ in range(2)]
    for judge in judges:
        for chunk in chunks(pcm):
            judge.append_audio(chunk, is_speech=True)
    turn = TurnAudio(pcm=pcm, sample_rate=RATE, text=ONBOARDING_SENTENCE)
    await asyncio.gather(
        end_of_turn(judges[0]),
        Estimating().analyze_turn(turn),
        end_of_turn(judges[1]),
        Estimating().analyze_turn(turn),
    )
    assert most == 1 and ran == ["turn", "estimate", "turn", "estimate"]
    assert len(threads) == 1 and threading.get_ident() not in threads


def test_shared_analyzers_keep_every_attribute_pipecats_own_have():
    # The shared analyzers set by hand what Pipecat's constructors set; a Pipecat upgrade
    # adding state to them shows up here.
    vad, stock_vad = build_vad_analyzer(), SileroVADAnalyzer()
    assert set(vars(vad)) == set(vars(stock_vad))
    assert set(vars(vad._model)) == set(vars(stock_vad._model))
    turn, stock_turn = build_turn_analyzer(), LocalSmartTurnAnalyzerV3()
    assert set(vars(turn)) == set(vars(stock_turn))


def test_every_session_builds_its_analyzers_on_the_one_loaded_model():
    vads = [build_vad_analyzer(), build_vad_analyzer()]
    assert vads[0] is not vads[1]
    assert vads[0].session is vads[1].session is silero_vad_session()

    plain = user_turn_params(False).user_turn_strategies
    early = user_turn_params(True).user_turn_strategies
    assert plain is not None and plain.stop and early is not None and early.stop
    [plain_stop], [early_stop] = plain.stop, early.stop
    assert isinstance(plain_stop, TurnAnalyzerUserTurnStopStrategy)
    assert isinstance(early_stop, PreemptiveUserTurnStopStrategy)
    assert isinstance(early_stop.inner, TurnAnalyzerUserTurnStopStrategy)
    turns = [plain_stop._turn_analyzer, early_stop.inner._turn_analyzer]
    assert all(isinstance(t, SharedSmartTurnAnalyzerV3) for t in turns)
    assert turns[0] is not turns[1]
    assert {t.session for t in turns} == {smart_turn_v3_session()}  # type: ignore[attr-defined]


def test_once_smart_turn_is_loaded_the_process_multiplies_matrices_on_one_thread():
    # In a process of its own: the setting is the whole process's, and this one's model may
    # be loaded already. OpenBLAS starts with a thread per core; two, whatever this machine has.
    script = textwrap.dedent(
        """
        from threadpoolctl import threadpool_info, threadpool_limits
        from services.shared_models import smart_turn_v3_session
        threadpool_limits(limits=2, user_api="blas")
        before = [pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"]
        smart_turn_v3_session()
        after = [pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"]
        print(before, after)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert done.stdout.strip().splitlines()[-1] == "[2] [1]"
