"""The tap: sees every frame of a session once, journals it and tells the phone."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime
from typing import Any

from loguru import logger
from pipecat.observers.base_observer import BaseObserver, FramePushed
from pipecat.processors.frame_processor import FrameDirection

from storage.journal import JournalEvent, JournalWriter
from tap.conversation import ConversationLog
from tap.payloads import frame_payload, is_raw_media
from tap.phone import PhoneLink
from tap.translate import PhoneTranslator

_DIRECTIONS = {FrameDirection.DOWNSTREAM: "down", FrameDirection.UPSTREAM: "up"}


class FrameTap(BaseObserver):
    """Mirrors a session's frames to the journal and, translated, to the phone.

    Pipecat runs each observer on a task of its own, so nothing here costs the pipeline
    more than a queue put. Every frame but raw audio becomes a journal event, numbered by
    `seq` within the session; events that are not frames (protocol errors, the phone's
    messages) share the numbering through `record`.
    """

    def __init__(
        self,
        *,
        session_id: str,
        journal: JournalWriter,
        phone: PhoneLink | None = None,
        translator: PhoneTranslator | None = None,
    ):
        """Create the tap of one session.

        Args:
            session_id: The session (a UUID).
            journal: Where events go (shared by the worker's sessions).
            phone: The phone's link, told what it should hear about; None for no phone.
            translator: Turns frames into phone messages.
        """
        # A frame passes through many processors; its first push is the one journaled.
        super().__init__(observe_every_push=False)
        self._session = uuid.UUID(session_id)
        self._journal = journal
        self._phone = phone
        self._translator = translator or PhoneTranslator()
        self._seq = 0
        self.conversation = ConversationLog()

    @property
    def events(self) -> int:
        """How many events this session has journaled."""
        return self._seq

    async def on_push_frame(self, data: FramePushed) -> None:
        """Journal a frame (unless it is raw media) and tell the phone about it."""
        frame = data.frame
        if is_raw_media(frame):
            return
        # A broadcast frame travels both ways as two frames; keep the downstream one.
        if frame.broadcast_sibling_id is not None and data.direction == FrameDirection.UPSTREAM:
            return
        # Pipecat ends an observer whose handler raises; one odd frame must not stop the tap.
        try:
            self._write(
                type(frame).__name__,
                _DIRECTIONS.get(data.direction, "down"),
                data.source.name,
                frame_payload(frame),
            )
        except Exception as e:
            logger.error(f"{self}: {type(frame).__name__} not journaled: {e}")
        try:
            self.conversation.observe(frame)
            if self._phone is not None:
                message = self._translator.translate(frame)
                if message is not None:
                    self._phone.send(message)
        except Exception as e:
            logger.error(f"{self}: {type(frame).__name__} not sent to the phone: {e}")

    def record(self, kind: str, payload: dict[str, Any], *, source: str = "kane") -> None:
        """Journal an event that is not a frame."""
        self._write(kind, "none", source, payload)

    def _write(self, kind: str, direction: str, source: str, payload: dict[str, Any]) -> None:
        self._seq += 1
        self._journal.write(
            JournalEvent(
                session_id=self._session,
                seq=self._seq,
                mono_ns=time.monotonic_ns(),
                wall_time=datetime.now(UTC),
                kind=kind,
                direction=direction,
                source=source,
                payload=payload,
            )
        )
