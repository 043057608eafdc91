"""What a session said, kept as it goes, for its conversation record."""

from __future__ import annotations

from dataclasses import dataclass, field

from pipecat.frames.frames import AggregatedTextFrame, Frame, TranscriptionFrame, TTSTextFrame


@dataclass
class ConversationLog:
    """The person's final transcripts and KANE's spoken sentences, in order."""

    user: list[str] = field(default_factory=list)
    bot: list[str] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)

    def observe(self, frame: Frame) -> None:
        """Keep what `frame` adds to the conversation."""
        if isinstance(frame, TranscriptionFrame) and frame.text.strip():
            self.user.append(frame.text.strip())
            self.lines.append(f"user: {frame.text.strip()}")
        elif (
            isinstance(frame, AggregatedTextFrame)
            and not isinstance(frame, TTSTextFrame)
            and getattr(frame, "will_be_spoken", False)
            and frame.text.strip()
        ):
            self.bot.append(frame.text.strip())
            self.lines.append(f"kane: {frame.text.strip()}")

    @property
    def transcript(self) -> str:
        """The conversation, a line per utterance, speaker first."""
        return "\n".join(self.lines)

    @property
    def ai_response(self) -> str:
        """Everything KANE said."""
        return " ".join(self.bot)
