"""KANE's notes in the LLM's context: short developer messages that stages keep current.

A note is supplementary guidance for the coach (what the phone shows, how the person
sounds, where the day's quests stand), so it goes in as a *developer* message, as Pipecat
asks of guidance next to the service's `system_instruction`; KANE's prompt is that system
instruction. Each kind of note starts with its own prefix (``[coach]``, ``[emotion]``, ...),
and a stage replaces its note rather than adding another each turn.
"""

from __future__ import annotations

from typing import Any

from openai.types.chat import ChatCompletionDeveloperMessageParam


def note_message(text: str) -> ChatCompletionDeveloperMessageParam:
    """A note for the context.

    Args:
        text: The note, starting with its stage's prefix.
    """
    return {"role": "developer", "content": text}


def without_notes(messages: list[Any], prefix: str) -> list[Any]:
    """`messages` without the notes that start with `prefix`, in order."""
    return [
        m
        for m in messages
        if not (
            isinstance(m, dict)
            and m.get("role") == "developer"
            and str(m.get("content", "")).startswith(prefix)
        )
    ]
