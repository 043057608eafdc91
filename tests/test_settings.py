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
    assert s.usable_tts() == ["espeak"]  # nobody else can speak
    assert make(kane_tts="hume", hume_api_key="h", hume_voice_id="v").usable_tts() == ["hume"]


def test_default_voice_is_one_that_works_today():
    assert make().kane_tts[0] == "openai"
    assert "hume" not in make().kane_tts


def test_espeak_ends_the_default_failover_and_speaks_without_keys():
    assert make().kane_tts[-1] == "espeak"
    assert make().usable_tts() == ["espeak"]
    assert make(openai_api_key="k").usable_tts() == ["openai", "espeak"]


def test_without_keys_every_stage_runs_offline():
    s = make()
    assert (s.stt_engine, s.llm_engine) == ("whisper", "rules")
    engines = s.describe_engines()
    assert "faster-whisper" in engines["stt"] and "rules coach" in engines["llm"]
    assert "eSpeak" in engines["tts"]


def test_keys_choose_the_cloud_engines_unless_told_otherwise():
    s = make(openai_api_key="k", deepgram_api_key="d")
    assert (s.stt_engine, s.llm_engine) == ("deepgram", "openai")
    s = make(openai_api_key="k", deepgram_api_key="d", kane_stt="whisper", kane_llm="rules")
    assert (s.stt_engine, s.llm_engine) == ("whisper", "rules")


@pytest.mark.parametrize(("field", "key"), [("kane_stt", "DEEPGRAM"), ("kane_llm", "OPENAI")])
def test_a_cloud_engine_chosen_without_its_key_is_refused(field, key):
    with pytest.raises(ValidationError, match=key):
        make(**{field: "deepgram" if field == "kane_stt" else "openai"})


def test_playground_follows_development_unless_set():
    assert make().playground_enabled is False
    assert make(kane_env="development").playground_enabled is True
    assert make(kane_env="development", kane_playground=False).playground_enabled is False


@pytest.mark.parametrize("value", ["", "openai,openai", "espeak,whisper"])
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


def test_session_processes_are_one_per_core_unless_set(monkeypatch):
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: {0, 1, 2, 3})
    assert make().session_processes == 4
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: {0})
    assert make().session_processes == 0  # one core: the API's process runs them
    assert make(kane_session_processes="3").session_processes == 3
    assert make(kane_session_processes=0).session_processes == 0


@pytest.mark.parametrize("value", ["-1", "65", "many", ""])
def test_bad_session_process_counts_are_refused(value):
    with pytest.raises(ValidationError):
        make(kane_session_processes=value)
