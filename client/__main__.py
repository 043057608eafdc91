"""Command line for the reference client: speak a WAV into a room, record the bot.

Usage:
    uv run python -m client --url ws://127.0.0.1:7880 --token TOKEN \
        --wav speech.wav --record bot.wav --timeout 20

Without ``--token``, a token is minted from ``LIVEKIT_API_KEY``/``LIVEKIT_API_SECRET`` for
``--room`` and ``--identity``. Each received message is printed to stdout as one JSON line;
the last line is ``{"summary": {...}}``. Logs go to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from typing import Any

from loguru import logger

from client.messages import ReceivedMessage
from client.reference_client import ReferenceClient


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m client", description=__doc__.split("\n")[0])
    parser.add_argument("--url", default=os.environ.get("LIVEKIT_URL", "ws://127.0.0.1:7880"))
    parser.add_argument("--token", help="access token (else minted from LIVEKIT_API_KEY/SECRET)")
    parser.add_argument("--room", default="kane-dev", help="room for a minted token")
    parser.add_argument("--identity", default="reference-client", help="identity, minted token")
    parser.add_argument("--wav", help="speech to send on the microphone track")
    parser.add_argument("--record", help="write the bot's audio to this WAV file")
    parser.add_argument("--timeout", type=float, default=20.0, help="seconds to wait for the bot")
    parser.add_argument("--bot-identity", help="record this participant (default: first audio)")
    parser.add_argument("--lead-in", type=float, default=0.5, help="silence before speaking, s")
    parser.add_argument("--quiet-after", type=float, default=1.5, help="bot silence ending, s")
    return parser.parse_args(argv)


def _mint_token(room: str, identity: str) -> str:
    from livekit import api

    key = os.environ.get("LIVEKIT_API_KEY")
    secret = os.environ.get("LIVEKIT_API_SECRET")
    if not key or not secret:
        raise SystemExit("--token or LIVEKIT_API_KEY and LIVEKIT_API_SECRET are required")
    grants = api.VideoGrants(room_join=True, room=room)
    return api.AccessToken(key, secret).with_identity(identity).with_grants(grants).to_jwt()


def _print_message(message: ReceivedMessage) -> None:
    print(message.to_json(), flush=True)


async def _run(args: argparse.Namespace) -> dict[str, Any]:
    token = args.token or _mint_token(args.room, args.identity)
    client = ReferenceClient(
        args.url, token, bot_identity=args.bot_identity, on_message=_print_message
    )
    summary: dict[str, Any] = {}
    async with client:
        await asyncio.sleep(args.lead_in)
        if args.wav:
            timing = await client.speak(args.wav)
            summary["speech_s"] = round(timing.ended_at - timing.started_at, 3)
        latency = await client.wait_for_bot_audio(args.timeout)
        if latency is not None:
            summary["voice_to_voice_ms"] = round(latency * 1000)
            await client.wait_for_bot_silence(args.quiet_after, timeout_s=args.timeout)
        if args.record:
            client.save_bot_audio(args.record)
            summary["recording"] = args.record
        summary["bot_audio_s"] = round(client.bot_audio.size / client.sample_rate, 3)
        summary["bot_answered"] = latency is not None
        summary["messages"] = len(client.messages)
        summary["message_types"] = sorted({m.type or m.kind for m in client.messages})
        summary["agent_state"] = client.agent_state
    return summary


def main(argv: list[str] | None = None) -> int:
    """Run the reference client once; exit 0 when the bot answered with audio."""
    args = _parse_args(argv)
    logger.remove()
    logger.add(sys.stderr, level=os.environ.get("KANE_LOG_LEVEL", "INFO"))
    summary = asyncio.run(_run(args))
    print(json.dumps({"summary": summary}), flush=True)
    return 0 if summary["bot_answered"] else 1


if __name__ == "__main__":
    sys.exit(main())
