"""ICE on loopback only, for the playground where the machine has (or may use) no network.

aiortc gathers its ICE host candidates through aioice, which offers every interface address
except 127.0.0.1 and has no setting to say otherwise. A sandbox, a CI machine or a laptop
that must not talk on its network wants the opposite: every packet on 127.0.0.1. That takes
three things: aioice gathers on 127.0.0.1 alone, it answers no connectivity check that comes
from another address (a browser checks from each of its interfaces), and the peer's
candidates on other addresses are dropped from its offer. The browser, too, must offer
loopback candidates (Chromium does with ``--allow-loopback-in-peer-connection``).

This module is the one place that reaches into aioice; its test fails loudly if aioice
changes what it replaces.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import aioice.ice

LOOPBACK = "127.0.0.1"

Restore = Callable[[], None]


def gather_on_loopback_only() -> Restore:
    """Keep this process's WebRTC peers (aiortc) on 127.0.0.1.

    Process-wide: it applies to every aiortc peer connection made afterwards (in the worker,
    only the playground's). LiveKit's SDK has its own WebRTC stack and is untouched.

    Returns:
        A function that puts aioice back as it was.
    """
    connection = aioice.ice.Connection
    original_gather = aioice.ice.get_host_addresses
    original_request = connection.request_received

    def loopback_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
        return [LOOPBACK] if use_ipv4 else []

    def loopback_requests(
        self: aioice.ice.Connection, message: Any, addr: tuple[str, int], protocol: Any
    ) -> None:
        if addr[0] == LOOPBACK:  # a check from elsewhere gets no answer, so no packet leaves
            original_request(self, message, addr, protocol)

    aioice.ice.get_host_addresses = loopback_addresses
    connection.request_received = loopback_requests  # type: ignore[method-assign]

    def restore() -> None:
        aioice.ice.get_host_addresses = original_gather
        connection.request_received = original_request  # type: ignore[method-assign]

    return restore


def keep_loopback_candidates(sdp: str) -> str:
    """An SDP description without the ICE candidates that are not on 127.0.0.1.

    With gathering on loopback only, the peer's other candidates (its network interfaces)
    would still draw connectivity checks to them; dropping them keeps every packet on
    loopback.
    """
    lines = sdp.splitlines(keepends=True)
    return "".join(line for line in lines if not _foreign_candidate(line))


def _foreign_candidate(line: str) -> bool:
    # a=candidate:<foundation> <component> <transport> <priority> <address> <port> typ ...
    if not line.startswith("a=candidate:"):
        return False
    fields = line.split()
    return len(fields) < 6 or fields[4] != LOOPBACK
