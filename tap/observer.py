"""The tap: sees every frame of a session once, journals it and tells the phone."""

from __future__ import annotations

import asyncio
import time
import uuid
import weakref
from collections import deque
from collections.abc import Coroutine
from datetime import UTC, datetime, timedelta
from typing import Any

from loguru import logger
from pipecat.frames.frames import AudioRawFrame, Frame, ImageRawFrame
from pipecat.observers.base_observer import BaseObserver, FramePushed
from pipecat.processors.frame_processor import FrameDirection
from pydantic import BaseModel, Field

from storage.journal import JournalEvent, JournalWriter
from tap.conversation import ConversationLog
from tap.payloads import frame_payload
from tap.phone import PhoneLink
from tap.translate import PhoneTranslator, is_told_at_once

_DIRECTIONS = {FrameDirection.DOWNSTREAM: "down", FrameDirection.UPSTREAM: "up"}
# A tuple, not a union: isinstance is quicker with one, and it runs on every push.
_RAW_MEDIA = (AudioRawFrame, ImageRawFrame)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# Ids of gone frames are dropped once this many are known (and at twice what was left).
_SWEEP_MIN = 1024

# A first push as noted on the frames' path, and `time.monotonic_ns()` then.
_Push = tuple[FramePushed, int]


class FrameTapParams(BaseModel):
    """Settings of the tap.

    Parameters:
        batch_delay_s: How long after a frame's push the tap journals it and tells the phone.
            The work is done in batches, off the frames' path; the phone hears of a quest
            card or a tool call as it is pushed.
        batch_size: Most frames handled in one go; the rest follow on the next turn of the
            event loop, so a burst never holds the loop for long.
        watch_s: While frames keep leaving the pipeline, a batch is timed when one leaves
            (its path over) rather than when a frame is pushed; should they stop leaving,
            a frame that stayed inside waits at most this long.
    """

    batch_delay_s: float = Field(default=0.001, ge=0.0, le=0.02)
    batch_size: int = Field(default=64, ge=1)
    watch_s: float = Field(default=0.01, gt=0.0, le=0.1)


class FrameTap(BaseObserver):
    """Mirrors a session's frames to the journal and, translated, to the phone.

    Every frame but raw media becomes a journal event, numbered by `seq` within the
    session in the order of the frames' first pushes; events that are not frames (protocol
    errors, the phone's messages) share the numbering through `record`.

    On the frames' path the tap only notes a first push: a type check and a look-up by
    frame id on every push, and an append for a new frame. Building the payload,
    journaling, translating for the phone and keeping the conversation happen in a batch
    `batch_delay_s` after the timer for it is set, or at once when something reads the
    tap (`flush`, `record`, `events`, `conversation`). Setting a timer costs more than the
    rest of the note, so it is kept off the path: while frames keep leaving the pipeline
    (`frame_left`), the batch's timer is set as one leaves; only a push into a quiet
    pipeline sets it itself. A quest card (a draft or a quest's change), which the person
    watches for while still talking, and a tool call (`is_told_at_once`) are not kept
    waiting: as one is pushed, the tap translates it and hands the message to the phone's
    link, which hands it over to the room there and then: tens of microseconds on that
    frame's own push (a tenth of a millisecond with LiveKit's hand-over), once or twice a
    turn. The frames before it may follow with their batch (a draft's partial transcript a
    millisecond or so after the draft). Its journaling waits for the batch, in order, as
    every other frame's does.

    The batch reads the frames a millisecond or so after their push. That is safe because
    a pushed frame is not changed: Pipecat's services and KANE's processors set a frame's
    fields, and fill its lists and dicts, before they push it (Pipecat's `WakeCheckFilter`,
    not used here, is the one processor that rewrites a frame it was given). The journal
    leaves out what is live (an `LLMContextFrame`'s context, raw audio, results).

    Give the tap to the session's `TappedPipeline`, which has it note every push inline.
    As one of the worker's `observers` the tap works too, but Pipecat then queues every
    frame for a task of the tap's own and wakes it, tens of microseconds a frame.
    """

    def __init__(
        self,
        *,
        session_id: str,
        journal: JournalWriter,
        phone: PhoneLink | None = None,
        translator: PhoneTranslator | None = None,
        params: FrameTapParams | None = None,
    ):
        """Create the tap of one session.

        Args:
            session_id: The session (a UUID).
            journal: Where events go (shared by the worker's sessions).
            phone: The phone's link, told what it should hear about; None for no phone.
            translator: Turns frames into phone messages.
            params: Batching settings.
        """
        # A frame passes through many processors; its first push is the one journaled.
        super().__init__(observe_every_push=False)
        self._params = params or FrameTapParams()
        self._session = uuid.UUID(session_id)
        self._journal = journal
        self._phone = phone
        self._translator = translator or PhoneTranslator()
        self._conversation = ConversationLog()
        self._seq = 0
        self._pending: deque[_Push] = deque()
        # Ids of the frames seen, while their frame lives (ids are never reused): the frame
        # itself until its batch, off the path, swaps it for a weak reference.
        self._seen: dict[int, Frame | weakref.ref[Frame]] = {}
        self._sweep_at = _SWEEP_MIN
        self._loop: asyncio.AbstractEventLoop | None = None
        # The next batch: a timer (`_batch_later`), or a burst's next turn of the loop.
        self._batch: asyncio.Handle | None = None
        # Set while frames are leaving the pipeline; `_left` since the last check.
        self._watch: asyncio.TimerHandle | None = None
        self._left = False

    @property
    def events(self) -> int:
        """How many events this session has journaled, counting every frame seen."""
        self.flush()
        return self._seq

    @property
    def conversation(self) -> ConversationLog:
        """What the session said, up to the last frame seen."""
        self.flush()
        return self._conversation

    def see(self, data: FramePushed) -> None:
        """Note a push of a frame: its first push, unless it is raw media. Never raises.

        Args:
            data: The push.
        """
        frame = data.frame
        if not isinstance(frame, _RAW_MEDIA) and frame.id not in self._seen:
            self._note(data)

    def inline_observer(self, observer: BaseObserver | None) -> BaseObserver:
        """An observer for processors to report to: the tap, on the spot, then `observer`.

        `TappedPipeline` sets its processors up with it.

        Args:
            observer: The observer the processors had (the worker's), told everything.
        """
        return _InlineTap(self, observer or BaseObserver())

    async def on_push_frame(self, data: FramePushed) -> None:
        """Note a frame's first push, when the tap is one of the worker's observers."""
        self.see(data)

    def frame_left(self) -> None:
        """Tell the tap that a frame has left the pipeline; `TappedPipeline` does.

        That frame's path is over: a good time to set the timer of the next batch.
        """
        self._left = True
        if self._pending and self._batch is None:
            self._batch_later()
        if self._watch is None:
            self._watch = self._event_loop().call_later(self._params.watch_s, self._check)

    def flush(self) -> None:
        """Journal every frame seen so far and tell the phone about it, now."""
        if self._batch is not None:
            self._batch.cancel()
            self._batch = None
        self._handle(len(self._pending))

    def record(self, kind: str, payload: dict[str, Any], *, source: str = "kane") -> None:
        """Journal an event that is not a frame, after every frame seen before it."""
        self.flush()
        self._write(kind, "none", source, payload, time.monotonic_ns(), time.time_ns())

    def _note(self, data: FramePushed) -> None:
        """Note a frame's first push, and have a batch come for it."""
        frame = data.frame
        try:
            # A broadcast frame travels both ways as two frames; keep the downstream one.
            if frame.broadcast_sibling_id is not None and data.direction is FrameDirection.UPSTREAM:
                self._seen[frame.id] = weakref.ref(frame)
                return
            self._seen[frame.id] = frame
            self._pending.append((data, time.monotonic_ns()))
            if self._phone is not None and is_told_at_once(frame):
                self._tell_phone(self._phone, frame)
            # While frames are leaving, the next one to leave sets the timer.
            if self._batch is None and self._watch is None:
                self._batch_later()
        except Exception as e:
            # Raising here would keep the frame from its next processor.
            logger.error(f"{self}: push of {type(frame).__name__} not noted: {e}")

    def _event_loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        return self._loop

    def _check(self) -> None:
        """Watch on while frames keep leaving; see to frames that stayed inside."""
        if self._left:
            self._left = False
            self._watch = self._event_loop().call_later(self._params.watch_s, self._check)
        else:
            self._watch = None
        if self._pending and self._batch is None:
            self._run_batch()

    def _batch_later(self) -> None:
        self._batch = self._event_loop().call_later(self._params.batch_delay_s, self._run_batch)

    def _run_batch(self) -> None:
        self._batch = None
        self._handle(self._params.batch_size)
        if self._pending:
            self._batch = self._event_loop().call_soon(self._run_batch)

    def _tell_phone(self, phone: PhoneLink, frame: Frame) -> None:
        try:
            message = self._translator.translate(frame)
            if message is not None:
                phone.send(message)
        except Exception as e:
            logger.error(f"{self}: {type(frame).__name__} not sent to the phone: {e}")

    def _handle(self, count: int) -> None:
        pending = self._pending
        count = min(count, len(pending))
        if not count:
            return
        # One reading of both clocks dates the batch: a frame's wall time is now's, less
        # how long ago (monotonic) it was pushed.
        wall_now, mono_now = time.time_ns(), time.monotonic_ns()
        seen = self._seen
        phone = self._phone
        for _ in range(count):
            data, mono_ns = pending.popleft()
            frame = data.frame
            seen[frame.id] = weakref.ref(frame)
            try:
                self._write(
                    type(frame).__name__,
                    _DIRECTIONS.get(data.direction, "down"),
                    data.source.name,
                    frame_payload(frame),
                    mono_ns,
                    wall_now - (mono_now - mono_ns),
                )
            except Exception as e:
                logger.error(f"{self}: {type(frame).__name__} not journaled: {e}")
            try:
                self._conversation.observe(frame)
            except Exception as e:
                logger.error(f"{self}: {type(frame).__name__} not kept in the conversation: {e}")
            if phone is not None and not is_told_at_once(frame):
                self._tell_phone(phone, frame)
        if len(seen) >= self._sweep_at:
            # In place: the processors' observer holds this dict too.
            gone = [k for k, v in seen.items() if isinstance(v, weakref.ref) and v() is None]
            for frame_id in gone:
                del seen[frame_id]
            self._sweep_at = max(_SWEEP_MIN, 2 * len(seen))

    def _write(
        self,
        kind: str,
        direction: str,
        source: str,
        payload: dict[str, Any],
        mono_ns: int,
        wall_ns: int,
    ) -> None:
        self._seq += 1
        self._journal.write(
            JournalEvent(
                session_id=self._session,
                seq=self._seq,
                mono_ns=mono_ns,
                wall_time=_EPOCH + timedelta(microseconds=wall_ns // 1000),
                kind=kind,
                direction=direction,
                source=source,
                payload=payload,
            )
        )


class _InlineTap(BaseObserver):
    """What a `TappedPipeline`'s processors report to: the tap first, then the worker.

    It is called for every push and every processed frame of every processor, so it costs
    no more than it must: a push costs one call, plus the tap's note for a frame not seen
    yet; the other reports go straight to the worker's observer.
    """

    def __init__(self, tap: FrameTap, observer: BaseObserver):
        super().__init__()
        self._seen = tap._seen
        self._note = tap._note
        self._push = observer.on_push_frame
        # Every other report (processed frames, setups, whatever Pipecat adds) goes to the
        # worker observer's own bound method: passing it on costs nothing.
        for name in dir(BaseObserver):
            if name.startswith("on_") and name != "on_push_frame":
                setattr(self, name, getattr(observer, name))

    def on_push_frame(self, data: FramePushed) -> Coroutine[Any, Any, None]:
        """Tell the tap of a push, then hand back the worker observer's coroutine for it."""
        frame = data.frame
        if not isinstance(frame, _RAW_MEDIA) and frame.id not in self._seen:
            self._note(data)
        return self._push(data)
