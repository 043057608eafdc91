import struct
import time

import aiohttp
import pytest
from deepgram.core.api_error import ApiError
from pipecat.frames.frames import ErrorFrame, TTSAudioRawFrame, TTSSpeakFrame
from pipecat.pipeline.worker import PipelineParams
from pipecat.services.deepgram.tts import DeepgramHttpTTSService
from pipecat.tests.utils import run_test

from emulators import DeepgramEmulator, Fault
from emulators.synth import rms
from tests.support.emulators import deepgram_client, of_type

TEXT = "Your main quest is set"


@pytest.fixture
async def emu():
    async with DeepgramEmulator(api_key="test-key") as emulator:
        yield emulator


@pytest.fixture
async def session():
    async with aiohttp.ClientSession() as http:
        yield http


async def generate(emu, api_key="test-key", **params):
    client = deepgram_client(emu, api_key=api_key)
    chunks = [chunk async for chunk in client.speak.v1.audio.generate(**params)]
    return b"".join(chunks)


def pipecat_tts(emu, session, voice="aura-2-thalia-en"):
    return DeepgramHttpTTSService(
        api_key="test-key",
        aiohttp_session=session,
        base_url=emu.url,
        settings=DeepgramHttpTTSService.Settings(voice=voice),
        stop_frame_timeout_s=0.2,  # a turn without audio ends after this, not 3 s
    )


async def test_sdk_rest_speak_streams_raw_pcm_at_the_requested_rate(emu):
    pcm = await generate(
        emu,
        text=TEXT,
        model="aura-2-thalia-en",
        encoding="linear16",
        sample_rate=16000,
        container="none",
    )

    assert len(pcm) / 2 / 16_000 == pytest.approx(len(TEXT) * 0.06, rel=0.02)
    assert rms(pcm) > 1000
    record = emu.recorded("speak")[0]
    assert record.method == "POST" and record.path == "/v1/speak"
    assert record.body == {"text": TEXT}
    assert record.query == {
        "model": "aura-2-thalia-en",
        "encoding": "linear16",
        "sample_rate": "16000",
        "container": "none",
    }
    assert record.headers["Authorization"] == "<redacted>"
    assert record.sent == [{"audio_bytes": len(pcm), "model": "aura-2-thalia-en"}]


async def test_rest_defaults_are_a_24khz_wav_and_speed_shortens_it(emu):
    wav = await generate(emu, text=TEXT)
    fast = await generate(emu, text=TEXT, speed=1.5, container="none")

    assert wav[:4] == b"RIFF" and wav[8:12] == b"WAVE"
    assert struct.unpack("<I", wav[24:28])[0] == 24_000
    assert struct.unpack("<I", wav[40:44])[0] == len(wav) - 44
    assert len(fast) == pytest.approx((len(wav) - 44) / 1.5, rel=0.05)
    assert emu.recorded("speak")[0].query == {}


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"text": ""}, "text"),
        ({"text": "x" * 2001}, "limit"),
        ({"text": TEXT, "sample_rate": 44100}, "sample_rate"),
        ({"text": TEXT, "encoding": "mp3"}, "linear16"),
        ({"text": TEXT, "container": "ogg"}, "container"),
        ({"text": TEXT, "speed": 2.0}, "speed"),
        ({"text": TEXT, "model": "nova-3"}, "model"),
    ],
)
async def test_bad_requests_are_refused_with_deepgram_errors(emu, params, message):
    with pytest.raises(ApiError) as raised:
        await generate(emu, **params)

    assert raised.value.status_code == 400
    assert raised.value.body["err_code"] == "Bad Request"
    assert message in raised.value.body["err_msg"]


async def test_wrong_key_is_refused(emu):
    with pytest.raises(ApiError) as raised:
        await generate(emu, api_key="wrong", text=TEXT)

    assert raised.value.status_code == 401
    assert raised.value.body["err_code"] == "INVALID_AUTH"
    assert emu.recorded("speak") == []


async def test_pipecat_http_tts_service_speaks_at_the_pipeline_rate(emu, session):
    down, _ = await run_test(
        pipecat_tts(emu, session),
        frames_to_send=[TTSSpeakFrame(text=TEXT)],
        pipeline_params=PipelineParams(audio_out_sample_rate=16_000),
    )

    audio = of_type(down, TTSAudioRawFrame)
    assert audio and {f.sample_rate for f in audio} == {16_000}
    pcm = b"".join(f.audio for f in audio)
    assert len(pcm) / 2 / 16_000 == pytest.approx(len(TEXT) * 0.06, rel=0.05)
    assert rms(pcm) > 1000
    query = emu.recorded("speak")[0].query
    assert query == {
        "model": "aura-2-thalia-en",
        "encoding": "linear16",
        "sample_rate": "16000",
        "container": "none",
    }


async def test_speak_has_its_own_latency_and_faults(emu, session):
    emu.set_behavior("speak", first_latency_s=0.3)
    started = time.monotonic()
    await generate(emu, text="Hi", container="none")
    assert time.monotonic() - started >= 0.3

    emu.set_behavior("speak", fault=Fault.HTTP_500, fault_count=1)
    _, up = await run_test(pipecat_tts(emu, session), frames_to_send=[TTSSpeakFrame(text=TEXT)])
    assert "HTTP 500" in of_type(up, ErrorFrame)[0].error
    assert emu.behavior_for("listen").fault is Fault.NONE
    assert [r.fault for r in emu.recorded("speak")] == ["none", "http_500"]


async def test_drop_mid_stream_cuts_the_audio_short(emu, session):
    emu.set_behavior("speak", fault=Fault.DROP, fault_after=2)

    down, up = await run_test(pipecat_tts(emu, session), frames_to_send=[TTSSpeakFrame(text=TEXT)])

    pcm = b"".join(f.audio for f in of_type(down, TTSAudioRawFrame))
    assert len(pcm) == 2 * 2 * 24_000 // 10  # two 100 ms chunks at 24 kHz
    assert of_type(up, ErrorFrame)
