import asyncio

import httpx
import openai
import pytest
from deepgram import AsyncDeepgramClient, DeepgramClientEnvironment
from deepgram.core.events import EventType
from hume import AsyncHumeClient
from hume.tts import FormatPcm, PostedUtterance, PostedUtteranceVoiceWithId
from openai import AsyncOpenAI

from emulators import Behavior, Fault, OpenAIEmulator
from tests.support.emulators import emulator_process, speech_then_silence


async def test_behavior_endpoint_updates_partially_and_rejects_unknown_fields():
    async with OpenAIEmulator() as emu, httpx.AsyncClient(base_url=emu.url) as http:
        updated = await http.post("/_emulator/behavior", json={"first_latency_s": 0.2})
        per_endpoint = await http.post(
            "/_emulator/behavior?endpoint=speech", json={"fault": "stall", "fault_count": 2}
        )
        bad = await http.post("/_emulator/behavior", json={"latency": 1})
        current = await http.get("/_emulator/behavior")

    assert updated.json()["first_latency_s"] == 0.2 and updated.json()["fault"] == "none"
    assert per_endpoint.json()["fault"] == "stall"
    assert emu.behavior_for("speech").fault_count == 2
    assert emu.behavior_for("chat") is emu.behavior
    assert bad.status_code == 400
    assert current.json() == Behavior(first_latency_s=0.2).to_dict()


def test_fault_count_runs_out():
    behavior = Behavior(fault=Fault.DROP, fault_count=2)

    claimed = [behavior.claim_fault() for _ in range(3)]

    assert claimed == [Fault.DROP, Fault.DROP, Fault.NONE]
    assert behavior.fault is Fault.NONE


async def test_reset_restores_defaults():
    async with OpenAIEmulator() as emu, httpx.AsyncClient(base_url=emu.url) as http:
        emu.script_reply("scripted")
        emu.set_behavior(fault=Fault.HTTP_500)
        await http.post("/_emulator/reset")

    assert not emu.replies and emu.behavior == Behavior() and emu.requests == []


@pytest.mark.slow
async def test_subprocess_emulators_are_steered_through_the_control_endpoint():
    async with emulator_process() as urls, httpx.AsyncClient() as http:
        control = urls["control"]
        await http.post(f"{control['openai']}/_emulator/script", json={"replies": ["Scripted!"]})
        await http.post(
            f"{control['deepgram']}/_emulator/script", json={"utterances": ["Out of process"]}
        )
        client = AsyncOpenAI(api_key="k", base_url=urls["openai"], max_retries=0)
        reply = await client.chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": "hello"}]
        )
        await http.post(f"{control['openai']}/_emulator/behavior", json={"fault": "http_500"})
        with pytest.raises(openai.InternalServerError):
            await client.chat.completions.create(model="gpt-4o", messages=[])
        recorded = (await http.get(f"{control['openai']}/_emulator/requests")).json()

        environment = DeepgramClientEnvironment(
            base=control["deepgram"],
            production=urls["deepgram"],
            agent=urls["deepgram"],
            agent_rest=control["deepgram"],
        )
        transcripts = []
        deepgram = AsyncDeepgramClient(api_key="k", environment=environment)
        async with deepgram.listen.v1.connect(model="nova-3", sample_rate="16000") as conn:

            async def on_message(message):
                if message.type == "Results":
                    transcripts.append(message.channel.alternatives[0].transcript)

            conn.on(EventType.MESSAGE, on_message)
            listening = asyncio.create_task(conn.start_listening())
            await conn.send_media(speech_then_silence(0.5, 0.5))
            await conn.send_close_stream()
            await asyncio.wait_for(listening, timeout=5)

        hume = AsyncHumeClient(api_key="k", base_url=urls["hume"])
        chunks = [
            c
            async for c in hume.tts.synthesize_json_streaming(
                utterances=[PostedUtterance(text="Hi", voice=PostedUtteranceVoiceWithId(id="v"))],
                format=FormatPcm(type="pcm"),
            )
        ]

    assert reply.choices[0].message.content == "Scripted!"
    assert [r["body"]["messages"] for r in recorded][0] == [{"role": "user", "content": "hello"}]
    assert [r["fault"] for r in recorded] == ["none", "http_500"]
    assert transcripts == ["out of process"]
    assert chunks
