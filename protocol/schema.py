"""JSON Schema of the whole protocol, both directions, built from the message models."""

from __future__ import annotations

import inspect
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from protocol.envelope import MAX_COUNTER, MAX_INCOMING_BYTES, PROTOCOL_VERSION, TOPIC
from protocol.messages import CLIENT_MESSAGES, SERVER_MESSAGES, PlannedQuest, Quest, QuestChanges

_REF = "#/$defs/{model}"
_MODELS: list[type[BaseModel]] = [*SERVER_MESSAGES.values(), *CLIENT_MESSAGES.values()]
_MODELS += [Quest, PlannedQuest, QuestChanges]
_ALL_MODELS: dict[str, type[BaseModel]] = {cls.__name__: cls for cls in _MODELS}


def model_docs(model: type[BaseModel]) -> tuple[str, dict[str, str]]:
    """Split a model's Google docstring into its summary and its `Attributes:` entries.

    Args:
        model: The model.

    Returns:
        The text before `Attributes:` (one paragraph a line) and each attribute's text.
    """
    summary: list[str] = []
    attributes: dict[str, str] = {}
    current: str | None = None
    in_attributes = False
    for line in inspect.cleandoc(model.__doc__ or "").splitlines():
        stripped = line.strip()
        if stripped == "Attributes:":
            in_attributes = True
        elif not in_attributes:
            summary.append(stripped)
        elif line.startswith("    ") and not line.startswith("        ") and ":" in line:
            current, _, text = stripped.partition(":")
            attributes[current] = text.strip()
        elif current and stripped:
            attributes[current] += " " + stripped
    paragraphs = " ".join(summary).replace("  ", "\n").strip()
    return paragraphs, attributes


def _describe(defs: dict[str, Any]) -> None:
    for name, cls in _ALL_MODELS.items():
        schema = defs.get(name)
        if schema is None:
            continue
        summary, attributes = model_docs(cls)
        schema["description"] = summary
        for field, text in attributes.items():
            schema["properties"][field]["description"] = text


def envelope_model(wire_type: str, data: type[BaseModel]) -> type[BaseModel]:
    """Build the envelope model of one message type (for the schema; parsing is by hand).

    Args:
        wire_type: The message's wire type.
        data: The message's model.

    Returns:
        A model named `<Message>Envelope` whose `data` is the message.
    """
    version_type: Any = Literal[PROTOCOL_VERSION]
    wire_type_type: Any = Literal[wire_type]
    return create_model(
        f"{data.__name__}Envelope",
        __config__=ConfigDict(extra="forbid", title=f"{data.__name__}Envelope"),
        __doc__=f"The envelope of a `{wire_type}` message.",
        v=(version_type, Field(description="Protocol version.")),
        type=(wire_type_type, Field(description="The message type.")),
        session_id=(str, Field(min_length=1, max_length=128, description="The session.")),
        seq=(
            int,
            Field(ge=0, le=MAX_COUNTER, description="Rises by one per session and direction."),
        ),
        ts=(int, Field(ge=0, le=MAX_COUNTER, description="Milliseconds since the epoch.")),
        data=(data, ...),
    )


def protocol_schema() -> dict[str, Any]:
    """Return one JSON Schema (draft 2020-12) holding every message of both directions.

    The root accepts any valid envelope; `$defs/ServerEnvelope` and `$defs/ClientEnvelope`
    accept those of one direction. Server → phone shapes are described as sent (every field
    present), phone → server shapes as accepted (optional fields may be left out).
    """
    server = [envelope_model(t, cls) for t, cls in SERVER_MESSAGES.items()]
    client = [envelope_model(t, cls) for t, cls in CLIENT_MESSAGES.items()]
    inputs: list[tuple[type[BaseModel], JsonSchemaMode]] = [(m, "serialization") for m in server]
    inputs += [(m, "validation") for m in client]
    _, top = models_json_schema(inputs, ref_template=_REF)
    defs: dict[str, Any] = top["$defs"]
    _describe(defs)
    defs["ServerEnvelope"] = {
        "description": "Any server → phone message.",
        "oneOf": [{"$ref": _REF.format(model=m.__name__)} for m in server],
    }
    defs["ClientEnvelope"] = {
        "description": "Any phone → server message.",
        "oneOf": [{"$ref": _REF.format(model=m.__name__)} for m in client],
    }
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "KANE wire protocol",
        "description": (
            f"Messages on the LiveKit data topic '{TOPIC}': one JSON object (UTF-8) a packet. "
            f"Phone → server packets are at most {MAX_INCOMING_BYTES} bytes. "
            "Generated from protocol/messages.py by `python -m protocol.generate`; do not edit."
        ),
        "x-protocol-version": PROTOCOL_VERSION,
        "x-topic": TOPIC,
        "x-max-incoming-bytes": MAX_INCOMING_BYTES,
        "oneOf": [{"$ref": "#/$defs/ServerEnvelope"}, {"$ref": "#/$defs/ClientEnvelope"}],
        "$defs": dict(sorted(defs.items())),
    }
