import base64
import time

import httpx
import pytest
from hume import AsyncHumeClient
from hume.core.api_error import ApiError
from hume.tts import FormatPcm, FormatWav, PostedUtterance, PostedUtteranceVoiceWithId
from hume.tts.errors import UnprocessableEntityError
from hume.tts.types import SnippetAudioChunk, TimestampMessage

from emulators import Fault, HumeEmulator
from emulators.synth import rms

VOICE = PostedUtteranceVoiceWithId(id="voice-123")
TEXT = "Your main quest is set"


@pytest.fixture
async def emu():
    async with HumeEmulator() as emulator:
        yield emulator


def hume(emu, **kwargs):
    return AsyncHumeClient(api_key="test-key", base_url=emu.base_url, **kwargs)


async def synthesize(client, utterances, **kwargs):
    params = {"format": FormatPcm(type="pcm"), "instant_mode": True, "version": "2"}
    stream = client.tts.synthesize_json_streaming(utterances=utterances, **{**params, **kwargs})
    return [chunk async for chunk in stream]


async def test_streams_pcm_chunks_and_word_timestamps_like_pipecat_asks(emu):
    utterance = PostedUtterance(text=TEXT, voice=VOICE, description="calm coach", speed=1.0)

    chunks = await synthesize(hume(emu), [utterance], include_timestamp_types=["word"])

    audio_chunks = [c for c in chunks if isinstance(c, SnippetAudioChunk)]
    stamps = [c for c in chunks if isinstance(c, TimestampMessage)]
    pcm = b"".join(base64.b64decode(c.audio) for c in audio_chunks)
    assert len(pcm) / 2 / 48_000 == pytest.approx(len(TEXT) * 0.06, rel=0.02)
    assert rms(pcm) > 1000
    assert [c.chunk_index for c in audio_chunks] == list(range(len(audio_chunks)))
    assert [c.is_last_chunk for c in audio_chunks] == [False] * (len(audio_chunks) - 1) + [True]
    assert {c.generation_id for c in chunks} == {audio_chunks[0].generation_id}
    assert {c.audio_format for c in audio_chunks} == {"pcm"}
    assert {c.text for c in audio_chunks} == {TEXT} and audio_chunks[0].utterance_index == 0
    assert [s.timestamp.text for s in stamps] == TEXT.split()
    begins = [s.timestamp.time.begin for s in stamps]
    assert begins == sorted(begins) and stamps[-1].timestamp.time.end <= len(TEXT) * 60 + 1
    body = emu.recorded("tts")[0].body
    assert body["utterances"][0] == {
        "text": TEXT,
        "voice": {"id": "voice-123"},
        "description": "calm coach",
        "speed": 1.0,
    }
    assert body["format"] == {"type": "pcm"} and body["instant_mode"] is True
    assert emu.recorded("tts")[0].headers["X-Hume-Api-Key"] == "<redacted>"


async def test_each_utterance_is_its_own_snippet(emu):
    utterances = [
        PostedUtterance(text="First part", voice=VOICE),
        PostedUtterance(text="Second part", voice=VOICE, speed=2.0),
    ]

    chunks = await synthesize(hume(emu), utterances)

    by_index: dict[int, list[SnippetAudioChunk]] = {}
    for chunk in chunks:
        by_index.setdefault(chunk.utterance_index, []).append(chunk)
    assert sorted(by_index) == [0, 1]
    assert by_index[0][0].snippet_id != by_index[1][0].snippet_id
    first, second = (sum(len(base64.b64decode(c.audio)) for c in by_index[i]) for i in (0, 1))
    assert second == pytest.approx(first / 2, rel=0.1)


async def test_wav_format_carries_a_riff_header(emu):
    chunks = await synthesize(
        hume(emu),
        [PostedUtterance(text="Hi", voice=VOICE)],
        format=FormatWav(type="wav"),
        strip_headers=True,
    )

    assert base64.b64decode(chunks[0].audio)[:4] == b"RIFF"


async def test_instant_mode_without_a_voice_is_unprocessable(emu):
    with pytest.raises(UnprocessableEntityError):
        await synthesize(hume(emu), [PostedUtterance(text="Hi")])


async def test_missing_key_is_rejected_with_401(emu):
    client = AsyncHumeClient(api_key="", base_url=emu.base_url)

    with pytest.raises(ApiError) as error:
        await synthesize(client, [PostedUtterance(text="Hi", voice=VOICE)])
    assert error.value.status_code == 401


async def test_http_500_fault_raises_api_error(emu):
    emu.set_behavior(fault=Fault.HTTP_500, fault_count=1)

    with pytest.raises(ApiError) as error:
        await synthesize(hume(emu), [PostedUtterance(text="Hi", voice=VOICE)])
    chunks = await synthesize(hume(emu), [PostedUtterance(text="Hi", voice=VOICE)])

    assert error.value.status_code == 500
    assert chunks


async def test_drop_fault_cuts_the_stream(emu):
    emu.set_behavior(fault=Fault.DROP, fault_after=2)
    received = []

    with pytest.raises(httpx.HTTPError):
        stream = hume(emu).tts.synthesize_json_streaming(
            utterances=[PostedUtterance(text=TEXT, voice=VOICE)], format=FormatPcm(type="pcm")
        )
        async for chunk in stream:
            received.append(chunk)

    assert len(received) == 2


async def test_stall_fault_times_the_client_out(emu):
    emu.set_behavior(fault=Fault.STALL)

    with pytest.raises(httpx.TimeoutException):
        await synthesize(hume(emu, timeout=0.5), [PostedUtterance(text="Hi", voice=VOICE)])


async def test_first_chunk_latency(emu):
    emu.set_behavior(first_latency_s=0.4, chunk_interval_s=0.02)
    start = time.monotonic()
    stamps = []
    stream = hume(emu).tts.synthesize_json_streaming(
        utterances=[PostedUtterance(text=TEXT, voice=VOICE)], format=FormatPcm(type="pcm")
    )
    async for _ in stream:
        stamps.append(time.monotonic() - start)

    assert 0.35 <= stamps[0] < 2.0
    assert stamps[-1] - stamps[0] >= 0.02 * (len(stamps) - 1) * 0.8
