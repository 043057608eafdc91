"""The playground in a real browser: Chromium speaks into the page, KANE's quests appear on it.

Debian's headless Chromium, driven over the DevTools protocol, gets a fake microphone that
plays the onboarding sentence (eSpeak NG, 48 kHz, in a loop with pauses). The worker runs as
a process with no cloud keys, so every stage is offline: faster-whisper, the rules coach,
eSpeak NG.
Skipped without Chromium locally; fails under ``CI=true``.
"""

import os
import re
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.support.chromium import Page, chromium_page, require_chromium
from tests.support.speech import ONBOARDING_SENTENCE, speech_wav
from tests.support.worker import WorkerProcess, running_worker

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

SCREENSHOT = Path(os.environ.get("KANE_PLAYGROUND_SCREENSHOT", "/tmp/kane-playground.png"))


def card_with(container: str, word: str) -> str:
    """JavaScript: the text of the first card in `container` that mentions `word`."""
    return (
        f"[...document.querySelectorAll('{container} .card')]"
        f".map((card) => card.textContent).find((text) => /{word}/i.test(text)) || ''"
    )


BOT_AUDIO_ENERGY = """
(async () => {
  if (!session.pc) return 0;
  const stats = await session.pc.getStats();
  let energy = 0;
  stats.forEach((s) => {
    if (s.type === 'inbound-rtp' && s.kind === 'audio') energy += s.totalAudioEnergy || 0;
  });
  return energy;
})()
"""

SELECTED_PAIR = """
(async () => {
  const stats = await session.pc.getStats();
  const byId = new Map();
  stats.forEach((s) => byId.set(s.id, s));
  for (const s of byId.values()) {
    if (s.type === 'transport' && s.selectedCandidatePairId) {
      const pair = byId.get(s.selectedCandidatePairId);
      return [byId.get(pair.localCandidateId).address, byId.get(pair.remoteCandidateId).address];
    }
  }
  return [];
})()
"""


@pytest.fixture
async def playground_worker(database_dsn: str, tmp_path: Path) -> AsyncIterator[WorkerProcess]:
    require_chromium()
    env = {
        "KANE_ENV": "development",
        "KANE_PLAYGROUND": "true",
        "KANE_PLAYGROUND_ICE": "loopback",
        "DATABASE_URL": database_dsn,
        "KANE_DATA_DIR": str(tmp_path / "data"),
        # Empty keys win over the developer's shell and .env: the offline engines run.
        "DEEPGRAM_API_KEY": "",
        "OPENAI_API_KEY": "",
        "HUME_API_KEY": "",
        "KANE_STT": "auto",
        "KANE_LLM": "auto",
        "KANE_TTS": "openai,deepgram,espeak",
        "LIVEKIT_URL": "",
        "LIVEKIT_API_KEY": "",
        "LIVEKIT_API_SECRET": "",
    }
    async with running_worker(env, tmp_path / "worker.log") as process:
        yield process


async def test_a_browser_talks_and_the_main_quest_appears(playground_worker):
    worker = playground_worker
    # The sentence, then silence long enough to end the turn, over and over.
    microphone = speech_wav(ONBOARDING_SENTENCE, sample_rate=48000, trailing_silence_s=6.0)
    health = await worker.health()
    assert health["playground"] is True
    assert "offline" in health["engines"]["stt"] and "rules coach" in health["engines"]["llm"]

    async with chromium_page(fake_microphone=microphone) as page:
        try:
            await talk_until_the_quest_appears(page, worker)
        except Exception:
            # What the page showed and heard, for whoever reads the failure.
            await page.screenshot(SCREENSHOT.with_name(f"{SCREENSHOT.stem}-failed.png"))
            print(await page.evaluate("document.getElementById('log').textContent"))
            print("\n".join(page.console))
            print(worker.log()[-5000:])
            raise


async def talk_until_the_quest_appears(page: Page, worker: WorkerProcess) -> None:
    """Start talking, see the main quest form, hear KANE, hang up."""
    await page.goto(f"{worker.base_url}/playground")
    assert await page.evaluate("document.title") == "KANE playground"
    await page.evaluate("document.getElementById('start').click()")
    began = time.monotonic()

    # session_started names the engines
    await page.wait_for(
        "document.getElementById('engines').textContent.includes('whisper')", timeout_s=30
    )
    connected_s = time.monotonic() - began
    # A draft card forms while the sentence is spoken; the quest card follows the turn.
    await page.wait_for(
        f"({card_with('#drafts', 'onboarding')}) || ({card_with('#quests', 'onboarding')})",
        timeout_s=120,  # the sentence comes round every 9 s; whisper may mishear a few
    )
    first_card_s = time.monotonic() - began
    quest = await page.wait_for(card_with("#quests", "onboarding"), timeout_s=60)
    if "main quest" not in quest.lower():
        # Whisper misheard the opening ("We have to ship the onboarding flow."), so the quest
        # came in as a side quest. The sentence comes round again and "my main quest" makes it
        # the main one, as a person who says it again sees.
        main = f"(() => {{ const text = {card_with('#quests', 'onboarding')}; "
        main += "return /main quest/i.test(text) ? text : ''; })()"
        quest = await page.wait_for(main, timeout_s=60)
    quest_s = time.monotonic() - began
    assert "main quest" in quest.lower(), quest
    messages = await page.evaluate("document.getElementById('log').textContent")
    assert re.search(r"quest_draft .*onboarding", messages, re.IGNORECASE), messages

    # KANE's voice reached the browser, and its words the page, all over loopback.
    assert await page.wait_for(BOT_AUDIO_ENERGY, timeout_s=10) > 0
    assert await page.evaluate(SELECTED_PAIR) == ["127.0.0.1", "127.0.0.1"]
    await page.wait_for("document.querySelectorAll('.bubble.kane').length >= 2", timeout_s=20)
    await page.wait_for("document.querySelectorAll('.bubble.user').length >= 1", timeout_s=10)
    state = await page.evaluate("document.getElementById('state').dataset.state")
    assert state in ("listening", "thinking", "speaking"), state
    errors = await page.evaluate("document.getElementById('errors').textContent")
    assert errors == "", errors

    await page.screenshot(SCREENSHOT)
    print(
        f"session_started {connected_s:.2f} s after the click; first card at {first_card_s:.2f} s;"
        f" quest card at {quest_s:.2f} s; screenshot {SCREENSHOT}"
    )
    console_errors = [line for line in page.console if "exception" in line]
    assert console_errors == [], console_errors

    # Hanging up ends the session for that reason.
    await page.evaluate("document.getElementById('start').click()")
    hung_up = time.monotonic()
    ending = await worker.wait_for(lambda h: h["sessions"]["recent_endings"], timeout_s=40)
    assert ending[0]["reason"] == "the user left the room", ending
    print(f"session ended {time.monotonic() - hung_up:.2f} s after hanging up")
