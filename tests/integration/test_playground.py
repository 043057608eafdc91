"""The playground: a real WebRTC peer (aiortc, on this machine) talks to KANE through it.

The worker's app runs in-process with the offline engines (faster-whisper, the rules coach,
eSpeak NG) and a real embedded PostgreSQL; the peer posts its offer like the page does.
"""

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from api.server import create_app
from settings import Settings
from tests.support.webrtc_peer import PlaygroundPeer

pytestmark = pytest.mark.slow


def playground_settings(database_dsn: str, data_dir: Path, **overrides) -> Settings:
    values = {
        "_env_file": None,
        "kane_env": "development",
        "kane_playground": True,
        "database_url": database_dsn,
        "kane_data_dir": data_dir,
        # No keys: every stage runs offline.
        "deepgram_api_key": None,
        "openai_api_key": None,
        "hume_api_key": None,
        "livekit_url": None,
        "livekit_api_key": None,
        "livekit_api_secret": None,
        "kane_stt": "whisper",
        "kane_llm": "rules",
        "kane_tts": ["espeak"],
        # Every packet on 127.0.0.1: no interface of this machine is used.
        "kane_playground_ice": "loopback",
        **overrides,
    }
    return Settings(**values)


@pytest.fixture
async def app(database_dsn: str, tmp_path: Path) -> AsyncIterator[FastAPI]:
    app = create_app(playground_settings(database_dsn, tmp_path / "data"))
    async with app.router.lifespan_context(app):
        yield app


def client_of(app: FastAPI, host: str = "127.0.0.1") -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=(host, 50123))
    return httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:7860", timeout=30)


async def health(app: FastAPI) -> dict:
    async with client_of(app) as http:
        return (await http.get("/health")).json()


async def wait_for_ending(app: FastAPI, session_id: str, timeout_s: float) -> dict:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        body = await health(app)
        endings = [e for e in body["sessions"]["recent_endings"] if e["session_id"] == session_id]
        if endings:
            return endings[0]
        await asyncio.sleep(0.1)
    raise TimeoutError(f"session {session_id} did not end: {await health(app)}")


async def test_a_webrtc_peer_talks_to_a_session_and_hears_kane(app, onboarding_wav):
    peer = PlaygroundPeer()
    try:
        async with client_of(app) as http:
            began = time.monotonic()
            response = await http.post(
                "/playground/offer", json={**await peer.offer(), "user_id": "ada"}
            )
            answered_s = time.monotonic() - began
        assert response.status_code == 200, response.text
        answer = response.json()
        assert answer["type"] == "answer" and answer["sdp"].startswith("v=0")
        await peer.accept(answer)

        started = await peer.wait_for("session_started", timeout_s=20)
        started_s = time.monotonic() - began
        assert started["session_id"] == answer["session_id"]
        assert started["data"]["user_id"] == "ada"
        assert "whisper" in started["data"]["engines"]["stt"]
        assert (await health(app))["sessions"]["active"] == 1

        # The phone's messages reach the session: a good one is taken, a bad one answered.
        peer.send("hello", {"app_version": "test", "capabilities": ["quest_drafts"]})
        peer.send("ui_state", {"current_screen": "playground", "visible_quest_ids": "q1"})
        error = await peer.wait_for("error", timeout_s=5)
        assert error["data"]["code"] == "invalid" and "ui_state" in error["data"]["message"]
        assert len(peer.messages("error")) == 1  # hello was fine

        # KANE greets by voice (eSpeak NG), then hears the person (faster-whisper).
        await peer.wait_for_bot_audio(1.0, timeout_s=30)
        await peer.wait_for("bot_state", 30, lambda d: d["state"] == "listening")
        peer.microphone.say(onboarding_wav)
        await peer.microphone.finished_saying.wait()
        said = time.monotonic()
        final = await peer.wait_for(
            "final_transcript", 30, lambda d: "onboarding" in d["text"].lower()
        )
        heard_s = time.monotonic() - said
        assert "main quest" in final["data"]["text"].lower(), final

        # LiveKit's conventions travel as text and attribute packets.
        texts = [p for p in peer.packets if p["type"] == "text"]
        assert any(
            p["topic"] == "lk.transcription" and "onboarding" in p["text"].lower() for p in texts
        )
        assert any(
            p["type"] == "attributes" and "lk.agent.state" in p["attributes"] for p in peer.packets
        )
        seqs = [m["seq"] for m in peer.messages()]
        assert seqs == list(range(1, len(seqs) + 1))

        # The page goes away: the session ends for that reason.
        await peer.close()
        left = time.monotonic()
        ending = await wait_for_ending(app, answer["session_id"], timeout_s=40)
        ended_s = time.monotonic() - left
        assert ending["reason"] == "the user left the room"
        print(
            f"offer answered in {answered_s * 1000:.0f} ms; session_started after "
            f"{started_s * 1000:.0f} ms; final transcript {heard_s * 1000:.0f} ms after the "
            f"speech; session ended {ended_s * 1000:.0f} ms after the peer closed"
        )
    finally:
        await peer.close()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"type": "offer"}, "sdp"),
        ({"sdp": "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n", "type": "answer"}, "type"),
        ({"sdp": "hello", "type": "offer"}, "sdp"),
        (
            {"sdp": "v=0\r\nm=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\n", "type": "offer"},
            "sdp",
        ),
        ({"sdp": "v=0\r\nm=audio nonsense\r\n", "type": "offer"}, "sdp"),
        ({"sdp": "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n", "type": "offer", "x": 1}, "x"),
        (
            {
                "sdp": "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n",
                "type": "offer",
                "user_id": "a b",
            },
            "user_id",
        ),
        (
            {
                "sdp": "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n",
                "type": "offer",
                "user_id": "kane",
            },
            "user_id",
        ),
    ],
)
async def test_a_bad_offer_is_422_naming_the_field_and_starts_nothing(app, body, field):
    async with client_of(app) as http:
        response = await http.post("/playground/offer", json=body)
    assert response.status_code == 422, response.text
    assert any(field in error["loc"] for error in response.json()["detail"])
    body = await health(app)
    assert body["sessions"]["active"] == 0 and body["sessions"]["recent_endings"] == []


async def test_at_capacity_an_offer_is_503_with_retry_after(database_dsn, tmp_path):
    app = create_app(playground_settings(database_dsn, tmp_path / "data", kane_max_sessions=1))
    first, second = PlaygroundPeer(), PlaygroundPeer()
    try:
        async with app.router.lifespan_context(app), client_of(app) as http:
            taken = await http.post("/playground/offer", json=await first.offer())
            assert taken.status_code == 200, taken.text
            refused = await http.post("/playground/offer", json=await second.offer())
            assert refused.status_code == 503
            assert refused.headers["retry-after"] == "30"
            assert (await health(app))["sessions"]["active"] == 1
    finally:
        await first.close()
        await second.close()


async def test_the_page_and_its_files_are_served_to_local_clients_only(app):
    async with client_of(app) as http:
        root = await http.get("/")
        assert root.status_code in (302, 307) and root.headers["location"] == "/playground"
        page = await http.get("/playground")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        for asset, kind in (("playground.js", "text/javascript"), ("playground.css", "text/css")):
            assert f"/playground/static/{asset}" in page.text
            served = await http.get(f"/playground/static/{asset}")
            assert served.status_code == 200 and served.headers["content-type"].startswith(kind)
        assert (await http.get("/playground/static/../server.py")).status_code == 404
        assert (await http.get("/playground/static/playground.html")).status_code == 404
    async with client_of(app, host="192.0.2.9") as remote:
        assert (await remote.get("/playground")).status_code == 403
        offer = {"sdp": "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n", "type": "offer"}
        assert (await remote.post("/playground/offer", json=offer)).status_code == 403


async def test_pages_elsewhere_cannot_reach_the_playground(app):
    offer = {"sdp": "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n", "type": "offer"}
    async with client_of(app) as http:
        # DNS rebinding: another site's name pointed at 127.0.0.1
        rebound = await http.get("/playground", headers={"Host": "evil.example:7860"})
        assert rebound.status_code == 403
        # A page of another site posting from the person's browser
        cross = await http.post(
            "/playground/offer", json=offer, headers={"Origin": "http://evil.example"}
        )
        assert cross.status_code == 403
        # The page itself, by any local name
        for host in ("localhost:7860", "[::1]:7860", "127.0.0.1"):
            page = await http.get("/playground", headers={"Host": host})
            assert page.status_code == 200, host


async def test_without_the_playground_there_are_no_routes(database_dsn, tmp_path):
    app = create_app(playground_settings(database_dsn, tmp_path / "data", kane_playground=False))
    async with app.router.lifespan_context(app), client_of(app) as http:
        assert (await http.get("/playground")).status_code == 404
        assert (await http.post("/playground/offer", json={})).status_code == 404
