"""KANE's notes in the LLM's context: short developer messages that stages keep current.

A note is supplementary guidance for the coach (what the phone shows, how the person
sounds, where the day's quests stand), so it goes in as a *developer* message, as Pipecat
asks of guidance next to the service's `system_instruction`; KANE's prompt is that system
instruction. Each kind of note starts with its own prefix (``[coach]``, ``[emotion]``, ...),
and a stage replaces its note rather than adding another each turn. Contexts written
before notes became developer messages hold them as system messages; those are still
recognised and replaced.
"""

from __future__ import annotations

from typing import Any, Final

from openai.types.chat import ChatCompletionDeveloperMessageParam

NOTE_ROLE: Final = "developer"
"""The role of every note KANE adds to the context."""

_ROLES = frozenset({NOTE_ROLE, "system"})  # before developer notes, notes were system messages


def note_message(text: str) -> ChatCompletionDeveloperMessageParam:
    """A note for the context.

    Args:
        text: The note, starting with its stage's prefix.
    """
    return {"role": "developer", "content": text}


def is_note(message: object, prefix: str) -> bool:
    """Whether `message` is a note of the kind that starts with `prefix`."""
    return (
        isinstance(message, dict)
        and message.get("role") in _ROLES
        and str(message.get("content", "")).startswith(prefix)
    )


def without_notes(messages: list[Any], prefix: str) -> list[Any]:
    """`messages` without the notes that start with `prefix`, in order."""
    return [m for m in messages if not is_note(m, prefix)]
