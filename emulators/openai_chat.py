"""Scripted chat replies and the chat-completions payloads they turn into."""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

DEFAULT_REPLY = 'Got it: "{user}". What\'s your main quest today?'
"""Default reply template; ``{user}`` is the last user message's text."""

_TOKEN = re.compile(r"\s*\S+|\s+")


@dataclass
class ToolCall:
    """One function call the emulated model makes.

    Parameters:
        name: Function name.
        arguments: JSON arguments, as a dict or an already-encoded string.
        id: Call id; generated (``call_...``) when omitted.
    """

    name: str
    arguments: dict[str, Any] | str = field(default_factory=dict)
    id: str | None = None

    @property
    def arguments_json(self) -> str:
        """The arguments as the JSON string OpenAI sends."""
        if isinstance(self.arguments, str):
            return self.arguments
        return json.dumps(self.arguments)


@dataclass
class Reply:
    """One scripted model answer: text, or a list of tool calls (or both).

    Parameters:
        text: Assistant text.
        tool_calls: Function calls; when present ``finish_reason`` is ``"tool_calls"``.
    """

    text: str = ""
    tool_calls: list[ToolCall] = field(default_factory=list)

    @classmethod
    def from_json(cls, data: str | dict[str, Any]) -> Reply:
        """Build a reply from a control-endpoint value: a string or ``{text, tool_calls}``."""
        if isinstance(data, str):
            return cls(text=data)
        calls = [
            ToolCall(name=c["name"], arguments=c.get("arguments", {}), id=c.get("id"))
            for c in data.get("tool_calls", [])
        ]
        return cls(text=data.get("text", ""), tool_calls=calls)


def last_user_text(messages: list[dict[str, Any]]) -> str:
    """Return the text of the last user message ("" if there is none)."""
    for message in reversed(messages):
        if message.get("role") == "user":
            return content_text(message.get("content"))
    return ""


def content_text(content: Any) -> str:
    """Flatten a message ``content`` (string or list of parts) into text."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(p.get("text", "") for p in content if isinstance(p, dict)).strip()
    return ""


def tokens(text: str) -> list[str]:
    """Split text into word-sized tokens that concatenate back to it."""
    return _TOKEN.findall(text)


def count_prompt_tokens(body: dict[str, Any]) -> int:
    """Rough prompt size: a token per four characters of messages and tools."""
    chars = sum(len(content_text(m.get("content"))) + 4 for m in body.get("messages", []))
    chars += len(json.dumps(body.get("tools", []))) if body.get("tools") else 0
    return max(1, chars // 4)


class Completion:
    """Builds the payloads of one chat completion, streamed or whole."""

    def __init__(self, reply: Reply, body: dict[str, Any]) -> None:
        """Prepare a completion of ``reply`` for the request ``body``."""
        self.reply = reply
        self.model = str(body.get("model") or "gpt-4o-mini")
        self.id = f"chatcmpl-{uuid.uuid4().hex[:24]}"
        self.created = int(time.time())
        self.include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        self.prompt_tokens = count_prompt_tokens(body)
        self.calls = [
            ToolCall(c.name, c.arguments, c.id or f"call_{uuid.uuid4().hex[:24]}")
            for c in reply.tool_calls
        ]
        self.text_tokens = tokens(reply.text)
        self.completion_tokens = max(
            1, len(self.text_tokens) + sum(len(c.arguments_json) // 4 + 2 for c in self.calls)
        )

    @property
    def finish_reason(self) -> str:
        """``"tool_calls"`` when the reply calls tools, else ``"stop"``."""
        return "tool_calls" if self.calls else "stop"

    def usage(self) -> dict[str, Any]:
        """The ``usage`` object."""
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.prompt_tokens + self.completion_tokens,
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0},
        }

    def whole(self) -> dict[str, Any]:
        """The non-streamed ``chat.completion`` object."""
        message: dict[str, Any] = {
            "role": "assistant",
            "content": self.reply.text or None,
            "refusal": None,
        }
        if self.calls:
            message["tool_calls"] = [
                {
                    "id": c.id,
                    "type": "function",
                    "function": {"name": c.name, "arguments": c.arguments_json},
                }
                for c in self.calls
            ]
        return {
            "id": self.id,
            "object": "chat.completion",
            "created": self.created,
            "model": self.model,
            "choices": [
                {
                    "index": 0,
                    "message": message,
                    "logprobs": None,
                    "finish_reason": self.finish_reason,
                }
            ],
            "usage": self.usage(),
            "system_fingerprint": "fp_emulator",
        }

    def chunks(self) -> Iterator[dict[str, Any]]:
        """The streamed ``chat.completion.chunk`` objects, in order.

        The first carries the role, then one per text token, then per tool call
        a header (id, name) and argument fragments, then the finish reason, then
        (with ``stream_options.include_usage``) a usage chunk with no choices.
        """
        yield self._chunk({"role": "assistant", "content": "", "refusal": None})
        for token in self.text_tokens:
            yield self._chunk({"content": token})
        for index, call in enumerate(self.calls):
            head = {
                "index": index,
                "id": call.id,
                "type": "function",
                "function": {"name": call.name, "arguments": ""},
            }
            yield self._chunk({"tool_calls": [head]})
            args = call.arguments_json
            for start in range(0, len(args), 8):
                piece = {"index": index, "function": {"arguments": args[start : start + 8]}}
                yield self._chunk({"tool_calls": [piece]})
        yield self._chunk({}, finish_reason=self.finish_reason)
        if self.include_usage:
            usage_chunk = self._chunk({})
            usage_chunk["choices"] = []
            usage_chunk["usage"] = self.usage()
            yield usage_chunk

    def _chunk(self, delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
        chunk: dict[str, Any] = {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "system_fingerprint": "fp_emulator",
            "choices": [
                {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
            ],
        }
        if self.include_usage:
            chunk["usage"] = None
        return chunk
