import asyncio
import time

import pytest
from hume_expression_measurement import (
    AsyncExpressionMeasurementClient,
    AudioMeasurementResult,
    AudioSessionClosed,
    AudioSessionCreated,
    AudioSessionUpdate,
    AudioSessionUpdated,
    Error,
    ExpressionMeasurementClientEnvironment,
    SessionClose,
)
from loguru import logger

from emotion.analyzer import AnalyzerFailed, TurnAudio
from emotion.hume import HumeEmotionAnalyzer
from emulators import Fault, HumeExpressionEmulator
from emulators.synth import silence, speech_like

KEY = "hume-secret-key-123"
LOUD = speech_like("ship the onboarding flow today", 16_000, amplitude=0.8).pcm[: 16_000 * 2]
QUIET = speech_like("maybe later I guess we could", 16_000, amplitude=0.02).pcm[: 16_000 * 2]


@pytest.fixture
async def emu():
    async with HumeExpressionEmulator() as emulator:
        yield emulator


@pytest.fixture
def logs():
    lines: list[str] = []
    sink = logger.add(lines.append, level="DEBUG", format="{message}")
    yield lines
    logger.remove(sink)


@pytest.fixture
async def analyzers():
    made: list[HumeEmotionAnalyzer] = []

    def make(emu, **kwargs):
        analyzer = HumeEmotionAnalyzer(KEY, base_url=emu.base_url, **kwargs)
        made.append(analyzer)
        return analyzer

    yield make
    for analyzer in made:
        await analyzer.close()


async def speak(analyzer, pcm, *, rate=16_000, silence_s=0.6, chunk_s=0.02):
    """Feed a turn's audio the way the pipeline does: small chunks at real-time pace."""
    audio = pcm + silence(silence_s, rate)
    step = int(rate * chunk_s) * 2
    started = time.monotonic()
    for index, offset in enumerate(range(0, len(audio), step)):
        analyzer.feed(audio[offset : offset + step], rate)
        await asyncio.sleep(max(0.0, started + (index + 1) * chunk_s - time.monotonic()))
    return TurnAudio(
        pcm=audio, sample_rate=rate, text="", started_at=started, ended_at=time.monotonic()
    )


async def test_loud_turn_reads_excited_and_quiet_turn_reads_low_energy(emu, analyzers):
    analyzer = analyzers(emu)
    await analyzer.start()

    loud = await analyzer.analyze_turn(await speak(analyzer, LOUD))
    # 48 kHz audio is resampled to the 16 kHz Hume takes.
    quiet_turn = await speak(
        analyzer, speech_like("maybe later", 48_000, amplitude=0.02).pcm, rate=48_000
    )
    quiet = await analyzer.analyze_turn(quiet_turn)
    await analyzer.close()

    assert loud.source == "hume" and loud.label == "excited"
    assert loud.arousal > 0.6 and loud.valence > 0
    assert loud.features["hume.excitement"] > 0.5 and loud.features["measurements"] == 1
    assert set(loud.scores) == {
        "calm",
        "excited",
        "stressed",
        "tired",
        "frustrated",
        "uncertain",
        "neutral",
    }
    assert quiet.label in ("tired", "calm") and quiet.arousal < 0.3
    assert quiet.features["measurements"] == 1 and "hume.excitement" not in quiet.features
    record = emu.recorded("audio")[0]
    assert record.headers["X-Hume-Api-Key"] == "<redacted>"
    assert record.path == "/v1/expression/audio/realtime"
    update = record.messages[0]
    assert update["type"] == "session.update" and update["measurement_timer_ms"] == 3000
    assert update["audio"] == {
        "type": "audio/pcm",
        "encoding": "s16le",
        "sample_rate": 16000,
        "channels": 1,
    }
    fed_s = (len(LOUD) + len(quiet_turn.pcm) / 3) / 32_000 + 0.6  # + the loud turn's silence
    assert record.audio_bytes / 32_000 == pytest.approx(fed_s, abs=0.05)
    assert record.messages[-1] == {"type": "session.close"}
    assert [s["type"] for s in record.sent][-1] == "session.closed"
    assert not [s for s in record.sent if s["type"] == "error"]  # paced, never rate limited


async def test_expression_names_map_to_our_labels(emu, analyzers):
    emu.script_expressions(
        [{"name": "anxiety", "probability": 0.7}, {"name": "distress", "probability": 0.4}]
    )
    analyzer = analyzers(emu)
    await analyzer.start()

    estimate = await analyzer.analyze_turn(await speak(analyzer, LOUD[:16_000]))

    assert estimate.label == "stressed" and estimate.valence < -0.5 and estimate.arousal > 0.7
    assert estimate.scores["stressed"] == pytest.approx(1 - 0.3 * 0.6, abs=1e-3)


async def test_waits_briefly_for_late_results(emu, analyzers):
    emu.set_behavior(first_latency_s=0.25)
    analyzer = analyzers(emu)
    await analyzer.start()

    turn = await speak(analyzer, LOUD, silence_s=0.45)
    began = time.monotonic()
    estimate = await analyzer.analyze_turn(turn)
    waited = time.monotonic() - began

    assert estimate.label == "excited" and estimate.features["measurements"] == 1
    assert 0.1 <= waited <= 0.35


async def test_results_later_than_the_wait_leave_the_turn_unmeasured(emu, analyzers):
    emu.set_behavior(first_latency_s=1.0)
    analyzer = analyzers(emu, result_wait_s=0.3)
    await analyzer.start()

    turn = await speak(analyzer, LOUD, silence_s=0.45)
    began = time.monotonic()
    estimate = await analyzer.analyze_turn(turn)

    assert 0.25 <= time.monotonic() - began < 0.5
    assert estimate.label == "neutral" and estimate.features["measurements"] == 0


async def test_dropped_connection_fails_the_next_turn_and_feed_stays_quiet(emu, analyzers, logs):
    emu.set_behavior(fault=Fault.DROP, fault_after=1)
    analyzer = analyzers(emu)
    await analyzer.start()

    first = await analyzer.analyze_turn(await speak(analyzer, LOUD))
    second = await speak(analyzer, QUIET)  # the emulator cuts the TCP connection meanwhile
    with pytest.raises(AnalyzerFailed, match="dropped|closed"):
        await analyzer.analyze_turn(second)
    analyzer.feed(LOUD, 16_000)  # no exception, nothing queued
    with pytest.raises(AnalyzerFailed):
        await analyzer.analyze_turn(second)

    assert first.label == "excited"
    assert analyzer.failed
    assert emu.recorded("audio")[0].fault == "drop"
    assert not any(KEY in line for line in logs)


async def test_handshake_refused_with_500_fails_start(emu, analyzers, logs):
    emu.set_behavior(fault=Fault.HTTP_500, fault_count=1)
    analyzer = analyzers(emu)

    with pytest.raises(AnalyzerFailed, match="HTTP 500") as error:
        await analyzer.start()
    analyzer.feed(LOUD, 16_000)

    assert analyzer.failed
    assert KEY not in str(error.value) and not any(KEY in line for line in logs)


async def test_wrong_key_fails_start_with_401(analyzers):
    async with HumeExpressionEmulator(api_key="the-right-key") as emu:
        with pytest.raises(AnalyzerFailed, match="HTTP 401"):
            await analyzers(emu).start()


async def test_emulator_speaks_the_realtime_protocol_to_the_sdk_client(emu):
    environment = ExpressionMeasurementClientEnvironment(base=emu.url, production=emu.base_url)
    client = AsyncExpressionMeasurementClient(api_key=KEY, environment=environment)
    audio = LOUD[:16_000] + silence(0.5)
    async with client.audio.connect() as socket:
        created = await socket.recv()
        await socket.send_audio_session_update(
            AudioSessionUpdate(type="session.update", measurement_timer_ms=3000)
        )
        updated = await socket.recv()
        await socket.send_audio_frame(b"\x00")  # odd length: rejected, session goes on
        for offset in range(0, len(audio), 3200):
            await socket.send_audio_frame(audio[offset : offset + 3200])
            await asyncio.sleep(0.1)
        await socket.send_audio_session_close(SessionClose(type="session.close"))
        messages = [message async for message in socket]

    assert isinstance(created, AudioSessionCreated) and created.audio.sample_rate == 16_000
    assert isinstance(updated, AudioSessionUpdated) and updated.measurement_timer_ms == 3000
    assert [m.type for m in messages] == [
        "error",
        "utterance.start",
        "measurement.result",
        "utterance.end",
        "session.closed",
    ]
    error, start, result, end, closed = messages
    assert isinstance(error, Error) and error.code == "invalid_audio_frame" and error.retryable
    assert isinstance(result, AudioMeasurementResult) and result.trigger == "speech_ended"
    assert result.audio_start_ms == start.audio_start_ms < 50
    assert result.audio_end_ms == end.audio_end_ms == pytest.approx(500, abs=50)
    assert result.expressions[0].name == "excitement"
    assert isinstance(closed, AudioSessionClosed) and closed.reason == "client_request"
    assert closed.received.audio_duration_ms == 1000 and closed.produced.measurements == 1
