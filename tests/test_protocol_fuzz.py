"""parse_incoming, fed anything: it returns a valid message or raises ProtocolError."""

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from protocol import CLIENT_MESSAGES, MAX_INCOMING_BYTES, Incoming, ProtocolError, parse_incoming

SID = "sess-fuzz"
CODES = {"too_large", "not_json", "invalid", "unknown_type", "wrong_version", "wrong_session"}
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=80),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=12), children, max_size=5)
    ),
    max_leaves=20,
)

ids = st.text(min_size=1, max_size=64)
short = st.text(max_size=64)
valid_data: dict[str, st.SearchStrategy[dict[str, Any]]] = {
    "ui_state": st.fixed_dictionaries(
        {"current_screen": short, "visible_quest_ids": st.lists(ids, max_size=200)},
        optional={"selected_quest": st.none() | ids},
    ),
    "ui_event": st.fixed_dictionaries(
        {
            "action": st.sampled_from(["tap", "swipe", "edit", "long_press", "scroll"]),
            "target": st.text(max_size=128),
        },
        optional={"value": st.none() | st.text(max_size=1000)},
    ),
    "quest_edit": st.fixed_dictionaries(
        {
            "quest_id": ids,
            "changes": st.fixed_dictionaries(
                {"kind": st.sampled_from(["main", "side"])},
                optional={
                    "title": st.text(min_size=1, max_size=200),
                    "success_criteria": st.lists(st.text(max_size=300), max_size=10),
                    "status": st.sampled_from(["active", "completed", "deleted"]),
                },
            ),
        }
    ),
    "hello": st.fixed_dictionaries(
        {"app_version": st.text(max_size=32), "capabilities": st.lists(short, max_size=32)}
    ),
}


@st.composite
def valid_envelopes(draw: st.DrawFn) -> dict[str, Any]:
    type_ = draw(st.sampled_from(sorted(valid_data)))
    return {
        "v": 1,
        "type": type_,
        "session_id": SID,
        "seq": draw(st.integers(min_value=0, max_value=2**53 - 1)),
        "ts": draw(st.integers(min_value=0, max_value=2**53 - 1)),
        "data": draw(valid_data[type_]),
    }


def encode(doc: Any) -> bytes:
    return json.dumps(doc, ensure_ascii=False).encode("utf-8", "surrogatepass")


def check(raw: bytes | str) -> Incoming | None:
    """Parse, allowing nothing but a valid message or a ProtocolError."""
    try:
        message = parse_incoming(raw, session_id=SID)
    except ProtocolError as e:
        assert e.code in CODES
        assert len(e.message) < 400
        return None
    cls = CLIENT_MESSAGES[message.type]
    assert type(message.data) is cls
    assert cls.model_validate(message.data.model_dump()) == message.data
    assert message.session_id == SID
    return message


@FUZZ
@given(st.binary(max_size=2048))
def test_random_bytes(raw: bytes):
    check(raw)


@FUZZ
@given(st.text(max_size=2048))
def test_random_text(raw: str):
    check(raw)


@FUZZ
@given(json_values)
def test_random_json(doc: Any):
    check(encode(doc))


@FUZZ
@given(valid_envelopes())
def test_valid_envelopes_are_accepted(doc: dict[str, Any]):
    raw = encode(doc)
    if len(raw) <= MAX_INCOMING_BYTES:
        assert check(raw) is not None


@FUZZ
@given(valid_envelopes(), st.data())
def test_mutated_envelopes(doc: dict[str, Any], data: st.DataObject):
    target = doc
    # Walk into the message (and maybe its changes) before mutating a field.
    if data.draw(st.booleans()):
        target = doc["data"]
        if "changes" in target and data.draw(st.booleans()):
            target = target["changes"]
    key = data.draw(st.sampled_from(sorted(target)))
    mutation = data.draw(st.sampled_from(["replace", "drop", "add"]))
    if mutation == "replace":
        target[key] = data.draw(json_values)
    elif mutation == "drop":
        del target[key]
    else:
        target[data.draw(st.text(max_size=20))] = data.draw(json_values)
    check(encode(doc))


@settings(max_examples=20, deadline=None)
@given(st.sampled_from(["[", '{"a":', '[{"a":']), st.integers(1_000, 100_000))
def test_deep_nesting(opener: str, depth: int):
    check(opener * depth)
    check((opener * depth).encode())
    # Deep, yet small enough to reach the JSON parser.
    inner = "[" * 8000 + "]" * 8000
    head = '{"v":1,"type":"ui_state","session_id":"' + SID + '","seq":1,"ts":1,"data":'
    check(head + inner + "}")


@settings(max_examples=10, deadline=None)
@given(st.sampled_from([b"a", b"[", b"\xff", b'{"v":1,"data":"']))
def test_megabyte_payloads(filler: bytes):
    raw = filler * (1024 * 1024)
    for packet in (raw, raw.decode("latin-1")):
        try:
            parse_incoming(packet, session_id=SID)
        except ProtocolError as e:
            assert e.code == "too_large"
        else:
            raise AssertionError("a 1 MB packet was accepted")
