"""Run the emulators as a process: ``python -m emulators [--deepgram-port N ...]``.

Prints one JSON line with the URLs once all are listening, then runs until
SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys

from loguru import logger

from emulators.deepgram import DeepgramEmulator
from emulators.hume import HumeEmulator
from emulators.hume_expression import HumeExpressionEmulator
from emulators.openai import OpenAIEmulator


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m emulators", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind")
    parser.add_argument("--deepgram-port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--openai-port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--hume-port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--hume-expression-port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--log-level", default="INFO", help="loguru level on stderr")
    return parser.parse_args(argv)


async def serve(args: argparse.Namespace) -> None:
    """Start the emulators, announce their URLs on stdout, and wait for a signal."""
    emulators = {
        "deepgram": DeepgramEmulator(host=args.host, port=args.deepgram_port),
        "openai": OpenAIEmulator(host=args.host, port=args.openai_port),
        "hume": HumeEmulator(host=args.host, port=args.hume_port),
        "hume_expression": HumeExpressionEmulator(host=args.host, port=args.hume_expression_port),
    }
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        urls = {name: await emu.start() for name, emu in emulators.items()}
        urls["control"] = {name: emu.url for name, emu in emulators.items()}  # type: ignore[assignment]
        print(json.dumps(urls), flush=True)
        await stop.wait()
    finally:
        for emu in emulators.values():
            await emu.stop()


def main(argv: list[str] | None = None) -> None:
    """Entry point of ``python -m emulators``."""
    args = _parse_args(argv)
    logger.remove()
    logger.add(sys.stderr, level=args.log_level.upper())
    asyncio.run(serve(args))


if __name__ == "__main__":
    main()
