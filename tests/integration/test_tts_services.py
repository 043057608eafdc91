"""The real TTS services, behind the failover, against the loopback emulators."""

import time

import aiohttp
import pytest
from pipecat.frames.frames import (
    ErrorFrame,
    TTSAudioRawFrame,
    TTSSpeakFrame,
    TTSStartedFrame,
    TTSStoppedFrame,
)
from pipecat.services.deepgram.tts import DeepgramHttpTTSService
from pipecat.services.openai.tts import OpenAITTSService
from pipecat.services.tts_service import TTSService
from pipecat.tests.utils import run_test

from emulators import DeepgramEmulator, Fault, HumeEmulator, OpenAIEmulator
from emulators.synth import rms
from services.factory import build_tts
from services.failover_tts import FailoverTTSParams, FailoverTTSService
from services.hume_tts import HumeOctaveTTSService
from settings import Settings
from tests.support.emulators import of_type

KEY = "test-key"
VOICE = "kane-coach-voice-id"
RATE = 24_000  # the pipeline's output rate in run_test


@pytest.fixture
async def openai_emu():
    async with OpenAIEmulator(api_key=KEY) as emulator:
        yield emulator


@pytest.fixture
async def deepgram_emu():
    async with DeepgramEmulator(api_key=KEY) as emulator:
        yield emulator


@pytest.fixture
async def hume_emu():
    async with HumeEmulator(api_key=KEY) as emulator:
        yield emulator


@pytest.fixture
async def session():
    async with aiohttp.ClientSession() as http:
        yield http


def openai_tts(emu: OpenAIEmulator) -> OpenAITTSService:
    return OpenAITTSService(
        api_key=KEY,
        base_url=emu.base_url,
        settings=OpenAITTSService.Settings(model="gpt-4o-mini-tts", voice="sage"),
    )


def deepgram_tts(emu: DeepgramEmulator, session: aiohttp.ClientSession) -> DeepgramHttpTTSService:
    return DeepgramHttpTTSService(
        api_key=KEY,
        aiohttp_session=session,
        base_url=emu.url,
        settings=DeepgramHttpTTSService.Settings(voice="aura-2-thalia-en"),
    )


def hume_tts(emu: HumeEmulator) -> HumeOctaveTTSService:
    return HumeOctaveTTSService(
        api_key=KEY, base_url=emu.url, settings=HumeOctaveTTSService.Settings(voice=VOICE)
    )


def failover(
    *services: tuple[str, TTSService],
    timeout_s: float = 0.5,
    stop_frame_timeout_s: float = 2.0,
) -> FailoverTTSService:
    # pipecat ends a turn whose audio context stays quiet for ``stop_frame_timeout_s`` (3 s by
    # default); here it outlasts every failover, except in the test that checks the keepalive.
    return FailoverTTSService(
        services=list(services),
        params=FailoverTTSParams(first_audio_timeout_s=timeout_s, chunk_timeout_s=timeout_s),
        stop_frame_timeout_s=stop_frame_timeout_s,
    )


async def speak(tts: FailoverTTSService, *texts: str):
    down, up = await run_test(tts, frames_to_send=[TTSSpeakFrame(text) for text in texts])
    return of_type(down, TTSAudioRawFrame), of_type(up, ErrorFrame)


def seconds(frames: list[TTSAudioRawFrame]) -> float:
    return sum(len(f.audio) for f in frames) / 2 / RATE


def heard(emu, endpoint: str) -> list[str]:
    """The texts an emulator was asked to speak, in order."""
    bodies = [r.body for r in emu.recorded(endpoint)]
    if endpoint == "tts":  # Hume
        return [b["utterances"][0]["text"] for b in bodies]
    return [b["input"] if endpoint == "speech" else b["text"] for b in bodies]


async def test_hume_octave_speaks_a_turn(hume_emu):
    text = "Your main quest is set."

    audio, errors = await speak(failover(("hume", hume_tts(hume_emu))), text)

    assert not errors
    assert audio and {f.sample_rate for f in audio} == {RATE}  # resampled from 48 kHz
    assert seconds(audio) == pytest.approx(len(text) * 0.06, rel=0.1)
    assert rms(b"".join(f.audio for f in audio)) > 1000
    body = hume_emu.recorded("tts")[0].body
    assert body["utterances"][0] == {"text": text, "voice": {"id": VOICE}}
    assert body["format"] == {"type": "pcm"} and body["instant_mode"] is True


async def test_openai_http_500_hands_the_turn_to_hume(openai_emu, hume_emu):
    openai_emu.set_behavior("speech", fault=Fault.HTTP_500, fault_count=None)
    tts = failover(("openai", openai_tts(openai_emu)), ("hume", hume_tts(hume_emu)), timeout_s=5)

    audio, errors = await speak(tts, "Fix the login bug first.")

    assert not errors
    assert rms(b"".join(f.audio for f in audio)) > 1000
    # The OpenAI SDK retries a 500 twice before the service gives up.
    assert [r.fault for r in openai_emu.recorded("speech")] == ["http_500"] * 3
    assert heard(hume_emu, "tts") == ["Fix the login bug first."]
    assert tts.active_name == "hume"


async def test_openai_stall_times_out_to_deepgram(openai_emu, deepgram_emu, session):
    openai_emu.set_behavior("speech", fault=Fault.STALL)
    tts = failover(
        ("openai", openai_tts(openai_emu)),
        ("deepgram", deepgram_tts(deepgram_emu, session)),
        timeout_s=0.4,
    )

    started = time.monotonic()
    audio, errors = await speak(tts, "Ship onboarding today.")

    assert not errors
    assert time.monotonic() - started >= 0.4
    assert seconds(audio) == pytest.approx(len("Ship onboarding today.") * 0.06, rel=0.1)
    assert heard(openai_emu, "speech") == ["Ship onboarding today."]
    assert openai_emu.recorded("speech")[0].fault == "stall"
    assert heard(deepgram_emu, "speak") == ["Ship onboarding today."]
    assert deepgram_emu.recorded("speak")[0].query["sample_rate"] == str(RATE)


async def test_drop_mid_stream_is_spoken_again_by_the_next_service(
    openai_emu, deepgram_emu, session
):
    text = "Answer the email from Sam."
    openai_emu.set_behavior("speech", fault=Fault.DROP, fault_after=6)
    tts = failover(
        ("openai", openai_tts(openai_emu)), ("deepgram", deepgram_tts(deepgram_emu, session))
    )

    audio, errors = await speak(tts, text)

    assert not errors
    # OpenAI sends 600 ms before the cut, of which pipecat passes on one 500 ms frame; then
    # Deepgram speaks the whole sentence again.
    assert seconds(audio) == pytest.approx(0.5 + len(text) * 0.06, rel=0.05)
    assert heard(openai_emu, "speech") == [text]
    assert heard(deepgram_emu, "speak") == [text]
    assert tts.active_name == "deepgram"


async def test_every_service_failing_pushes_an_error_and_the_next_turn_still_speaks(
    openai_emu, deepgram_emu, hume_emu, session
):
    openai_emu.set_behavior("speech", fault=Fault.STALL, fault_count=1)
    deepgram_emu.set_behavior("speak", fault=Fault.DROP, fault_count=1)
    hume_emu.set_behavior("tts", fault=Fault.HTTP_500, fault_count=None)
    tts = failover(
        ("openai", openai_tts(openai_emu)),
        ("deepgram", deepgram_tts(deepgram_emu, session)),
        ("hume", hume_tts(hume_emu)),
        timeout_s=0.3,
        stop_frame_timeout_s=0.8,
    )

    audio, errors = await speak(tts, "First sentence.", "Second sentence.")

    # pipecat adds its own "completed with no audio" error for the silent turn.
    assert "every TTS service failed to speak: 'First sentence.'" in errors[0].error
    assert all("Second sentence." not in e.error for e in errors)
    assert heard(openai_emu, "speech") == ["First sentence.", "Second sentence."]
    assert heard(deepgram_emu, "speak") == ["First sentence."]
    assert heard(hume_emu, "tts") == ["First sentence."]
    assert seconds(audio) == pytest.approx(len("Second sentence.") * 0.06, rel=0.1)
    assert tts.active_name == "openai"


async def test_factory_builds_the_failover_order_from_settings(
    openai_emu, deepgram_emu, hume_emu, session
):
    settings = Settings(
        _env_file=None,
        kane_tts="openai,deepgram,hume",
        openai_api_key=KEY,
        openai_base_url=openai_emu.base_url,
        deepgram_api_key=KEY,
        deepgram_base_url=deepgram_emu.base_url,  # ws://, as the STT uses it
        hume_api_key=KEY,
        hume_base_url=hume_emu.url,
        hume_voice_id=VOICE,
        kane_tts_timeout_s=0.4,
    )
    openai_emu.set_behavior("speech", fault=Fault.STALL)
    tts = build_tts(settings, session)

    assert [name for name, _ in tts._services] == ["openai", "deepgram", "hume"]
    audio, errors = await speak(tts, "One quest.", "Two quests.")

    assert not errors
    assert seconds(audio) == pytest.approx(len("One quest.Two quests.") * 0.06, rel=0.1)
    assert heard(openai_emu, "speech") == ["One quest."]
    assert heard(deepgram_emu, "speak") == ["One quest.", "Two quests."]
    assert deepgram_emu.recorded("speak")[0].query["model"] == "aura-2-thalia-en"
    assert heard(hume_emu, "tts") == []


async def test_a_failover_longer_than_the_stop_frame_timeout_keeps_the_turn_whole(
    openai_emu, hume_emu
):
    # In production both KANE_TTS_TIMEOUT_S and pipecat's stop_frame_timeout_s are 3 s.
    openai_emu.set_behavior("speech", fault=Fault.STALL)
    tts = failover(
        ("openai", openai_tts(openai_emu)),
        ("hume", hume_tts(hume_emu)),
        timeout_s=0.6,
        stop_frame_timeout_s=0.3,
    )

    down, up = await run_test(tts, frames_to_send=[TTSSpeakFrame("Fix the login bug first.")])

    kinds = [
        type(f).__name__
        for f in down
        if isinstance(f, TTSStartedFrame | TTSAudioRawFrame | TTSStoppedFrame)
    ]
    assert of_type(down, TTSAudioRawFrame)
    assert kinds[0] == "TTSStartedFrame" and kinds.count("TTSStoppedFrame") == 1
    assert kinds[-1] == "TTSStoppedFrame"
    assert not of_type(up, ErrorFrame)
