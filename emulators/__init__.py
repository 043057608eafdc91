"""Loopback emulators of the cloud services KANE talks to (Deepgram, OpenAI, Hume).

Each is a small aiohttp server on 127.0.0.1 with settable latency and faults
(``Behavior``), a control endpoint under ``/_emulator/``, and a record of what
it received. Start one in-process (``async with OpenAIEmulator() as emu``) or all
of them as a subprocess (``python -m emulators``). Hume has two: Octave TTS
(``HumeEmulator``) and realtime expression measurement (``HumeExpressionEmulator``).
"""

from emulators.behavior import Behavior, Fault
from emulators.deepgram import DeepgramEmulator
from emulators.hume import HumeEmulator
from emulators.hume_expression import HumeExpressionEmulator
from emulators.openai import OpenAIEmulator
from emulators.openai_chat import Reply, ToolCall
from emulators.server import EmulatorServer, RecordedRequest

__all__ = [
    "Behavior",
    "DeepgramEmulator",
    "EmulatorServer",
    "Fault",
    "HumeEmulator",
    "HumeExpressionEmulator",
    "OpenAIEmulator",
    "RecordedRequest",
    "Reply",
    "ToolCall",
]
