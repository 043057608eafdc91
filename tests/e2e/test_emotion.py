"""A turn's feeling reaches the phone and the voice."""

import pytest

from tests.e2e.conftest import join
from tests.support.speech import ONBOARDING_SENTENCE

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


async def test_a_turn_changes_the_emotion_on_the_phone_and_the_tone_of_the_voice(
    worker, stt, openai, onboarding_wav
):
    stt.script_utterance(ONBOARDING_SENTENCE)
    grant, client = await join(worker, "ada")
    try:
        assert await client.wait_for_bot_audio(timeout_s=20, after=0.0) is not None
        assert await client.wait_for_bot_silence(0.8, timeout_s=20)
        greeting_requests = len(openai.recorded("speech"))
        await client.speak(onboarding_wav)
        changed = await client.wait_for_message(type="emotion_changed", timeout_s=20)
        assert changed is not None, "no emotion_changed reached the phone"
        data = changed.payload["data"]
        assert data["label"] in {
            "calm",
            "excited",
            "stressed",
            "tired",
            "frustrated",
            "uncertain",
            "neutral",
        }
        assert -1 <= data["valence"] <= 1 and 0 <= data["arousal"] <= 1
        assert await client.wait_for_bot_audio(timeout_s=20) is not None
        assert await client.wait_for_bot_silence(0.8, timeout_s=20)
    finally:
        await client.close()
    answers = openai.recorded("speech")[greeting_requests:]
    assert answers, "KANE did not answer"
    assert all(r.body.get("instructions") for r in answers), [
        (r.body.get("input"), r.body.get("instructions")) for r in openai.recorded("speech")
    ]
    assert not openai.recorded("speech")[0].body.get("instructions")  # the greeting had none
