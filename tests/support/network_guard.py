"""Tests talk only to this machine: a name lookup for anywhere else fails the test.

Libraries reach out on their own (aiortc asks a public STUN server unless told otherwise), and
they often swallow the error of a failed lookup; so every lookup of a name that is not local
is refused *and* recorded, and the test that made it fails at teardown.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterator
from typing import Any

import pytest

LOCAL_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost", ""})


def is_local(host: Any) -> bool:
    """Whether `host` (a name or an address, str or bytes, or None) is this machine's loopback."""
    if host is None:
        return True  # a wildcard bind
    if isinstance(host, bytes):
        host = host.decode(errors="replace")
    host = str(host).strip("[]")
    if host in LOCAL_NAMES or host.endswith(".localhost"):
        return True
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False  # a name that is not local
    return address.is_loopback or address.is_unspecified


@pytest.fixture(autouse=True)
def no_lookups_beyond_this_machine(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Refuse and record lookups of names that are not loopback (see the module)."""
    refused: list[str] = []
    getaddrinfo = socket.getaddrinfo
    gethostbyname = socket.gethostbyname

    def guarded_getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if not is_local(host):
            refused.append(str(host))
            raise socket.gaierror(socket.EAI_NONAME, f"tests stay on loopback, not {host}")
        return getaddrinfo(host, *args, **kwargs)

    def guarded_gethostbyname(host: str) -> str:
        if not is_local(host):
            refused.append(host)
            raise socket.gaierror(socket.EAI_NONAME, f"tests stay on loopback, not {host}")
        return gethostbyname(host)

    monkeypatch.setattr(socket, "getaddrinfo", guarded_getaddrinfo)
    monkeypatch.setattr(socket, "gethostbyname", guarded_gethostbyname)
    yield refused
    assert not refused, f"the test looked up names beyond this machine: {sorted(set(refused))}"
