"""The phone link's sending: the protocol in order, LiveKit's conventions beside it."""

from __future__ import annotations

import asyncio
import json

from loguru import logger

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
        self.acknowledgements_wait = False  # a packet's acknowledgement waits for `release`
        self.let_go = 0  # sends that ended without their acknowledgement

    def on_topic(self, topic, handler) -> None:
        pass

    async def publish(self, payload: bytes, *, topic: str) -> bool:
        # As LiveKit's: the packet is queued for the room, then acknowledged.
        self.packets.append(json.loads(payload))
        self.arrived.set()
        if self.acknowledgements_wait:
            try:
                await self.release.wait()
            except BaseException:
                self.let_go += 1
                raise
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


async def test_a_message_is_handed_over_to_the_room_in_the_callers_turn():
    transport = SlowStreams()
    transport.acknowledgements_wait = True
    link = link_to(transport)
    link.start()
    link.send(PartialTranscript(text="my main quest"))
    link.send(draft())
    # Both at once, in order, before either is acknowledged (the room keeps their order).
    assert [p["type"] for p in transport.packets] == ["partial_transcript", "quest_draft"]
    assert [p["seq"] for p in transport.packets] == [1, 2]
    transport.release.set()
    await link.close()
    assert transport.let_go == 0


async def test_past_the_most_unacknowledged_packets_messages_wait_their_turn(monkeypatch):
    monkeypatch.setattr("tap.phone.MOST_HANDED_OVER", 2)
    transport = SlowStreams()
    transport.acknowledgements_wait = True
    link = link_to(transport)
    link.start()
    for text in ("a", "b", "c"):
        link.send(PartialTranscript(text=text))
    await asyncio.sleep(0.01)
    assert [p["data"]["text"] for p in transport.packets] == ["a", "b"]
    link.send(draft())  # queued behind "c", not handed over before it
    transport.release.set()
    await link.close()
    assert [p["seq"] for p in transport.packets] == [1, 2, 3, 4]
    assert [p["type"] for p in transport.packets][2:] == ["partial_transcript", "quest_draft"]


async def test_messages_sent_before_the_start_go_in_order_once_it_starts():
    transport = SlowStreams()
    link = link_to(transport)
    link.send(PartialTranscript(text="my main quest"))
    link.send(draft())
    assert transport.packets == []
    link.start()
    link.send(BotState(state="thinking"))  # after the two queued, not before them
    assert transport.packets == []
    await link.close()
    types = [p["type"] for p in transport.packets]
    assert types == ["partial_transcript", "quest_draft", "bot_state"]


class RefusingRoom(SlowStreams):
    """Refuses the first packet before it waits for anything, as a closed room may."""

    def __init__(self) -> None:
        super().__init__()
        self.refusals = 1

    async def publish(self, payload: bytes, *, topic: str) -> bool:
        if self.refusals:
            self.refusals -= 1
            raise ConnectionError("room closed")
        return await super().publish(payload, topic=topic)


async def test_a_packet_the_room_refuses_is_logged_and_the_next_ones_still_go():
    warnings: list[str] = []
    sink = logger.add(warnings.append, level="WARNING", format="{message}")
    try:
        transport = RefusingRoom()
        link = link_to(transport)
        link.start()
        link.send(PartialTranscript(text="lost"))
        link.send(draft())
        await link.close()
    finally:
        logger.remove(sink)
    assert [p["type"] for p in transport.packets] == ["quest_draft"]
    assert any("partial_transcript not sent: room closed" in m for m in warnings)


async def test_an_acknowledgement_that_never_comes_does_not_hold_the_close():
    transport = SlowStreams()  # never released
    transport.acknowledgements_wait = True
    link = link_to(transport)
    link.start()
    for text in ("a", "b", "c"):
        link.send(PartialTranscript(text=text))
    async with asyncio.timeout(1.0):
        await link.close(timeout_s=0.1)
    assert len(transport.packets) == 3
    assert transport.let_go == 3  # each send let go of its wait, none left behind
