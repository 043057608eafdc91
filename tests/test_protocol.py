import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from protocol import (
    CLIENT_MESSAGES,
    MAX_INCOMING_BYTES,
    PROTOCOL_VERSION,
    SERVER_MESSAGES,
    TOPIC,
    BotResponse,
    BotState,
    ClientMessage,
    EmotionChanged,
    ErrorMessage,
    FinalTranscript,
    Hello,
    Outbox,
    PartialTranscript,
    PlanDraft,
    PlannedQuest,
    ProtocolError,
    Quest,
    QuestChanges,
    QuestCompleted,
    QuestCreated,
    QuestDeleted,
    QuestDraft,
    QuestEdit,
    QuestUpdated,
    ServerMessage,
    SessionEnded,
    SessionStarted,
    SuccessCriteriaSet,
    ToolCall,
    UiEvent,
    UiState,
    parse_incoming,
)
from protocol.generate import SCHEMA_FILE, SWIFT_FILE

ROOT = Path(__file__).resolve().parents[1]
SID = "sess-1"

SERVER_SAMPLES: list[ServerMessage] = [
    SessionStarted(session_id=SID, user_id="u1", engines={"stt": "whisper", "tts": "espeak"}),
    PartialTranscript(text="my main quest is", confidence=0.61),
    FinalTranscript(text="My main quest is to ship onboarding."),
    QuestDraft(
        draft_id="d1",
        title="Ship the onboarding flow",
        kind="main",
        confidence=0.8,
        source_words="my main quest today is to ship the onboarding flow",
    ),
    QuestCreated(
        quest=Quest(
            id="q1",
            title="Fix the login bug",
            kind="main",
            status="active",
            success_criteria=["users can log in"],
            version=1,
        )
    ),
    QuestUpdated(quest_id="q1", changes={"title": "Fix login", "kind": "side"}, version=2),
    QuestCompleted(quest_id="q1"),
    QuestDeleted(quest_id="q2"),
    SuccessCriteriaSet(quest_id="q1", criteria=["tests pass", "deployed"]),
    ToolCall(call_id="c1", name="create_quest", arguments={"title": "Run", "tags": [1, None]}),
    BotResponse(text="Got it — café first, then the bug. ☕"),
    BotState(state="thinking"),
    EmotionChanged(label="calm", scores={"calm": 0.7, "joy": 0.2}, valence=0.3, arousal=-0.1),
    PlanDraft(quests=[PlannedQuest(title="Inbox zero", kind="side", confidence=0.4)]),
    ErrorMessage(code="invalid", message="ui_state: current_screen: too long", ref_seq=7),
    SessionEnded(reason="user_left"),
]

CLIENT_SAMPLES: list[ClientMessage] = [
    UiState(current_screen="today", selected_quest="q1", visible_quest_ids=["q1", "q2"]),
    UiEvent(action="long_press", target="quest:q1", value="Fix login"),
    QuestEdit(quest_id="q1", changes=QuestChanges(title="Fix login", success_criteria=["done"])),
    Hello(app_version="1.4.2", capabilities=["quest_drafts", "emotion"]),
]


def envelope(data: dict[str, Any], type_: str = "ui_state", **fields: Any) -> dict[str, Any]:
    doc = {"v": 1, "type": type_, "session_id": SID, "seq": 1, "ts": 1732435200123, "data": data}
    doc.update(fields)
    return doc


def packet(doc: Any) -> bytes:
    return json.dumps(doc, ensure_ascii=False).encode()


UI_STATE = {"current_screen": "today", "selected_quest": None, "visible_quest_ids": ["q1"]}


def refused(raw: bytes | str, session_id: str | None = SID) -> ProtocolError:
    with pytest.raises(ProtocolError) as info:
        parse_incoming(raw, session_id=session_id)
    return info.value


def test_constants():
    assert TOPIC == "kane"
    assert PROTOCOL_VERSION == 1
    assert MAX_INCOMING_BYTES == 16 * 1024


def test_every_message_of_design_section_3_exists():
    assert set(SERVER_MESSAGES) == {
        "session_started", "partial_transcript", "final_transcript", "quest_draft",
        "quest_created", "quest_updated", "quest_completed", "quest_deleted",
        "success_criteria_set", "tool_call", "bot_response", "bot_state", "emotion_changed",
        "plan_draft", "error", "session_ended",
    }  # fmt: skip
    assert set(CLIENT_MESSAGES) == {"ui_state", "ui_event", "quest_edit", "hello"}
    assert {type(m) for m in SERVER_SAMPLES} == set(SERVER_MESSAGES.values())
    assert {type(m) for m in CLIENT_SAMPLES} == set(CLIENT_MESSAGES.values())


@pytest.mark.parametrize("message", SERVER_SAMPLES, ids=lambda m: m.type)
def test_server_message_round_trip(message: ServerMessage):
    packed = Outbox(SID, clock=lambda: 1732435200123).pack(message)  # type: ignore[arg-type]
    doc = json.loads(packed.decode("utf-8"))
    assert list(doc) == ["v", "type", "session_id", "seq", "ts", "data"]
    assert doc["v"] == 1 and doc["type"] == message.type and doc["session_id"] == SID
    assert doc["seq"] == 1 and doc["ts"] == 1732435200123
    assert SERVER_MESSAGES[doc["type"]].model_validate(doc["data"]) == message


@pytest.mark.parametrize("message", CLIENT_SAMPLES, ids=lambda m: m.type)
def test_client_message_round_trip(message: ClientMessage):
    raw = packet(envelope(message.model_dump(mode="json"), message.type, seq=5))
    incoming = parse_incoming(raw, session_id=SID)
    assert (incoming.type, incoming.seq, incoming.ts) == (message.type, 5, 1732435200123)
    assert incoming.session_id == SID
    assert incoming.data == message
    # Swift's encoder leaves nil optionals out instead of sending null.
    raw = packet(envelope(message.model_dump(mode="json", exclude_none=True), message.type))
    assert parse_incoming(raw.decode("utf-8"), session_id=SID).data == message


def test_pack_is_compact_utf8_json():
    packed = Outbox(SID).pack(BotResponse(text="Café ☕"))
    assert b" " not in packed.replace("Café ☕".encode(), b"")
    assert "Café ☕".encode() in packed


def test_seq_rises_by_one_per_message():
    outbox = Outbox(SID)
    assert outbox.next_seq == 1
    seqs = [json.loads(outbox.pack(message))["seq"] for message in SERVER_SAMPLES]
    assert seqs == list(range(1, len(SERVER_SAMPLES) + 1))
    assert outbox.next_seq == len(SERVER_SAMPLES) + 1
    assert json.loads(Outbox("other").pack(BotState(state="listening")))["seq"] == 1


def test_ts_is_milliseconds_since_the_epoch():
    before = time.time_ns() // 1_000_000
    ts = json.loads(Outbox(SID).pack(BotState(state="speaking")))["ts"]
    after = time.time_ns() // 1_000_000
    assert isinstance(ts, int) and before <= ts <= after
    ticks = iter([10, 20])
    outbox = Outbox(SID, clock=lambda: next(ticks))
    assert [json.loads(outbox.pack(BotState(state="speaking")))["ts"] for _ in "ab"] == [10, 20]


def test_session_id_is_escaped_in_the_envelope():
    assert json.loads(Outbox('a"b\\c').pack(SessionEnded(reason="x")))["session_id"] == 'a"b\\c'


def test_pack_refuses_phone_messages_without_using_a_seq():
    outbox = Outbox(SID)
    with pytest.raises(TypeError):
        outbox.pack(CLIENT_SAMPLES[0])  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        outbox.pack(ToolCall(call_id="c", name="n", arguments={"x": object()}))
    assert outbox.next_seq == 1


def test_server_models_refuse_what_swift_could_not_decode():
    with pytest.raises(ValueError):
        QuestDraft(draft_id="d", title="t", kind="main", confidence=1.5, source_words="w")
    with pytest.raises(ValueError):
        EmotionChanged(label="x", scores={"x": float("nan")}, valence=0, arousal=0)
    with pytest.raises(ValueError):
        BotState(state="dreaming")  # type: ignore[arg-type]


def test_protocol_error_from_a_refusal_is_a_valid_error_message():
    error = refused(packet(envelope({"current_screen": 1}, seq=9)))
    answer = ErrorMessage(code=error.code, message=error.message, ref_seq=error.ref_seq)
    assert json.loads(Outbox(SID).pack(answer))["data"]["ref_seq"] == 9


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        (b"x" * (MAX_INCOMING_BYTES + 1), "too_large"),
        ("é" * (MAX_INCOMING_BYTES // 2 + 1), "too_large"),
        (b"{not json", "not_json"),
        (b"\xff\xfe{}", "not_json"),
        ('{"v": 1, "type": "\ud800"}', "not_json"),
        (b'{"v": NaN}', "not_json"),
        (b"[" * 5000 + b"]" * 5000, "not_json"),
        (b"[1, 2]", "invalid"),
        (b"{}", "invalid"),
        (packet(envelope(UI_STATE, v="1")), "invalid"),
        (packet(envelope(UI_STATE, v=True)), "invalid"),
        (packet(envelope(UI_STATE, v=2)), "wrong_version"),
        (packet(envelope(UI_STATE, "quest_created")), "unknown_type"),
        (packet(envelope(UI_STATE, "nope")), "unknown_type"),
        (packet(envelope(UI_STATE, type=7)), "invalid"),
        (packet(envelope(UI_STATE, seq="1")), "invalid"),
        (packet(envelope(UI_STATE, seq=True)), "invalid"),
        (packet(envelope(UI_STATE, seq=-1)), "invalid"),
        (packet(envelope(UI_STATE, ts=1.5)), "invalid"),
        (packet(envelope(UI_STATE, session_id="")), "invalid"),
        (packet(envelope([])), "invalid"),
        (packet(envelope({"current_screen": "x"})), "invalid"),
        (packet(envelope(UI_STATE, session_id="someone-else")), "wrong_session"),
    ],
)
def test_every_refusal_has_its_code(raw: bytes | str, code: str):
    assert refused(raw).code == code


def test_not_bytes_or_text_is_refused():
    assert refused(12345).code == "not_json"  # type: ignore[arg-type]


def test_session_is_checked_only_when_given():
    raw = packet(envelope(UI_STATE, session_id="anything"))
    assert parse_incoming(raw).session_id == "anything"
    error = refused(raw, session_id=SID)
    assert error.code == "wrong_session" and error.ref_seq == 1


@pytest.mark.parametrize(
    "doc",
    [
        envelope({**UI_STATE, "admin": True}),
        envelope(UI_STATE, extra="x"),
        envelope({"quest_id": "q1", "changes": {"title": "t", "owner": "me"}}, "quest_edit"),
        envelope({"app_version": "1", "capabilities": [], "debug": 1}, "hello"),
    ],
)
def test_unknown_fields_are_refused(doc: dict[str, Any]):
    assert refused(packet(doc)).code == "invalid"


@pytest.mark.parametrize(
    ("type_", "data", "field", "limit"),
    [
        ("ui_state", UI_STATE, "current_screen", 64),
        ("ui_state", UI_STATE, "selected_quest", 64),
        ("ui_event", {"action": "tap", "target": "x"}, "target", 128),
        ("ui_event", {"action": "tap", "target": "x"}, "value", 1000),
        ("hello", {"app_version": "1", "capabilities": []}, "app_version", 32),
        ("quest_edit", {"quest_id": "q", "changes": {"kind": "main"}}, "quest_id", 64),
    ],
)
def test_strings_are_bounded(type_: str, data: dict[str, Any], field: str, limit: int):
    assert parse_incoming(packet(envelope({**data, field: "a" * limit}, type_)))
    assert refused(packet(envelope({**data, field: "a" * (limit + 1)}, type_))).code == "invalid"


@pytest.mark.parametrize(
    ("type_", "data"),
    [
        ("ui_state", {**UI_STATE, "visible_quest_ids": ["q"] * 201}),
        ("ui_state", {**UI_STATE, "visible_quest_ids": ["q" * 65]}),
        ("hello", {"app_version": "1", "capabilities": ["c"] * 33}),
        ("hello", {"app_version": "1", "capabilities": ["c" * 65]}),
        ("quest_edit", {"quest_id": "q", "changes": {"title": ""}}),
        ("quest_edit", {"quest_id": "q", "changes": {"title": "t" * 201}}),
        ("quest_edit", {"quest_id": "q", "changes": {"success_criteria": ["c"] * 11}}),
        ("quest_edit", {"quest_id": "q", "changes": {"success_criteria": ["c" * 301]}}),
        ("quest_edit", {"quest_id": "q", "changes": {}}),
        ("quest_edit", {"quest_id": "q", "changes": {"title": None}}),
        ("quest_edit", {"quest_id": "q", "changes": {"status": "paused"}}),
        ("ui_event", {"action": "shake", "target": "x"}),
        ("ui_event", {"action": "tap", "target": 5}),
        ("ui_state", {**UI_STATE, "visible_quest_ids": "q1"}),
    ],
)
def test_bad_phone_data_is_refused(type_: str, data: dict[str, Any]):
    assert refused(packet(envelope(data, type_))).code == "invalid"


def test_a_quest_edit_needs_one_change():
    with pytest.raises(ValueError, match="at least one change"):
        QuestChanges()
    assert QuestChanges(status="completed").status == "completed"


@pytest.mark.parametrize(
    "raw",
    [
        packet(envelope(UI_STATE, "t" * 10_000)),
        packet(envelope({**UI_STATE, "k" * 10_000: 1})),
        packet(envelope(UI_STATE, **{"k" * 10_000: 1})),
        packet(envelope({**UI_STATE, "current_screen": "s" * 10_000})),
        packet(envelope(UI_STATE, v=10**3000)),
        b'{"v": 1, "type": "' + b"x" * 10_000,
    ],
)
def test_refusals_do_not_echo_the_packet(raw: bytes):
    error = refused(raw)
    for filler in ("t", "k", "s", "x", "0"):
        assert filler * 100 not in error.message
    assert len(error.message) < 400


def test_pack_and_parse_are_fast():
    outbox = Outbox(SID)
    draft = SERVER_SAMPLES[3]
    n = 20_000
    start = time.perf_counter()
    for _ in range(n):
        outbox.pack(draft)  # type: ignore[arg-type]
    pack_us = (time.perf_counter() - start) / n * 1e6
    raw = packet(envelope(CLIENT_SAMPLES[0].model_dump(mode="json")))
    start = time.perf_counter()
    for _ in range(n):
        parse_incoming(raw, session_id=SID)
    parse_us = (time.perf_counter() - start) / n * 1e6
    print(f"\npack: {pack_us:.2f} µs/message, parse_incoming: {parse_us:.2f} µs/message")
    assert pack_us < 20


def test_generated_files_are_current():
    result = subprocess.run(
        [sys.executable, "-m", "protocol.generate", "--check"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr


def test_schema_describes_every_message_and_field():
    schema = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    defs = schema["$defs"]
    for wire_type, cls in {**SERVER_MESSAGES, **CLIENT_MESSAGES}.items():
        env = defs[f"{cls.__name__}Envelope"]
        assert env["properties"]["type"]["const"] == wire_type
        assert set(env["required"]) == {"v", "type", "session_id", "seq", "ts", "data"}
        assert set(defs[cls.__name__]["properties"]) == set(cls.model_fields)
    assert len(defs["ServerEnvelope"]["oneOf"]) == len(SERVER_MESSAGES)
    assert len(defs["ClientEnvelope"]["oneOf"]) == len(CLIENT_MESSAGES)
    assert defs["UiState"]["properties"]["current_screen"]["maxLength"] == 64


def test_swift_has_a_codable_type_per_model():
    swift = SWIFT_FILE.read_text(encoding="utf-8")
    assert "public struct Envelope<T: Codable>: Codable {" in swift
    for wire_type, cls in {**SERVER_MESSAGES, **CLIENT_MESSAGES}.items():
        assert f"public struct {cls.__name__}: KaneMessage {{" in swift
        assert f'= "{wire_type}"' in swift or f"case {wire_type}\n" in swift
    for nested in ("Quest", "PlannedQuest", "QuestChanges"):
        assert f"public struct {nested}: Codable, Equatable, Sendable {{" in swift
    assert 'case draftId = "draft_id"' in swift
    assert 'case longPress = "long_press"' in swift
    assert "public enum QuestKind: String, Codable, Sendable {" in swift
