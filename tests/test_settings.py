import pytest
from pydantic import ValidationError

from settings import Settings


def make(**values) -> Settings:
    return Settings(_env_file=None, **values)


def test_tts_list_is_a_failover_order_and_keyless_engines_are_left_out():
    s = make(kane_tts="hume, openai ,deepgram", openai_api_key="k", deepgram_api_key="d")
    assert s.kane_tts == ["hume", "openai", "deepgram"]
    assert s.usable_tts() == ["openai", "deepgram"]


def test_hume_needs_a_voice_as_well_as_a_key():
    s = make(kane_tts="hume", hume_api_key="h")
    assert s.usable_tts() == []
    assert make(kane_tts="hume", hume_api_key="h", hume_voice_id="v").usable_tts() == ["hume"]


def test_default_voice_is_one_that_works_today():
    assert make().kane_tts[0] == "openai"
    assert "hume" not in make().kane_tts


@pytest.mark.parametrize("value", ["", "openai,openai", "espeak"])
def test_bad_tts_list_is_refused(value):
    with pytest.raises(ValidationError):
        make(kane_tts=value)


def test_missing_keys_are_named_in_one_list():
    missing = make().missing_keys()
    assert any("DEEPGRAM_API_KEY" in m for m in missing)
    assert any("OPENAI_API_KEY" in m for m in missing)
    assert any("LIVEKIT_URL" in m for m in missing)


def test_partial_livekit_configuration_is_refused():
    with pytest.raises(ValidationError, match="LIVEKIT"):
        make(livekit_url="ws://127.0.0.1:7880")


def test_secrets_never_show_in_repr():
    s = make(
        openai_api_key="sk-very-secret",
        livekit_api_secret="lk-secret",
        livekit_url="ws://x",
        livekit_api_key="devkey",
    )
    assert "sk-very-secret" not in repr(s) and "lk-secret" not in repr(s)
