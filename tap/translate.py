"""Which frames the phone hears about, as protocol messages."""

from __future__ import annotations

from pipecat.frames.frames import (
    AggregatedTextFrame,
    BotStartedSpeakingFrame,
    BotStoppedSpeakingFrame,
    Frame,
    FunctionCallInProgressFrame,
    InterimTranscriptionFrame,
    TranscriptionFrame,
    TTSTextFrame,
    UserStartedSpeakingFrame,
    UserStoppedSpeakingFrame,
)

from protocol import (
    BotResponse,
    BotState,
    FinalTranscript,
    PartialTranscript,
    ServerData,
    ToolCall,
)
from tap.payloads import transcript_confidence

# The bot's state after each of these frames.
_STATE_AFTER: dict[type[Frame], str] = {
    UserStartedSpeakingFrame: "listening",
    UserStoppedSpeakingFrame: "thinking",
    BotStartedSpeakingFrame: "speaking",
    BotStoppedSpeakingFrame: "listening",
}


class PhoneTranslator:
    """Turns the frames of a session into the messages of the phone protocol.

    Stateless but for the bot's state, which is only announced when it changes. Quest and
    emotion frames plug in here when their stages exist.
    """

    def __init__(self) -> None:
        """Start with the bot listening."""
        self._state = "listening"

    def translate(self, frame: Frame) -> ServerData | None:
        """The message for `frame`, if the phone hears about it."""
        state = _STATE_AFTER.get(type(frame))
        if state is not None:
            if state == self._state:
                return None
            self._state = state
            return BotState(state=state)  # type: ignore[arg-type]
        if isinstance(frame, InterimTranscriptionFrame):
            return PartialTranscript(text=frame.text, confidence=transcript_confidence(frame))
        if isinstance(frame, TranscriptionFrame):
            return FinalTranscript(text=frame.text, confidence=transcript_confidence(frame))
        if isinstance(frame, AggregatedTextFrame) and not isinstance(frame, TTSTextFrame):
            # The TTS announces each sentence before it synthesizes it.
            if getattr(frame, "will_be_spoken", False) and frame.text.strip():
                return BotResponse(text=frame.text)
            return None
        if isinstance(frame, FunctionCallInProgressFrame):
            arguments = frame.arguments if isinstance(frame.arguments, dict) else {}
            return ToolCall(
                call_id=frame.tool_call_id, name=frame.function_name, arguments=arguments
            )
        return None
