"""How KANE answers a feeling: the voice's tone and the note the LLM gets."""

from __future__ import annotations

from frames.emotion import ToneFrame

# label -> (delivery instructions, speed). A stressed person hears a calmer, slower KANE.
_TONES: dict[str, tuple[str, float]] = {
    "stressed": ("Speak calmly and a little slowly, with a warm, steady, reassuring tone.", 0.9),
    "frustrated": ("Speak calmly and patiently, low and even; acknowledge, don't push.", 0.95),
    "tired": ("Speak gently and softly; encouraging, never loud.", 0.95),
    "uncertain": ("Speak clearly and reassuringly, confident and kind.", 1.0),
    "excited": ("Match their energy: upbeat, bright and warm.", 1.05),
    "calm": ("Speak warmly and naturally, like a friendly coach.", 1.0),
    "neutral": ("Speak warmly and naturally, like a friendly coach.", 1.0),
}

_SOUNDS: dict[str, str] = {
    "stressed": "stressed",
    "frustrated": "frustrated",
    "tired": "tired",
    "uncertain": "unsure",
    "excited": "excited",
    "calm": "calm",
}


def tone_for(label: str) -> ToneFrame:
    """The voice KANE answers a label with."""
    instructions, speed = _TONES.get(label, _TONES["neutral"])
    return ToneFrame(instructions=instructions, description=instructions, speed=speed)


def context_note(label: str) -> str | None:
    """A one-line note for the LLM ("the person sounds stressed"), or None for neutral."""
    sounds = _SOUNDS.get(label)
    if sounds is None:
        return None
    return f"The person sounds {sounds}; answer in a fitting way."
