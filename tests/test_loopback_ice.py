import inspect

import aioice.ice
from aiortc import RTCConfiguration, RTCPeerConnection

from transport.loopback_ice import gather_on_loopback_only, keep_loopback_candidates


def candidate_addresses(sdp: str) -> set[str]:
    return {line.split()[4] for line in sdp.splitlines() if line.startswith("a=candidate:")}


def test_aioice_still_has_what_loopback_ice_replaces():
    # If aioice renames these, loopback ICE silently stops working: fail here instead.
    assert list(inspect.signature(aioice.ice.get_host_addresses).parameters) == [
        "use_ipv4",
        "use_ipv6",
    ]
    params = list(inspect.signature(aioice.ice.Connection.request_received).parameters)
    assert params == ["self", "message", "addr", "protocol"]


async def test_peers_offer_only_loopback_candidates_while_asked_to():
    original = aioice.ice.get_host_addresses
    restore = gather_on_loopback_only()
    try:
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))  # no STUN: nothing leaves
        pc.addTransceiver("audio")
        await pc.setLocalDescription(await pc.createOffer())
        assert candidate_addresses(pc.localDescription.sdp) == {"127.0.0.1"}
        await pc.close()
    finally:
        restore()
    assert aioice.ice.get_host_addresses is original


def test_foreign_candidates_are_dropped_from_an_offer():
    sdp = (
        "v=0\r\n"
        "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\n"
        "a=candidate:1 1 udp 2122260223 192.0.2.2 50000 typ host\r\n"
        "a=candidate:2 1 udp 2122194687 127.0.0.1 50001 typ host\r\n"
        "a=candidate:3 1 udp 2122194687 abcd.local 50002 typ host\r\n"
        "a=mid:0\r\n"
    )
    kept = keep_loopback_candidates(sdp)
    assert candidate_addresses(kept) == {"127.0.0.1"}
    assert "m=audio" in kept and "a=mid:0" in kept


async def test_a_default_peer_would_ask_a_public_stun_server(no_lookups_beyond_this_machine):
    # What the guard is for: aiortc's default configuration looks up a public STUN server.
    pc = RTCPeerConnection()
    pc.addTransceiver("audio")
    await pc.setLocalDescription(await pc.createOffer())
    await pc.close()
    assert no_lookups_beyond_this_machine, "aiortc no longer asks a STUN server by default"
    no_lookups_beyond_this_machine.clear()  # seen, and refused: nothing left the machine
