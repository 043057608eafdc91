"""The phone link's sending: the protocol in order, LiveKit's conventions beside it."""

from __future__ import annotations

import asyncio
import json

from protocol import BotResponse, BotState, FinalTranscript, PartialTranscript, QuestDraft
from tap.phone import PhoneLink

SESSION = "6f1c1f5e-8d2a-4b8e-9a57-3a2f4f0c1d11"


class SlowStreams:
    """A transport whose text streams take until `release` is set; packets go at once."""

    def __init__(self) -> None:
        self.packets: list[dict] = []
        self.texts: list[tuple[str, dict[str, str]]] = []
        self.attributes: list[dict[str, str]] = []
        self.release = asyncio.Event()
        self.arrived = asyncio.Event()
        self.packets_wait = False  # packets too wait for `release`

    def on_topic(self, topic, handler) -> None:
        pass

    async def publish(self, payload: bytes, *, topic: str) -> bool:
        if self.packets_wait:
            await self.release.wait()
        self.packets.append(json.loads(payload))
        self.arrived.set()
        return True

    async def send_text(self, text, *, topic, attributes, sender_identity=None) -> None:
        await self.release.wait()
        self.texts.append((text, attributes))

    async def set_attributes(self, attributes) -> None:
        self.attributes.append(attributes)


def link_to(transport: SlowStreams) -> PhoneLink:
    async def nowhere(*args) -> None:
        pass

    return PhoneLink(
        transport=transport,  # type: ignore[arg-type]
        session_id=SESSION,
        user_identity="ada",
        journal=lambda kind, payload: None,
        push_frame=nowhere,
        store_ui=nowhere,
    )


def draft() -> QuestDraft:
    return QuestDraft(
        draft_id="d-1", title="Ship it", kind="main", confidence=0.7, source_words="ship it"
    )


async def packets(transport: SlowStreams, count: int) -> list[str]:
    """The types of the first `count` packets, once they have been published."""
    async with asyncio.timeout(2.0):
        while len(transport.packets) < count:
            transport.arrived.clear()
            await transport.arrived.wait()
    return [p["type"] for p in transport.packets]


async def test_a_draft_does_not_wait_for_the_transcripts_text_stream():
    transport = SlowStreams()
    link = link_to(transport)
    link.start()
    link.send(PartialTranscript(text="my main quest"))
    link.send(draft())
    assert await packets(transport, 2) == ["partial_transcript", "quest_draft"]
    assert transport.texts == []  # the stream is still on its way
    transport.release.set()
    await link.close()
    assert [text for text, _ in transport.texts] == ["my main quest"]


async def test_everything_queued_goes_out_in_order_before_the_link_closes():
    transport = SlowStreams()
    transport.release.set()
    link = link_to(transport)
    link.start()
    for message in (
        BotState(state="listening"),
        PartialTranscript(text="my main"),
        FinalTranscript(text="my main quest"),
        draft(),
        PartialTranscript(text="and"),
        BotResponse(text="Great choice."),
    ):
        link.send(message)
    await link.close()
    assert [p["seq"] for p in transport.packets] == [1, 2, 3, 4, 5, 6]
    assert transport.attributes == [{"lk.agent.state": "listening"}]
    streams = [(t, a["lk.segment_id"], a["lk.transcription_final"]) for t, a in transport.texts]
    assert streams == [
        ("my main", "user-0", "false"),
        ("my main quest", "user-0", "true"),
        ("and", "user-1", "false"),
        ("Great choice.", "kane-1", "true"),
    ]


async def test_a_stream_that_never_ends_does_not_hold_the_close():
    transport = SlowStreams()  # never released
    link = link_to(transport)
    link.start()
    link.send(PartialTranscript(text="my main quest"))
    link.send(draft())
    async with asyncio.timeout(1.0):
        await link.close(timeout_s=0.1)
    assert [p["type"] for p in transport.packets] == ["partial_transcript", "quest_draft"]
    assert transport.texts == []


async def test_what_a_call_sends_leaves_on_the_senders_next_turn():
    transport = SlowStreams()
    link = link_to(transport)
    link.start()
    await asyncio.sleep(0)  # the sender is waiting
    link.call_soon(lambda: link.send(draft()), within_s=1.0)
    await asyncio.sleep(0)  # one turn of the loop
    assert [p["type"] for p in transport.packets] == ["quest_draft"]
    await link.close()


async def test_only_a_call_that_is_not_next_for_the_sender_sets_a_timer(monkeypatch):
    transport = SlowStreams()
    link = link_to(transport)
    link.start()
    await asyncio.sleep(0)  # the sender is waiting
    loop = asyncio.get_running_loop()
    timers: list[float] = []
    call_later = loop.call_later

    def counted(delay, callback, *args, **kwargs):
        timers.append(delay)
        return call_later(delay, callback, *args, **kwargs)

    monkeypatch.setattr(loop, "call_later", counted)
    calls: list[str] = []
    link.call_soon(lambda: calls.append("next"), within_s=0.5)
    assert timers == []  # the frames' path pays no timer
    await asyncio.sleep(0)
    assert calls == ["next"]
    link.send(draft())
    link.call_soon(lambda: calls.append("after the draft"), within_s=0.5)
    assert timers == [0.5]  # behind a packet that may take a while
    monkeypatch.undo()
    await link.close()
    assert calls == ["next", "after the draft"]
    assert [p["type"] for p in transport.packets] == ["quest_draft"]


async def test_a_busy_sender_leaves_the_call_to_the_loop_and_never_makes_it_twice():
    transport = SlowStreams()
    transport.packets_wait = True
    link = link_to(transport)
    link.start()
    link.send(draft())  # in flight until released
    calls: list[float] = []
    link.call_soon(lambda: calls.append(asyncio.get_running_loop().time()), within_s=0.02)
    await asyncio.sleep(0.2)
    assert len(calls) == 1
    transport.release.set()
    await link.close()
    assert len(calls) == 1 and len(transport.packets) == 1


async def test_a_cancelled_call_is_not_made_and_calls_outside_the_links_life_still_are():
    transport = SlowStreams()
    link = link_to(transport)
    calls: list[str] = []
    link.call_soon(lambda: calls.append("before the start"), within_s=1.0)
    link.start()
    link.call_soon(lambda: calls.append("cancelled"), within_s=0.01).cancel()
    await asyncio.sleep(0.05)
    await link.close()
    link.call_soon(lambda: calls.append("after the close"), within_s=1.0)
    await asyncio.sleep(0)
    assert calls == ["before the start", "after the close"]
