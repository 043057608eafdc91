"""What the person said last, as the trigger phrase of a quest change."""

from __future__ import annotations

from pipecat.processors.aggregators.llm_context import LLMContext


def last_user_words(context: LLMContext, *, max_chars: int = 500) -> str | None:
    """The text of the last user message in `context`, if any."""
    for message in reversed(context.get_messages()):
        if isinstance(message, dict) and message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, str):
                return content[:max_chars]
            if isinstance(content, list):
                texts = [p.get("text", "") for p in content if isinstance(p, dict)]
                return " ".join(t for t in texts if t)[:max_chars] or None
    return None
