"""Deepgram live speech to text that sends the person's audio in fewer, uncompressed frames."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncGenerator
from contextvars import ContextVar
from typing import Any

from deepgram.listen.v1 import client as listen_v1_client
from loguru import logger
from pipecat.frames.frames import Frame, VADUserStoppedSpeakingFrame
from pipecat.processors.frame_processor import FrameDirection
from pipecat.services.deepgram.stt import DeepgramSTTService

# True in the task that opens a KaneDeepgramSTTService's socket, and nowhere else: the
# SDK's listen connect then leaves permessage-deflate out of that handshake only.
_without_deflate: ContextVar[bool] = ContextVar("kane_deepgram_without_deflate", default=False)
_SWITCH_MARK = "_kane_deflate_switch"


def _install_deflate_switch() -> bool:
    """Let the SDK's listen socket connect without permessage-deflate where asked to.

    The SDK opens the socket with ``websockets_client_connect(url, extra_headers=...)``
    and no way to pass options, so that name in its module is wrapped once, in the way
    the SDK's own ``install_transport`` swaps it. Outside a task that set
    ``_without_deflate`` the wrapper calls the original unchanged.

    Returns:
        Whether the switch is in place. It is not when a custom transport (the SDK's
        ``transport_factory``) owns the socket and takes no ``compression``.
    """
    connect = listen_v1_client.websockets_client_connect
    if getattr(connect, _SWITCH_MARK, False):
        return True
    try:
        takes_compression = "compression" in inspect.signature(connect).parameters
    except (TypeError, ValueError):
        takes_compression = False
    if not takes_compression:
        return False

    def connect_with_deflate_switch(uri: str, **kwargs: Any) -> Any:
        if _without_deflate.get():
            kwargs["compression"] = None
        return connect(uri, **kwargs)

    setattr(connect_with_deflate_switch, _SWITCH_MARK, True)
    setattr(connect_with_deflate_switch, "__wrapped__", connect)  # noqa: B010
    setattr(listen_v1_client, "websockets_client_connect", connect_with_deflate_switch)  # noqa: B010
    return True


class KaneDeepgramSTTService(DeepgramSTTService):
    """Pipecat's Deepgram STT, sending the audio in ``chunk_ms`` pieces without deflate.

    Every WebSocket frame costs a socket write, a mask key and framing, and raw PCM
    barely compresses, so permessage-deflate costs CPU for nothing. This service opens
    its socket without deflate and coalesces the input audio frames into ``chunk_ms``
    messages (a whole number of chunks per message when a frame is longer).

    The end of a turn never waits for a chunk to fill: what is buffered is sent before
    Pipecat asks Deepgram to finalize (on ``VADUserStoppedSpeakingFrame``) and before
    the socket is closed (end, cancel, reconnect). Audio buffered for a socket that has
    gone is dropped, as Pipecat drops audio whose send fails. The final transcript goes on
    without giving the event loop away (`_cancel_ttfb_timeout`). Everything else (settings,
    reconnects, keepalives, metrics, interim results) is the stock service's.
    """

    def __init__(self, *, chunk_ms: int = 40, **kwargs: Any) -> None:
        """Create the service.

        Args:
            chunk_ms: Audio per message sent to Deepgram, in milliseconds.
            **kwargs: Passed on to ``DeepgramSTTService`` (``api_key``, ``base_url``,
                ``settings``, ...).
        """
        if chunk_ms <= 0:
            raise ValueError(f"chunk_ms must be positive, not {chunk_ms}")
        super().__init__(**kwargs)
        self._chunk_ms = chunk_ms
        self._pending = bytearray()
        # The connection the pending audio was accepted for.
        self._pending_for: Any = None
        # Keeps sends from the input task (audio, VAD) and the process task (end,
        # reconnect) in the order their audio left the buffer.
        self._send_lock = asyncio.Lock()

    @property
    def chunk_bytes(self) -> int:
        """Bytes of 16-bit PCM in one ``chunk_ms`` chunk at the current sample rate."""
        samples = max(1, self.sample_rate * self._chunk_ms // 1000)
        return samples * 2 * self._channels

    async def run_stt(self, audio: bytes) -> AsyncGenerator[Frame | None, None]:
        """Buffer the audio and send every whole chunk there is.

        Args:
            audio: Raw 16-bit PCM audio.

        Yields:
            None: transcripts arrive through the socket's callbacks.
        """
        connection = self._connection
        if connection is not self._pending_for:
            self._drop_pending("its connection is gone")
        if connection is not None:
            self._pending += audio
            self._pending_for = connection
            if len(self._pending) >= self.chunk_bytes:
                await self._send_pending(whole_chunks_only=True)
        yield None

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        """Send the buffered audio before the stock service finalizes the turn.

        Args:
            frame: The frame to process.
            direction: The direction of frame processing.
        """
        if isinstance(frame, VADUserStoppedSpeakingFrame):
            # The stock service sends Finalize while handling this frame, and Deepgram
            # finalizes only what it has: the end of the turn goes out first.
            await self._flush_audio()
        await super().process_frame(frame, direction)

    async def _cancel_ttfb_timeout(self) -> None:
        # Pipecat's `STTService.push_frame` calls this for a final transcript, after the
        # transcript's TTFB is reported and before the transcript goes on, and awaits the
        # cancelled timeout task: a turn of the event loop on the turn's path, behind every
        # other session's ready work (medians 0.5-1.3 ms at 8 sessions, 1.7-6.4 at 24). The
        # task only sleeps, then reports TTFB; cancelled, it ends on the loop's next turn and
        # leaves Pipecat's task list by itself. Its `finally` clears the attribute then, so a
        # timeout started in between (a VAD stop within that turn) would go uncancelled and
        # only report a late TTFB.
        task = self._ttfb_timeout_task
        if task is not None:
            self._ttfb_timeout_task = None
            task.cancel()

    async def _disconnect(self) -> None:
        # Before the stock service sends CloseStream (end, cancel, reconnect).
        await self._flush_audio()
        await super()._disconnect()

    async def _connection_handler(self) -> None:
        # Pipecat runs this in a task of its own, so the flag reaches this socket's
        # handshakes (the first and every reconnect) and no other connection.
        if _install_deflate_switch():
            _without_deflate.set(True)
        else:
            logger.warning(f"{self}: custom Deepgram transport installed, deflate left as is")
        await super()._connection_handler()

    async def _flush_audio(self) -> None:
        if self._pending:
            await self._send_pending(whole_chunks_only=False)

    async def _send_pending(self, *, whole_chunks_only: bool) -> None:
        async with self._send_lock:
            connection = self._connection
            if connection is None or connection is not self._pending_for:
                self._drop_pending("its connection is gone")
                return
            size = len(self._pending)
            if whole_chunks_only:
                size -= size % self.chunk_bytes
            if not size:
                return
            chunk = bytes(self._pending[:size])
            del self._pending[:size]
            try:
                await connection.send_media(chunk)
            except Exception as e:
                # As the stock run_stt does: the connection handler reconnects.
                logger.warning(f"{self}: send_media failed, connection will reconnect: {e}")
                self._connection = None
                self._drop_pending("its connection failed")

    def _drop_pending(self, reason: str) -> None:
        if self._pending and self.sample_rate:
            ms = len(self._pending) * 1000 // (2 * self._channels * self.sample_rate)
            logger.warning(f"{self}: dropping {ms} ms of buffered audio, {reason}")
        self._pending.clear()
        self._pending_for = None
