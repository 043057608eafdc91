import asyncio
import time

import pytest
from deepgram.core import ApiError
from deepgram.core.events import EventType
from pipecat.frames.frames import ErrorFrame, InterimTranscriptionFrame, TranscriptionFrame
from pipecat.pipeline.worker import PipelineParams
from pipecat.services.deepgram.stt import DeepgramSTTService
from pipecat.tests.utils import SleepFrame, run_test

from emulators import DeepgramEmulator, Fault
from emulators.synth import silence
from tests.support.emulators import (
    audio_frames,
    deepgram_client,
    of_type,
    speech_then_silence,
)

PARAMS = {"model": "nova-3", "encoding": "linear16", "sample_rate": "16000"}


@pytest.fixture
async def emu():
    async with DeepgramEmulator() as emulator:
        yield emulator


async def transcribe(emu, audio, *, close=True, api_key="test-key", **params):
    """Stream audio through the SDK's live client; return every message received."""
    received = []
    errors = []
    client = deepgram_client(emu, api_key)
    async with client.listen.v1.connect(**{**PARAMS, **params}) as conn:

        async def on_message(message):
            received.append(message)

        async def on_error(error):
            errors.append(error)

        conn.on(EventType.MESSAGE, on_message)
        conn.on(EventType.ERROR, on_error)
        listening = asyncio.create_task(conn.start_listening())
        for i in range(0, len(audio), 640):
            await conn.send_media(audio[i : i + 640])
        if close:
            await conn.send_close_stream()
            await asyncio.wait_for(listening, timeout=5)
        else:
            await asyncio.sleep(0.5)
            listening.cancel()
    return received, errors


def results(messages):
    return [m for m in messages if m.type == "Results"]


async def test_interim_results_grow_then_final_carries_scripted_words(emu):
    emu.script_utterance("Fix the login bug first, then ship onboarding.")
    audio = speech_then_silence(2.0, 1.5)

    messages, errors = await transcribe(
        emu,
        audio,
        interim_results="true",
        punctuate="true",
        vad_events="true",
        utterance_end_ms="1000",
    )

    assert not errors
    kinds = [m.type for m in messages]
    assert kinds[0] == "SpeechStarted"
    assert kinds[-2:] == ["UtteranceEnd", "Metadata"]
    interims = [r for r in results(messages) if not r.is_final]
    finals = [r for r in results(messages) if r.is_final]
    assert len(interims) >= 3
    counts = [len(r.channel.alternatives[0].words) for r in interims]
    assert counts == sorted(counts) and counts[0] < counts[-1]
    assert len(finals) == 1
    final = finals[0]
    assert final.speech_final is True
    assert final.channel.alternatives[0].transcript == (
        "Fix the login bug first, then ship onboarding."
    )
    words = final.channel.alternatives[0].words
    assert [w.word for w in words][:3] == ["fix", "the", "login"]
    assert words[0].punctuated_word == "Fix"
    assert 0.0 <= final.start < words[0].end <= words[-1].end <= final.start + final.duration + 1e-3
    assert final.metadata.model_info.arch
    metadata = messages[-1]
    assert metadata.duration == pytest.approx(len(audio) / 32000, abs=0.02)


async def test_each_speech_segment_takes_the_next_script_then_the_default(emu):
    emu.script_utterance("Main quest: ship onboarding.", "Side quest: answer email.")
    emu.default_text = "Nothing else."
    segment = speech_then_silence(1.0, 0.6)

    messages, _ = await transcribe(emu, segment * 3, punctuate="true")

    finals = [r.channel.alternatives[0].transcript for r in results(messages) if r.is_final]
    assert finals == ["Main quest: ship onboarding.", "Side quest: answer email.", "Nothing else."]
    assert not [r for r in results(messages) if not r.is_final]  # interim_results off


async def test_finalize_flushes_pending_speech_with_from_finalize():
    async with DeepgramEmulator(default_text="Ship it today") as emu:
        client = deepgram_client(emu)
        received = []
        async with client.listen.v1.connect(**PARAMS, endpointing="false") as conn:

            async def on_message(message):
                received.append(message)

            conn.on(EventType.MESSAGE, on_message)
            listening = asyncio.create_task(conn.start_listening())
            audio = speech_then_silence(1.0, 0.5)
            await conn.send_media(audio)
            await conn.send_keep_alive()
            await conn.send_finalize()
            await conn.send_finalize()  # nothing pending: an empty from_finalize result
            await conn.send_close_stream()
            await asyncio.wait_for(listening, timeout=5)

    finals = [r for r in results(received) if r.is_final]
    assert [r.from_finalize for r in finals] == [True, True]
    assert finals[0].channel.alternatives[0].transcript == "ship it today"  # punctuate off
    assert finals[1].channel.alternatives[0].transcript == ""
    record = emu.recorded("listen")[0]
    assert [m["type"] for m in record.messages] == [
        "KeepAlive",
        "Finalize",
        "Finalize",
        "CloseStream",
    ]
    assert record.audio_bytes == len(audio)


async def test_missing_key_is_rejected_with_401(emu):
    with pytest.raises(ApiError) as error:
        await transcribe(emu, silence(0.1), api_key="")
    assert error.value.status_code == 401


async def test_http_500_fault_fails_the_handshake_then_recovers(emu):
    emu.set_behavior(fault=Fault.HTTP_500, fault_count=1)

    with pytest.raises(ApiError) as error:
        await transcribe(emu, silence(0.1))
    messages, _ = await transcribe(emu, speech_then_silence(0.5, 0.5))

    assert error.value.status_code == 500
    assert len(results(messages)) == 1
    assert [r.fault for r in emu.recorded("listen")] == ["http_500", "none"]


async def test_drop_fault_cuts_the_connection_mid_stream(emu):
    emu.set_behavior(fault=Fault.DROP, fault_after=2)

    messages, errors = await transcribe(
        emu, speech_then_silence(2.0, 0.5), close=False, interim_results="true"
    )

    assert len(messages) == 2
    assert errors, "the SDK reports the dropped connection as an error"


async def test_stall_fault_accepts_audio_but_never_answers(emu):
    emu.set_behavior(fault=Fault.STALL)

    audio = speech_then_silence(1.0, 0.5)
    messages, errors = await transcribe(emu, audio, close=False)

    assert messages == [] and errors == []
    assert emu.recorded("listen")[0].audio_bytes == len(audio)


async def test_first_latency_delays_results(emu):
    emu.set_behavior(first_latency_s=0.6)
    client = deepgram_client(emu)
    arrived = asyncio.Event()
    async with client.listen.v1.connect(**PARAMS, endpointing="100") as conn:

        async def on_message(message):
            arrived.set()

        conn.on(EventType.MESSAGE, on_message)
        listening = asyncio.create_task(conn.start_listening())
        await conn.send_media(speech_then_silence(0.5, 0.3))
        sent_at = time.monotonic()
        await asyncio.wait_for(arrived.wait(), timeout=5)
        elapsed = time.monotonic() - sent_at
        listening.cancel()

    assert 0.5 <= elapsed < 3.0


async def test_pipecat_deepgram_stt_service_gets_interim_and_final_transcripts(emu):
    emu.script_utterance("My main quest is the onboarding flow")
    stt = DeepgramSTTService(api_key="test-key", base_url=emu.base_url)
    frames = audio_frames(speech_then_silence(1.5, 0.6))

    down, _ = await run_test(
        stt,
        frames_to_send=[*frames, SleepFrame(sleep=1.0)],
        pipeline_params=PipelineParams(audio_in_sample_rate=16_000),
    )

    interims = of_type(down, InterimTranscriptionFrame)
    finals = of_type(down, TranscriptionFrame)
    assert interims and interims[0].text.startswith("My")
    assert [f.text for f in finals] == ["My main quest is the onboarding flow"]
    query = emu.recorded("listen")[0].query
    assert query["model"] == "nova-3-general"
    assert query["sample_rate"] == "16000"
    assert query["interim_results"] == "true"
    assert query["encoding"] == "linear16"


@pytest.mark.slow
async def test_pipecat_deepgram_stt_service_reports_a_drop_and_reconnects(emu):
    # pipecat waits at least 4 s (exponential_backoff_time) before reconnecting.
    emu.set_behavior(fault=Fault.DROP, fault_after=1, fault_count=1)
    stt = DeepgramSTTService(api_key="test-key", base_url=emu.base_url)
    frames = audio_frames(speech_then_silence(1.5, 0.6))

    _, up = await run_test(
        stt,
        frames_to_send=[*frames, SleepFrame(sleep=5.0)],
        pipeline_params=PipelineParams(audio_in_sample_rate=16_000),
    )

    assert of_type(up, ErrorFrame)
    assert [r.fault for r in emu.recorded("listen")] == ["drop", "none"]
