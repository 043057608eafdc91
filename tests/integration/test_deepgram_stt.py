import asyncio
import inspect
import random

import pytest
from deepgram.listen.v1 import client as listen_v1_client
from pipecat.frames.frames import (
    InterimTranscriptionFrame,
    STTUpdateSettingsFrame,
    TranscriptionFrame,
    VADUserStartedSpeakingFrame,
    VADUserStoppedSpeakingFrame,
)
from pipecat.pipeline.worker import PipelineParams
from pipecat.services.deepgram.stt import DeepgramSTTService
from pipecat.services.stt_service import STTService
from pipecat.tests.utils import SleepFrame, run_test

from emulators import DeepgramEmulator
from services.deepgram_stt import KaneDeepgramSTTService
from tests.support.emulators import audio_frames, of_type, speech_then_silence

PARAMS = PipelineParams(audio_in_sample_rate=16_000)
BYTES_PER_MS = 32  # 16 kHz, 16-bit mono


@pytest.fixture
async def emu():
    async with DeepgramEmulator() as emulator:
        yield emulator


def kane_stt(emu: DeepgramEmulator, **kwargs) -> KaneDeepgramSTTService:
    return KaneDeepgramSTTService(api_key="test-key", base_url=emu.base_url, **kwargs)


def noise(ms: int, seed: int = 7) -> bytes:
    """Audio no two chunks of which are alike, so any reordering shows."""
    return random.Random(seed).randbytes(ms * BYTES_PER_MS)


async def test_socket_opens_without_permessage_deflate_and_only_kanes(emu):
    frames = audio_frames(noise(200))

    await run_test(kane_stt(emu), frames_to_send=frames, pipeline_params=PARAMS)
    stock = DeepgramSTTService(api_key="test-key", base_url=emu.base_url)
    await run_test(stock, frames_to_send=frames, pipeline_params=PARAMS)

    kane_session, stock_session = emu.listen_sessions
    kane_request, stock_request = emu.recorded("listen")
    assert not kane_session.deflate
    assert "sec-websocket-extensions" not in {k.lower() for k in kane_request.headers}
    # The emulator does agree to deflate when offered, and other Deepgram sockets in
    # the process still offer it.
    assert stock_session.deflate
    assert "permessage-deflate" in stock_request.headers["Sec-WebSocket-Extensions"]


@pytest.mark.parametrize(("frame_ms", "chunk_ms"), [(10, 40), (20, 40), (20, 100)])
async def test_audio_arrives_whole_and_in_order_in_chunks(emu, frame_ms, chunk_ms):
    audio = noise(1380)
    stt = kane_stt(emu, chunk_ms=chunk_ms)

    await run_test(
        stt, frames_to_send=audio_frames(audio, frame_ms=frame_ms), pipeline_params=PARAMS
    )

    chunk = chunk_ms * BYTES_PER_MS
    whole, rest = divmod(len(audio), chunk)
    assert rest, "the audio is chosen to leave a remainder"
    # The remainder goes out at the end (EndFrame), before the socket is closed.
    assert emu.listen_sessions[0].received == [chunk] * whole + [rest, "CloseStream"]
    assert bytes(emu.recorded("listen")[0].audio) == audio


async def test_rest_of_the_turn_reaches_deepgram_before_finalize(emu):
    emu.script_utterance("Ship the onboarding flow today")
    frames = audio_frames(speech_then_silence(1.0, 0.1))
    frames = [f for f in frames if len(f.audio) == 640]
    if len(frames) % 2 == 0:
        frames = frames[:-1]  # an odd number of 20 ms frames leaves 20 ms buffered
    turn = b"".join(f.audio for f in frames)

    down, _ = await run_test(
        kane_stt(emu),
        frames_to_send=[
            VADUserStartedSpeakingFrame(),
            *frames,
            VADUserStoppedSpeakingFrame(stop_secs=0.2),
            SleepFrame(sleep=0.8),
        ],
        pipeline_params=PARAMS,
    )

    received = emu.listen_sessions[0].received
    before_finalize = received[: received.index("Finalize")]
    assert before_finalize[-1] == 640
    assert sum(before_finalize) == len(turn)
    assert bytes(emu.recorded("listen")[0].audio) == turn
    finals = of_type(down, TranscriptionFrame)
    assert [f.text for f in finals] == ["Ship the onboarding flow today"]
    assert finals[0].finalized, "the transcript answers Finalize, so it carried the whole turn"


async def test_the_final_transcript_goes_on_in_the_loop_turn_its_answer_arrived_in(emu):
    # Pipecat's STT awaits its cancelled TTFB timeout before pushing a final transcript;
    # KANE's does not give the loop away there. A callback scheduled as Deepgram's answer
    # arrives must not have run by the time the transcript is pushed.
    emu.script_utterance("Ship the onboarding flow today")
    stt = kane_stt(emu)
    arrived: list[list[bool]] = []
    pushed: list[bool] = []
    on_message = stt._on_message

    async def noting_arrival(message):
        if getattr(message, "is_final", False):
            ran = [False]
            arrived.append(ran)
            asyncio.get_running_loop().call_soon(ran.__setitem__, 0, True)
        await on_message(message)

    def noting_push(processor, frame):
        if isinstance(frame, TranscriptionFrame):
            pushed.append(arrived[-1][0])

    stt._on_message = noting_arrival  # the SDK is handed the method when the socket opens
    stt.add_event_handler("on_before_push_frame", noting_push)
    down, _ = await run_test(
        stt,
        frames_to_send=[
            VADUserStartedSpeakingFrame(),
            *audio_frames(speech_then_silence(1.0, 0.1)),
            VADUserStoppedSpeakingFrame(stop_secs=0.2),
            SleepFrame(sleep=0.8),
        ],
        pipeline_params=PARAMS,
    )

    finals = of_type(down, TranscriptionFrame)
    assert [f.text for f in finals] == ["Ship the onboarding flow today"]
    assert finals[0].finalized
    assert pushed == [False], "the loop turned between Deepgram's answer and the transcript"


async def test_interim_and_final_transcripts_come_back(emu):
    emu.script_utterance("My main quest is the onboarding flow")
    stt = kane_stt(emu, settings=KaneDeepgramSTTService.Settings(interim_results=True))

    down, _ = await run_test(
        stt,
        frames_to_send=[*audio_frames(speech_then_silence(1.5, 0.6)), SleepFrame(sleep=1.0)],
        pipeline_params=PARAMS,
    )

    interims = of_type(down, InterimTranscriptionFrame)
    finals = of_type(down, TranscriptionFrame)
    assert interims and interims[0].text.startswith("My")
    assert [f.text for f in finals] == ["My main quest is the onboarding flow"]


async def test_reconnect_sends_the_rest_to_the_old_socket_before_closing_it(emu):
    first, second = noise(500, seed=1), noise(500, seed=2)
    settings = STTUpdateSettingsFrame(delta=KaneDeepgramSTTService.Settings(model="nova-3-medical"))

    await run_test(
        kane_stt(emu),
        frames_to_send=[
            *audio_frames(first),
            SleepFrame(sleep=0.3),
            settings,
            SleepFrame(sleep=0.5),
            *audio_frames(second),
        ],
        pipeline_params=PARAMS,
    )

    old, new = emu.listen_sessions
    assert old.received == [1280] * 12 + [640, "CloseStream"]
    assert new.received == [1280] * 12 + [640, "CloseStream"]
    old_request, new_request = emu.recorded("listen")
    assert new_request.query["model"] == "nova-3-medical"
    assert bytes(old_request.audio) + bytes(new_request.audio) == first + second
    assert not new.deflate


def test_chunk_ms_must_be_positive():
    with pytest.raises(ValueError):
        KaneDeepgramSTTService(api_key="test-key", chunk_ms=0)


def test_the_pipecat_and_sdk_hooks_it_relies_on_are_unchanged():
    # The service overrides these; each must still exist, take only self, and be where
    # the stock service connects (in a task of its own), finalizes and closes.
    for name in ("_connection_handler", "_disconnect"):
        method = getattr(DeepgramSTTService, name)
        assert inspect.iscoroutinefunction(method)
        assert list(inspect.signature(method).parameters) == ["self"]
    assert "self.create_task(self._connection_handler())" in inspect.getsource(
        DeepgramSTTService._connect
    )
    assert "self._client.listen.v1.connect(" in inspect.getsource(
        DeepgramSTTService._connection_handler
    )
    assert "send_finalize" in inspect.getsource(DeepgramSTTService.process_frame)
    # `_cancel_ttfb_timeout` is Pipecat's; the final transcript's push awaits it.
    assert list(inspect.signature(STTService._cancel_ttfb_timeout).parameters) == ["self"]
    assert "await self._cancel_ttfb_timeout()" in inspect.getsource(STTService.push_frame)
    assert "send_close_stream" in inspect.getsource(DeepgramSTTService._disconnect)
    connect = listen_v1_client.websockets_client_connect
    assert "compression" in inspect.signature(connect).parameters
