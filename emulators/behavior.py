"""Settable latency and faults shared by every emulator."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from enum import StrEnum
from typing import Any


class Fault(StrEnum):
    """A failure an emulator can inject into a request or connection.

    Values:
        NONE: Answer normally.
        HTTP_500: Refuse the request (or the WebSocket handshake) with HTTP 500.
        DROP: Answer ``fault_after`` chunks/results, then cut the TCP connection.
        STALL: Accept, answer ``fault_after`` chunks/results, then never answer again.
    """

    NONE = "none"
    HTTP_500 = "http_500"
    DROP = "drop"
    STALL = "stall"


@dataclass
class Behavior:
    """How an emulator answers: its latency and the fault it injects.

    Parameters:
        first_latency_s: Delay before the first token / first audio byte / each
            transcription result (Deepgram: processing lag after the audio that
            triggered a result).
        chunk_interval_s: Delay between streamed tokens or audio chunks.
        fault: The fault to inject.
        fault_count: How many of the next requests/connections get the fault;
            ``None`` means all of them. Decrements as faults are handed out and
            resets ``fault`` to ``NONE`` when it reaches zero.
        fault_after: For DROP and STALL, how many chunks/results are delivered
            before the fault strikes.
    """

    first_latency_s: float = 0.0
    chunk_interval_s: float = 0.0
    fault: Fault = Fault.NONE
    fault_count: int | None = None
    fault_after: int = 0

    def claim_fault(self) -> Fault:
        """Hand out the fault for one new request or connection.

        Returns:
            The fault this request must suffer (``Fault.NONE`` for none).
        """
        if self.fault is Fault.NONE:
            return Fault.NONE
        fault = self.fault
        if self.fault_count is not None:
            self.fault_count -= 1
            if self.fault_count <= 0:
                self.fault = Fault.NONE
                self.fault_count = None
        return fault

    def update(self, changes: dict[str, Any]) -> None:
        """Apply a partial update, e.g. from the control endpoint.

        Args:
            changes: Field names to new values; ``fault`` may be a string.

        Raises:
            ValueError: If a field name or fault value is unknown.
        """
        names = {f.name for f in fields(self)}
        unknown = set(changes) - names
        if unknown:
            raise ValueError(f"unknown behavior fields: {sorted(unknown)}")
        for name, value in changes.items():
            if name == "fault":
                value = Fault(value or "none")
            elif name == "fault_count":
                value = None if value is None else int(value)
            elif name == "fault_after":
                value = int(value)
            else:
                value = float(value)
            setattr(self, name, value)

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready copy of this behavior."""
        data = asdict(self)
        data["fault"] = self.fault.value
        return data
