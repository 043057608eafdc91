"""Swift `Codable` types for the iOS app, generated from the message models."""

from __future__ import annotations

import types
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from protocol.envelope import MAX_INCOMING_BYTES, PROTOCOL_VERSION, TOPIC
from protocol.messages import (
    CLIENT_MESSAGES,
    SERVER_MESSAGES,
    BotStateName,
    QuestKind,
    QuestStatus,
    UiAction,
)
from protocol.schema import model_docs

# Swift enums for the Literal fields, found by their values.
_ENUMS: dict[tuple[str, ...], str] = {
    get_args(QuestKind): "QuestKind",
    get_args(QuestStatus): "QuestStatus",
    get_args(BotStateName): "BotStateName",
    get_args(UiAction): "UiAction",
}
_SCALARS: dict[Any, str] = {str: "String", int: "Int", float: "Double", bool: "Bool"}
_KEYWORDS = {"default", "case", "class", "enum", "extension", "func", "import", "in", "init",
             "is", "let", "operator", "protocol", "repeat", "return", "self", "static", "struct",
             "switch", "var", "where", "while", "Type"}  # fmt: skip

_HEADER = """\
// KaneProtocol.swift — the KANE wire protocol (data topic "{topic}").
// Generated from protocol/messages.py by `uv run python -m protocol.generate`. Do not edit.

import Foundation

public let kaneProtocolVersion = {version}
public let kaneTopic = "{topic}"
/// The largest packet the server accepts from the phone, in bytes.
public let kaneMaxIncomingBytes = {max_bytes}

/// Any JSON value, for free-form fields such as tool arguments.
public enum JSONValue: Codable, Equatable, Sendable {{
    case null
    case bool(Bool)
    case number(Double)
    case string(String)
    case array([JSONValue])
    case object([String: JSONValue])

    public init(from decoder: Decoder) throws {{
        let container = try decoder.singleValueContainer()
        if container.decodeNil() {{
            self = .null
        }} else if let value = try? container.decode(Bool.self) {{
            self = .bool(value)
        }} else if let value = try? container.decode(Double.self) {{
            self = .number(value)
        }} else if let value = try? container.decode(String.self) {{
            self = .string(value)
        }} else if let value = try? container.decode([JSONValue].self) {{
            self = .array(value)
        }} else {{
            self = .object(try container.decode([String: JSONValue].self))
        }}
    }}

    public func encode(to encoder: Encoder) throws {{
        var container = encoder.singleValueContainer()
        switch self {{
        case .null: try container.encodeNil()
        case .bool(let value): try container.encode(value)
        case .number(let value): try container.encode(value)
        case .string(let value): try container.encode(value)
        case .array(let value): try container.encode(value)
        case .object(let value): try container.encode(value)
        }}
    }}
}}

/// The `data` of a message of the protocol.
public protocol KaneMessage: Codable, Equatable, Sendable {{
    static var messageType: MessageType {{ get }}
}}

/// One packet: `{{"v": 1, "type": …, "session_id": …, "seq": …, "ts": …, "data": {{…}}}}`.
/// `seq` rises by one per session and direction; `ts` is milliseconds since the epoch.
public struct Envelope<T: Codable>: Codable {{
    public var v: Int
    public var type: MessageType
    public var sessionId: String
    public var seq: Int
    public var ts: Int64
    public var data: T

    enum CodingKeys: String, CodingKey {{
        case v, type, sessionId = "session_id", seq, ts, data
    }}

    public init(v: Int = kaneProtocolVersion, type: MessageType, sessionId: String, seq: Int,
                ts: Int64, data: T) {{
        self.v = v
        self.type = type
        self.sessionId = sessionId
        self.seq = seq
        self.ts = ts
        self.data = data
    }}
}}

extension Envelope: Equatable where T: Equatable {{}}
extension Envelope: Sendable where T: Sendable {{}}

extension Envelope where T: KaneMessage {{
    /// An envelope for `data`, stamped now.
    public init(sessionId: String, seq: Int, data: T,
                ts: Int64 = Int64(Date().timeIntervalSince1970 * 1000)) {{
        self.init(type: T.messageType, sessionId: sessionId, seq: seq, ts: ts, data: data)
    }}
}}
"""


def camel(name: str) -> str:
    """Turn a snake_case name into lowerCamelCase."""
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def _ident(name: str) -> str:
    return f"`{name}`" if name in _KEYWORDS else name


def _swift_type(tp: Any, nested: list[type[BaseModel]]) -> str:
    origin = get_origin(tp)
    args = get_args(tp)
    if origin is Annotated:
        return _swift_type(args[0], nested)
    if origin in (Union, types.UnionType):
        others = [a for a in args if a is not type(None)]
        if len(others) != 1:
            raise TypeError(f"only `X | None` unions are supported, not {tp}")
        return _swift_type(others[0], nested) + "?"
    if origin is Literal:
        if args not in _ENUMS:
            raise TypeError(f"name the Literal {args} in protocol/swift.py")
        return _ENUMS[args]
    if origin is list:
        return f"[{_swift_type(args[0], nested)}]"
    if origin is dict:
        return f"[String: {_swift_type(args[1], nested)}]"
    if tp is Any:
        return "JSONValue"
    if tp in _SCALARS:
        return _SCALARS[tp]
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        if tp not in nested:
            nested.append(tp)
        return tp.__name__
    raise TypeError(f"no Swift type for {tp}")


def _swift_default(field: FieldInfo, swift_type: str) -> str | None:
    if field.default_factory is list:
        return "[]"
    if field.default is PydanticUndefined:
        return None
    if field.default is None:
        return "nil"
    if isinstance(field.default, bool):
        return "true" if field.default else "false"
    if isinstance(field.default, int | float):
        return repr(field.default)
    raise TypeError(f"no Swift default for {field.default!r} ({swift_type})")


def _doc(text: str, indent: str) -> list[str]:
    return [f"{indent}/// {line}" for line in text.splitlines() if line]


def _struct(model: type[BaseModel], wire_type: str | None, nested: list[type[BaseModel]]) -> str:
    summary, attributes = model_docs(model)
    conforms = "KaneMessage" if wire_type else "Codable, Equatable, Sendable"
    lines = [*_doc(summary, ""), f"public struct {model.__name__}: {conforms} {{"]
    if wire_type:
        lines.append(f"    public static let messageType: MessageType = .{camel(wire_type)}")
        lines.append("")
    params, assigns, keys = [], [], []
    for name, field in model.model_fields.items():
        swift_name = _ident(camel(name))
        swift_type = _swift_type(field.annotation, nested)
        lines += _doc(attributes.get(name, ""), "    ")
        lines.append(f"    public var {swift_name}: {swift_type}")
        default = _swift_default(field, swift_type)
        params.append(f"{swift_name}: {swift_type}" + (f" = {default}" if default else ""))
        assigns.append(f"        self.{swift_name} = {swift_name}")
        keys.append(swift_name if camel(name) == name else f'{swift_name} = "{name}"')
    lines += ["", "    enum CodingKeys: String, CodingKey {"]
    lines += [f"        case {key}" for key in keys]
    lines += ["    }", "", "    public init("]
    lines += [f"        {param}," for param in params]
    lines[-1] = lines[-1].rstrip(",")
    lines += ["    ) {", *assigns, "    }", "}"]
    return "\n".join(lines)


def _enum(name: str, values: tuple[str, ...], doc: str, protocols: str) -> str:
    lines = [f"/// {doc}", f"public enum {name}: String, {protocols} {{"]
    for value in values:
        case = _ident(camel(value))
        lines.append(f"    case {case}" if case == value else f'    case {case} = "{value}"')
    return "\n".join([*lines, "}"])


def _server_event() -> str:
    lines = [
        "/// Any server → phone packet, decoded by its type. Types this build does not know",
        "/// (the server may add some) decode as `.unknown`; skip them.",
        "public enum ServerEvent: Decodable, Sendable {",
    ]
    for wire_type, cls in SERVER_MESSAGES.items():
        lines.append(f"    case {camel(wire_type)}(Envelope<{cls.__name__}>)")
    lines += [
        "    case unknown(type: String)",
        "",
        "    private struct Header: Decodable {",
        "        let type: String",
        "    }",
        "",
        "    public init(from decoder: Decoder) throws {",
        "        let header = try Header(from: decoder)",
        "        switch header.type {",
    ]
    for wire_type, cls in SERVER_MESSAGES.items():
        lines.append(f'        case "{wire_type}":')
        lines.append(
            f"            self = .{camel(wire_type)}(try Envelope<{cls.__name__}>(from: decoder))"
        )
    lines += [
        "        default:",
        "            self = .unknown(type: header.type)",
        "        }",
        "    }",
        "}",
    ]
    return "\n".join(lines)


def swift_source() -> str:
    """Return the text of `KaneProtocol.swift`."""
    header = _HEADER.format(topic=TOPIC, version=PROTOCOL_VERSION, max_bytes=MAX_INCOMING_BYTES)
    parts = [header.rstrip("\n")]
    parts.append(
        _enum(
            "MessageType",
            (*SERVER_MESSAGES, *CLIENT_MESSAGES),
            "The wire `type` of every message, both directions.",
            "Codable, Sendable, CaseIterable",
        )
    )
    for values, name in _ENUMS.items():
        parts.append(_enum(name, values, f"One of {', '.join(values)}.", "Codable, Sendable"))

    nested: list[type[BaseModel]] = []
    messages: list[str] = ["// MARK: - Server → phone"]
    for wire_type, cls in SERVER_MESSAGES.items():
        messages.append(_struct(cls, wire_type, nested))
    messages.append("// MARK: - Phone → server")
    for wire_type, client_cls in CLIENT_MESSAGES.items():
        messages.append(_struct(client_cls, wire_type, nested))
    # Nested models are found while rendering the messages, and may nest further.
    rendered: list[str] = ["// MARK: - Nested types"]
    done: set[type[BaseModel]] = set()
    while len(done) < len(nested):
        model = next(m for m in nested if m not in done)
        done.add(model)
        rendered.append(_struct(model, None, nested))
    parts += messages + rendered + [_server_event()]
    return "\n\n".join(parts) + "\n"
